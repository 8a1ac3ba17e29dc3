"""Unsubscribing: the page behind every digest's unsubscribe link, and RFC 8058 one-click.

``GET /unsubscribe/<token>`` shows a page with a button and changes nothing: link scanners
and mail previews fetch URLs, and must not unsubscribe anybody. ``POST`` to the same URL
unsubscribes at once and answers 200 — whether it comes from the page's button or from a mail
provider's one-click request (body ``List-Unsubscribe=One-Click``). No redirect, no cookie.
An unknown or revoked token gets the app's one 404 page.

The form carries no CSRF token, unlike every other form: RFC 8058 one-click POSTs come from
mail providers without any cookie, and the secret token in the URL is already what a forger
cannot know. After unsubscribing, the page links to the manage page to re-subscribe.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from digestd import links
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord
from digestd.web.render import render
from digestd.web.security import PRIVATE_PAGE_HEADERS

log = logging.getLogger(__name__)



def _subscriber(request: Request) -> tuple[Runtime, SubscriberRecord]:
    runtime: Runtime = request.app.state.runtime
    subscriber = runtime.store.subscriber_by_token(request.path_params["token"])
    if subscriber is None:
        raise HTTPException(404)
    return runtime, subscriber


def _page(request: Request, subscriber: SubscriberRecord, *, done: bool) -> Response:
    return render(
        request,
        "unsubscribe.html",
        {
            "email": subscriber.email,
            "status": "unsubscribed" if done else subscriber.status,
            "action": request.url.path,
            # the way back: the manage page has a re-subscribe button
            "manage_url": links.manage_url(
                links.path_prefix(request.app.state.runtime.config.base_url), subscriber.token
            ),
        },
        headers=PRIVATE_PAGE_HEADERS,
    )


async def unsubscribe_page(request: Request) -> Response:
    """GET: what the link shows; a button posts back to the same URL."""
    _runtime, subscriber = await run_in_threadpool(_subscriber, request)
    return _page(request, subscriber, done=False)


async def unsubscribe(request: Request) -> Response:
    """POST: unsubscribe now (the page's button, or RFC 8058 List-Unsubscribe=One-Click)."""

    def apply() -> SubscriberRecord:
        runtime, subscriber = _subscriber(request)
        if subscriber.status != "unsubscribed":
            runtime.store.set_subscriber_status(subscriber.id, "unsubscribed")
            log.info("unsubscribed subscriber=%d", subscriber.id)
        return subscriber

    # The body is not needed (the token is the authority), but read it so the connection is
    # left clean for keep-alive whatever a mail provider sends.
    await request.body()
    subscriber = await run_in_threadpool(apply)
    return _page(request, subscriber, done=True)
