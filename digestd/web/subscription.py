"""Self-service subscription: sign up and confirm by e-mail — no account, no password.

    GET  /subscribe            the form (also embedded in the front page)
    POST /subscribe            validate, rate-limit, record as pending, mail a confirmation
    GET  /confirm/<code>       the signed link from the mail: a page with a confirm button
    POST /confirm/<code>       pending → active; shows the private feed and the manage link
    (managing a subscription afterwards: digestd.web.manage)

Confirmation takes a POST, like unsubscribing: mail scanners open links, and must not be
able to confirm a sign-up the address's owner never saw. The answer to a sign-up never says
whether the address was known: a known address gets the same page, and its owner gets a mail
with their manage link instead of a second subscription. Every form carries a CSRF token
(see `digestd.web.security`); the unsubscribe form is the one exception, since RFC 8058
one-click POSTs carry no cookie, and its URL's secret token already is what a forger lacks.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from digestd import links
from digestd.errors import DeliveryError
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord
from digestd.store.models import utcnow
from digestd.subscribers import CADENCES, parse_preferences
from digestd.web.mail import build_notice, send_notice
from digestd.web.render import render, runtime_of, timezone_names
from digestd.web.security import (
    CSRF_FIELD,
    PRIVATE_PAGE_HEADERS,
    Csrf,
    client_address,
    confirmation_code,
    read_confirmation_code,
)

log = logging.getLogger(__name__)

SUBSCRIBE_PATH = "/subscribe"
#: a form body larger than this is refused before it is parsed (the fields are small)
MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 64
#: topics listed on the front page count the papers first stored within this window
RECENT_DAYS = 7
HOUR = dt.timedelta(hours=1)
#: forms hold personal data and a per-browser token: never kept by a cache
FORM_HEADERS = {"Cache-Control": "no-store"}


# Helpers -------------------------------------------------------------------------------------


def cached_site_key(request: Request) -> bytes:
    """The installation's signing key, read from the store once per process (and store)."""
    runtime = runtime_of(request)
    keys: dict[int, bytes] = request.app.state.site_keys
    key = keys.get(id(runtime.store))
    if key is None:
        key = keys[id(runtime.store)] = runtime.store.site_key("web")
    return key


async def site_key(request: Request) -> bytes:
    return await run_in_threadpool(cached_site_key, request)


async def read_form(request: Request) -> FormData:
    """The posted form (URL-encoded, as every form here sends), refused with 413 when larger
    than any honest one, before any of it is parsed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise HTTPException(415)
    try:
        fields = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400) from exc
    return FormData(fields)


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    csrf: Csrf | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A page, with the CSRF cookie set when the browser had none."""
    response = render(
        request, template, {**context, "csrf": csrf, "csrf_field": CSRF_FIELD},
        status_code=status_code, headers={**FORM_HEADERS, **(headers or {})},
    )
    if csrf is not None:
        # Behind a TLS-terminating proxy the request itself may be plain HTTP: the public
        # URL says whether browsers reach us over HTTPS.
        public_https = runtime_of(request).config.base_url.startswith("https://")
        csrf.set_cookie(response, secure=public_https or request.url.scheme == "https")
    return response


def topic_choices(runtime: Runtime) -> list[dict[str, str]]:
    return [
        {"slug": t.slug, "name": t.name, "description": t.description}
        for t in runtime.store.topics()
    ]


