"""HTTP caching for feeds: validators and 304s (RFC 9110), and gzip negotiation that honours
q=0, marks compressed ETags weak and names each Vary value once."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from email.utils import format_datetime, parsedate_to_datetime

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware, IdentityResponder
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Conditional requests --------------------------------------------------------------------------


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match field names `etag`, with the weak comparison it uses
    (W/"x" matches "x")."""
    if if_none_match.strip() == "*":
        return True
    return _opaque(etag) in {_opaque(tag) for tag in if_none_match.split(",")}


def not_modified(request: Request, etag: str, last_modified: dt.datetime) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return last_modified.replace(microsecond=0) <= when
    return False


def validated_response(
    request: Request,
    body: bytes,
    *,
    content_type: str,
    last_modified: dt.datetime,
    cache_control: str,
    etag: str | None = None,
    content_encoding: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """`body` with ETag, Last-Modified and Cache-Control, or a 304 when the client has it."""
    etag = etag or strong_etag(body)
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified.astimezone(dt.UTC), usegmt=True),
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
        **(extra_headers or {}),
    }
    if not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    headers["Content-Type"] = content_type
    if content_encoding:
        headers["Content-Encoding"] = content_encoding
    return Response(body, headers=headers)


def accepts_gzip(request: Request) -> bool:
    """Whether Accept-Encoding lists gzip with a quality above zero."""
    return gzip_acceptable(request.headers.get("accept-encoding", ""))


def gzip_acceptable(accept_encoding: str) -> bool:
    for coding in accept_encoding.split(","):
        name, *params = (part.strip() for part in coding.split(";"))
        if name.lower() != "gzip":
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class NegotiatedGZip(GZipMiddleware):
    """Starlette's GZipMiddleware, minus compressing for a client that refused gzip (q=0):
    Starlette looks for "gzip" anywhere in Accept-Encoding."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not gzip_acceptable(
            Headers(scope=scope).get("accept-encoding", "")
        ):
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=self.exclude_content_types
            )
            await responder(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class WeakEtagWhenCompressed:
    """Marks the ETag of a gzip-encoded response weak, as nginx does, and sends each Vary
    value once (the routes and the gzip middleware both name Accept-Encoding).

    A strong ETag promises byte-identical bodies; the gzip body is another representation of
    the same feed. Weak comparison (what If-None-Match uses) still matches it, so a client that
    got the compressed feed keeps getting 304s.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_weakened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=message["headers"])
                etag = headers.get("etag")
                if etag and headers.get("content-encoding") == "gzip" and etag.startswith('"'):
                    headers["etag"] = "W/" + etag
                vary = [v.strip() for value in headers.getlist("vary") for v in value.split(",")]
                if vary:
                    unique = list({v.lower(): v for v in reversed(vary) if v}.values())[::-1]
                    del headers["vary"]
                    headers["vary"] = ", ".join(unique)
            await send(message)

        await self.app(scope, receive, send_weakened)
