"""Managing a subscription through its private link — no account, no password.

    GET  /manage/<token>       topics, cadence, time zone, name; pause, resume, private feeds
    POST /manage/<token>       save | pause | resume | reset (new links), then 303 back

The token in the path is the secret; every form also carries a CSRF token
(see `digestd.web.security`). A pending sign-up has no manage page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digestd import links
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord
from digestd.subscribers import parse_preferences
from digestd.web.render import runtime_of
from digestd.web.security import CSRF_FIELD, PRIVATE_PAGE_HEADERS, Csrf
from digestd.web.subscription import (
    links_context,
    page,
    read_form,
    signup_form,
    site_key,
    topic_choices,
    typed_form,
)

log = logging.getLogger(__name__)

DONE_MESSAGES = {
    "saved": "Saved. Your next digest follows these settings.",
    "paused": "Paused: no digests until you resume.",
    "resumed": "Resumed: digests start again with the next new papers.",
    "reset": "New links made; the old ones no longer work. Bookmark this page.",
    "rated-up": "Thanks: more papers like that one will come first.",
    "rated-down": "Thanks: papers like that one will come later.",
    "rating-cleared": "Rating removed.",
}


def _manageable(request: Request, runtime: Runtime) -> SubscriberRecord:
    subscriber = runtime.store.subscriber_by_token(request.path_params["token"])
    # A pending sign-up has no manage page: its owner has not shown they read the mail.
    if subscriber is None or subscriber.status == "pending":
        raise HTTPException(404)
    return subscriber


def _ratings_context(runtime: Runtime, subscriber: SubscriberRecord) -> dict[str, Any]:
    """The reader's ratings, each with its undo URL, and topics they keep rating "less"."""
    ratings = runtime.store.ratings(subscriber.id)
    suggestions: list[tuple[str, int]] = []
    if ratings:
        from digestd.web.feedback import feedback_service

        names = {t["slug"]: t["name"] for t in topic_choices(runtime)}
        suggestions = [
            (names.get(slug, slug), count)
            for slug, count in feedback_service(runtime).mute_suggestions(
                subscriber.id, subscriber.topics
            )
        ]
    base = runtime.config.base_url
    return {
        "ratings": [
            {
                "title": r.paper_title, "value": r.value,
                "paper_url": links.paper_url(base, r.paper_slug),
                "undo": links.feedback_url(base, subscriber.token, str(r.paper_id), "clear"),
                # what the CSRF token is bound to: the path as this app sees the request
                "undo_path": links.feedback_url("", subscriber.token, str(r.paper_id), "clear"),
            }
            for r in ratings
        ],
        "mute_suggestions": suggestions,
    }


def _manage_page(
    request: Request, runtime: Runtime, subscriber: SubscriberRecord, csrf: Csrf, *,
    values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    current = {
        "name": subscriber.name, "cadence": subscriber.cadence,
        "timezone": subscriber.timezone, "topics": list(subscriber.topics),
        "rising": subscriber.rising,
    }
    done = request.query_params.get("done", "")
    context = {
        **signup_form(runtime, {**current, **(values or {})}, errors),
        **links_context(runtime, subscriber),
        "action": request.url.path,
        "unsubscribe_url": links.unsubscribe_url(runtime.config.base_url, subscriber.token),
        "notice": DONE_MESSAGES.get(done) if not errors else None,
        **_ratings_context(runtime, subscriber),
    }
    return page(
        request, "manage.html", context, csrf, status_code=status_code,
        headers=PRIVATE_PAGE_HEADERS,
    )


async def manage_page(request: Request) -> Response:
    runtime = runtime_of(request)
    csrf = Csrf.of(request, await site_key(request))

    def show() -> Response:
        return _manage_page(request, runtime, _manageable(request, runtime), csrf)

    return await run_in_threadpool(show)


async def manage(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await read_form(request)
    csrf = Csrf.of(request, await site_key(request))

    def apply() -> Response:
        subscriber = _manageable(request, runtime)
        store = runtime.store
        typed = typed_form(form, with_email=False)
        if not csrf.valid(str(form.get(CSRF_FIELD, "")), request.url.path):
            return _manage_page(
                request, runtime, subscriber, csrf, values=typed,
                errors={"form": "This form has expired or did not come from this site. "
                                "Please check it and send it again."},
                status_code=403,
            )
        action = str(form.get("action", ""))
        token = subscriber.token
        if action == "save":
            prefs, errors = parse_preferences(
                email=None, name=typed["name"], cadence=typed["cadence"],
                timezone=typed["timezone"], topics=typed["topics"],
                known_topics=[t["slug"] for t in topic_choices(runtime)],
            )
            if prefs is None:
                return _manage_page(
                    request, runtime, subscriber, csrf, values=typed, errors=errors,
                    status_code=400,
                )
            store.update_preferences(
                subscriber.id, name=prefs.name, cadence=prefs.cadence,
                timezone=prefs.timezone, topics=prefs.topics, rising=typed["rising"],
            )
        elif action == "pause":
            if subscriber.status == "active":
                store.set_subscriber_status(subscriber.id, "paused")
        elif action == "resume":
            store.resume_subscriber(subscriber.id)
        elif action == "reset":
            token = store.rotate_token(subscriber.id)
        else:
            raise HTTPException(400)
        log.info("subscriber managed subscriber=%d action=%s", subscriber.id, action)
        target = links.manage_url(links.path_prefix(runtime.config.base_url), token)
        # Post/redirect/get: reloading the page does not send the form again.
        return RedirectResponse(f"{target}?done={_done(action)}", status_code=303,
                                headers=dict(PRIVATE_PAGE_HEADERS))

    return await run_in_threadpool(apply)


def _done(action: str) -> str:
    return {"save": "saved", "pause": "paused", "resume": "resumed", "reset": "reset"}[action]