def signup_form(runtime: Runtime, values: Mapping[str, Any] | None = None,
                errors: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The context the sign-up form's macro needs: choices, what was typed, what is wrong."""
    return {
        "form": {
            "email": "", "name": "", "topics": [], "cadence": "daily",
            "timezone": runtime.config.subscribe.default_timezone, **(values or {}),
        },
        "errors": dict(errors or {}),
        "topic_choices": topic_choices(runtime),
        "cadences": CADENCES,
        "timezones": timezone_names(),
        "subscribe_action": SUBSCRIBE_PATH,
    }


def typed_form(form: FormData, *, with_email: bool) -> dict[str, Any]:
    """What the person typed, as it is re-shown when something is wrong (trimmed to size)."""
    values: dict[str, Any] = {
        "name": str(form.get("name", ""))[:500],
        "cadence": str(form.get("cadence", ""))[:32],
        "timezone": str(form.get("timezone", ""))[:200],
        "topics": [str(t)[:64] for t in form.getlist("topics")][:64],
        "rising": form.get("rising") == "on",
    }
    if with_email:
        values["email"] = str(form.get("email", ""))[:500]
    return values


def _require_self_service(request: Request) -> Runtime:
    runtime = runtime_of(request)
    if not runtime.config.subscribe.enabled:
        raise HTTPException(404)
    return runtime


def _too_many(request: Request, retry_after: int) -> Response:
    minutes = max(1, round(retry_after / 60))
    return page(
        request, "message.html",
        {
            "title": "Too many requests",
            "message": f"Too many sign-ups from here just now. Please try again in about "
                       f"{minutes} minute{'s' if minutes != 1 else ''}.",
        },
        status_code=429, headers={"Retry-After": str(retry_after)},
    )


# Sign up -------------------------------------------------------------------------------------


async def subscribe_page(request: Request) -> Response:
    runtime = _require_self_service(request)
    csrf = Csrf.of(request, await site_key(request))
    wanted = [t for t in request.query_params.getlist("topic") if t][:64]
    context = await run_in_threadpool(signup_form, runtime, {"topics": wanted})
    return page(request, "subscribe.html", context, csrf)


async def subscribe(request: Request) -> Response:
    runtime = _require_self_service(request)
    form = await read_form(request)
    csrf = Csrf.of(request, await site_key(request))
    typed = typed_form(form, with_email=True)
    if not csrf.valid(str(form.get(CSRF_FIELD, "")), SUBSCRIBE_PATH):
        context = await run_in_threadpool(
            signup_form, runtime, typed,
            {"form": "This form has expired or did not come from this site. "
                     "Please check it and send it again."},
        )
        return page(request, "subscribe.html", context, csrf, status_code=403)
    return await run_in_threadpool(_subscribe, request, runtime, csrf, form, typed)


def _subscribe(
    request: Request, runtime: Runtime, csrf: Csrf, form: FormData, typed: dict[str, Any]
) -> Response:
    store, settings = runtime.store, runtime.config.subscribe
    known = [t["slug"] for t in topic_choices(runtime)]
    prefs, errors = parse_preferences(
        email=typed["email"], name=typed["name"], cadence=typed["cadence"],
        timezone=typed["timezone"], topics=typed["topics"], known_topics=known,
    )
    if prefs is None or prefs.address is None:
        return page(
            request, "subscribe.html", signup_form(runtime, typed, errors), csrf, status_code=400
        )
    now = utcnow()
    retry = store.take_rate_slot(
        "signup-client", client_address(request),
        limit=settings.signups_per_client_per_hour, window=HOUR, now=now,
    )
    if retry is None:
        retry = store.take_rate_slot(
            "mail-address", prefs.address.key,
            limit=settings.mails_per_address_per_hour, window=HOUR, now=now,
        )
    if retry is not None:
        log.info("sign-up rate limited retry_after=%d", retry)
        return _too_many(request, retry)

    subscriber, outcome = store.request_signup(
        email=prefs.address.email, email_key=prefs.address.key, name=prefs.name,
        cadence=prefs.cadence, timezone=prefs.timezone, topics=prefs.topics, now=now,
        rising=runtime.config.rising.section_default,
    )
    try:
        send_notice(runtime.config, _signup_mail(request, runtime, subscriber, outcome, now))
    except DeliveryError as exc:
        log.warning("sign-up mail not sent subscriber=%d error=%r", subscriber.id, str(exc))
        return page(
            request, "message.html",
            {"title": "Please try again later",
             "message": "The confirmation mail could not be sent just now. "
                        "Please try again in a few minutes."},
            status_code=503, headers={"Retry-After": "300"},
        )
    log.info("sign-up subscriber=%d outcome=%s", subscriber.id, outcome)
    # The same page whatever the outcome: it must not tell whether the address was known.
    return page(
        request, "check_inbox.html",
        {"email": prefs.address.email, "hours": _hours(settings.confirm_hours)},
    )


def _hours(hours: float) -> str:
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def _signup_mail(
    request: Request, runtime: Runtime, subscriber: SubscriberRecord, outcome: str,
    now: dt.datetime,
) -> Any:
    config = runtime.config
    names = {t["slug"]: t["name"] for t in topic_choices(runtime)}
    if outcome == "existing":
        return build_notice(
            config, "known", subject="You already get these digests",
            to_email=subscriber.email, to_name=subscriber.name, now=now,
            context={"manage_url": links.manage_url(config.base_url, subscriber.token)},
        )
    expires = now + dt.timedelta(hours=config.subscribe.confirm_hours)
    code = confirmation_code(cached_site_key(request), subscriber.token, expires)
    # No name: the address is not confirmed yet, and the name is whatever the form was given.
    return build_notice(
        config, "confirm", subject="Confirm your subscription",
        to_email=subscriber.email, to_name="", now=now,
        context={
            "confirm_url": links.confirm_url(config.base_url, code),
            "topics": [names.get(s, s) for s in subscriber.topics],
            "cadence": subscriber.cadence,
            "expires": f"{expires:%Y-%m-%d %H:%M} UTC",
        },
    )


# Confirm -------------------------------------------------------------------------------------


def _pending_by_code(request: Request, runtime: Runtime, key: bytes) -> SubscriberRecord:
    """The subscriber a confirmation code names; 404 for a bad code, 410 once expired."""
    code = read_confirmation_code(key, request.path_params["code"])
    if code is None:
        raise HTTPException(404)
    subscriber = runtime.store.subscriber_by_token(code.token)
    if subscriber is None:
        raise HTTPException(404)
    if subscriber.status == "pending" and code.expires <= utcnow():
        raise HTTPException(410)
    if subscriber.status == "unsubscribed":
        raise HTTPException(410)  # a link from before they left
    return subscriber


def links_context(runtime: Runtime, subscriber: SubscriberRecord) -> dict[str, Any]:
    base = runtime.config.base_url
    names = {t["slug"]: t["name"] for t in topic_choices(runtime)}
    return {
        "subscriber": subscriber,
        "topic_names": [names.get(s, s) for s in subscriber.topics],
        "manage_url": links.manage_url(base, subscriber.token),
        "feeds": {
            fmt: links.private_feed_url(base, subscriber.token, fmt)
            for fmt in ("atom", "rss", "json")
        },
    }


async def confirm_page(request: Request) -> Response:
    runtime = _require_self_service(request)
    key = await site_key(request)
    subscriber = await run_in_threadpool(_pending_by_code, request, runtime, key)
    if subscriber.status != "pending":  # confirmed already: the link still shows the links
        context = await run_in_threadpool(links_context, runtime, subscriber)
        return page(request, "confirmed.html", context, headers=PRIVATE_PAGE_HEADERS)
    csrf = Csrf.of(request, key)
    context = await run_in_threadpool(links_context, runtime, subscriber)
    return page(
        request, "confirm.html", {**context, "action": request.url.path}, csrf,
        headers=PRIVATE_PAGE_HEADERS,
    )


async def confirm(request: Request) -> Response:
    runtime = _require_self_service(request)
    form = await read_form(request)
    key = await site_key(request)
    csrf = Csrf.of(request, key)

    def apply() -> Response:
        subscriber = _pending_by_code(request, runtime, key)
        if not csrf.valid(str(form.get(CSRF_FIELD, "")), request.url.path):
            return page(
                request, "confirm.html",
                {**links_context(runtime, subscriber), "action": request.url.path,
                 "error": "This form has expired or did not come from this site. "
                          "Please press the button again."},
                csrf, status_code=403, headers=PRIVATE_PAGE_HEADERS,
            )
        confirmed = runtime.store.confirm_subscriber(subscriber.id)
        assert confirmed is not None
        log.info("subscriber confirmed subscriber=%d", subscriber.id)
        return page(
            request, "confirmed.html", links_context(runtime, confirmed),
            headers=PRIVATE_PAGE_HEADERS,
        )

    return await run_in_threadpool(apply)
