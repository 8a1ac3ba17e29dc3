"""Unsubscribing: the page behind every digest's unsubscribe link, and RFC 8058 one-click.

``GET /unsubscribe/<token>`` shows a page with a button and changes nothing: link scanners
and mail previews fetch URLs, and must not unsubscribe anybody. ``POST`` to the same URL
unsubscribes at once and answers 200 — whether it comes from the page's button or from a mail
provider's one-click request (body ``List-Unsubscribe=One-Click``). No redirect, no cookie.
An unknown or revoked token gets the app's one 404 page.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from digestd.runtime import Runtime
from digestd.store import SubscriberRecord

log = logging.getLogger(__name__)

#: a page reached through a secret link: never cached, indexed, or leaked in a Referer
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _subscriber(request: Request) -> tuple[Runtime, SubscriberRecord]:
    runtime: Runtime = request.app.state.runtime
    subscriber = runtime.store.subscriber_by_token(request.path_params["token"])
    if subscriber is None:
        raise HTTPException(404)
    return runtime, subscriber


def _page(request: Request, subscriber: SubscriberRecord, *, done: bool) -> Response:
    from digestd.web.app import render

    return render(
        request,
        "unsubscribe.html",
        {
            "email": subscriber.email,
            "status": "unsubscribed" if done else subscriber.status,
            "action": request.url.path,
        },
        headers=HEADERS,
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


ROUTES: list[BaseRoute] = [
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"], name="unsubscribe_page"),
    Route("/unsubscribe/{token}", unsubscribe, methods=["POST"], name="unsubscribe"),
]
