"""The Starlette app: every route in one list (`create_app`); feeds with validators and 304s,
private feeds, paper pages, health. Subscribing, confirming, managing and unsubscribing live
in `digestd.web.subscription` and `digestd.web.unsubscribe`.

Public feeds are the files `digestd.feeds.build_feeds` wrote; each is read once and kept in
memory while its inode, size and mtime stay the same, so a conditional request costs one
stat(). Private feeds are rendered per request from the store, never written to disk.

Every unknown path, unknown paper, and invalid or revoked private token gets the same 404 page:
nothing tells a guesser how close a token came. The runtime lives on ``app.state.runtime``;
the daemon swaps it there on reload.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digestd.feeds import (
    CONTENT_TYPES,
    build_feeds,
    feed_updated,
    is_web_url,
    newest_papers,
    private_feed_items,
    private_meta,
    render_feed,
)
from digestd.runtime import Runtime
from digestd.store import PaperRecord
from digestd.store.models import utcnow
from digestd.web import subscription, unsubscribe
from digestd.web.render import render, runtime_of
from digestd.web.security import Csrf

log = logging.getLogger(__name__)

#: the public feed files, relative to the feeds directory; nothing else is ever opened
PUBLIC_FEED = re.compile(r"(?:all|topics/[A-Za-z0-9-]{1,64})\.(?:rss|atom)|topics\.opml")
FEED_NAME = re.compile(r"(?P<name>[A-Za-z0-9_-]{1,64})\.(?P<fmt>rss|atom)")
#: papers listed on the index page
INDEX_PAPERS = 30
#: pages change with every batch; a short lifetime keeps proxies from serving stale ones long
PAGE_MAX_AGE = 60
#: responses that depend on a secret in the URL: not to be shared, indexed or leaked
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


# Conditional requests --------------------------------------------------------------------------


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(request: Request, etag: str, last_modified: dt.datetime) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        # If-None-Match uses the weak comparison: W/"x" matches "x".
        return _opaque(etag) in {_opaque(tag) for tag in if_none_match.split(",")}
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
    for coding in request.headers.get("accept-encoding", "").split(","):
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


class WeakEtagWhenCompressed:
    """Marks the ETag of a gzip-encoded response weak, as nginx does.

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
            await send(message)

        await self.app(scope, receive, send_weakened)


# Feed files ------------------------------------------------------------------------------------


@dataclass(slots=True)
class FeedFile:
    identity: tuple[int, int, int]
    body: bytes
    etag: str
    last_modified: dt.datetime
    _gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        """The body compressed once per version of the file, not once per request."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        return self._gzipped


class FeedFiles:
    """Feed files read once and kept while their inode, size and mtime stay the same.

    `build_feeds` replaces a file (a new inode) only when its bytes change, so the cached body,
    its hash and the mtime stay valid exactly as long as the file does. Used from the event
    loop only; the set of names is bounded by PUBLIC_FEED and the topics.
    """

    def __init__(self) -> None:
        self._files: dict[Path, FeedFile] = {}

    def get(self, path: Path) -> FeedFile | None:
        try:
            st = path.stat()
        except OSError:
            self._files.pop(path, None)
            return None
        cached = self._files.get(path)
        if cached is not None and cached.identity == _identity(st):
            return cached
        try:
            # fstat of the open file: body and identity describe the same inode even when
            # a rebuild replaces the file between the stat above and this read
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                body = fh.read()
        except OSError:
            return None
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).replace(microsecond=0)
        cached = FeedFile(_identity(st), body, strong_etag(body), modified)
        self._files[path] = cached
        return cached


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)




async def public_feed(request: Request) -> Response:
    name = request.path_params["path"]
    if not PUBLIC_FEED.fullmatch(name):
        raise HTTPException(404)
    runtime = runtime_of(request)
    feed = request.app.state.feed_files.get(runtime.config.feeds_dir / name)
    if feed is None:
        raise HTTPException(404)
    # Served compressed from memory; GZipMiddleware leaves an encoded response alone.
    compressed = accepts_gzip(request)
    return validated_response(
        request,
        feed.gzipped() if compressed else feed.body,
        content_type=CONTENT_TYPES[name.rsplit(".", 1)[1]],
        last_modified=feed.last_modified,
        # the gzip body is another representation of the same feed: a weak validator
        etag=f"W/{feed.etag}" if compressed else feed.etag,
        content_encoding="gzip" if compressed else None,
        cache_control=f"public, max-age={runtime.config.feeds.max_age}",
    )


def private_feed(request: Request) -> Response:
    match = FEED_NAME.fullmatch(request.path_params["name"])
    if match is None:
        raise HTTPException(404)
    runtime = runtime_of(request)
    subscriber = runtime.store.subscriber_by_token(match["name"])
    if subscriber is None or subscriber.status not in ("active", "paused"):
        raise HTTPException(404)
    config = runtime.config
    items = private_feed_items(runtime.store, subscriber, config.feeds.max_items)
    meta = private_meta(config.base_url, subscriber, runtime.store.topics())
    return validated_response(
        request,
        render_feed(items, meta, match["fmt"]),
        content_type=CONTENT_TYPES[match["fmt"]],
        last_modified=feed_updated(items, meta),
        cache_control=f"private, max-age={config.feeds.max_age}",
        extra_headers=PRIVATE_HEADERS,
    )


# Pages -----------------------------------------------------------------------------------------


def _creator(paper: PaperRecord) -> str | None:
    if paper.organization:
        return paper.organization
    if paper.authors_count:
        return f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}"
    return None


def _date(value: dt.date | None) -> str | None:
    return f"{value:%b} {value.day}, {value.year}" if value else None


def abstract_segments(text: str, urls: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The abstract cut into (text, url-or-None) pieces, so the template links URLs safely."""
    safe = sorted(
        {u for u in urls if is_web_url(u) and u in text},
        key=len,
        reverse=True,
    )
    if not safe:
        return [(text, None)]
    pieces = re.split("(" + "|".join(map(re.escape, safe)) + ")", text)
    return [(piece, piece if piece in safe else None) for piece in pieces if piece]


def _paper_view(paper: PaperRecord, matches: Any, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "slug": paper.slug,
        "title": paper.title,
        "creator": _creator(paper),
        "published": _date(paper.published),
        "first_seen": _date(paper.first_seen_at.date()),
        "first_seen_iso": paper.first_seen_at.isoformat(timespec="seconds"),
        "upvotes": paper.upvotes,
        "topics": [
            {"slug": m.slug, "name": names.get(m.slug, m.slug), "terms": list(m.terms)}
            for m in matches
        ],
    }


def index(request: Request) -> Response:
    runtime = runtime_of(request)
    store = runtime.store
    topics = store.topics()
    counts = store.topic_paper_counts()
    recent = store.topic_paper_counts(
        since=utcnow() - dt.timedelta(days=subscription.RECENT_DAYS)
    )
    names = {t.slug: t.name for t in topics}
    papers = [
        _paper_view(item.paper, item.matches, names)
        for item in newest_papers(store, INDEX_PAPERS)
    ]
    topic_views = [
        {"slug": t.slug, "name": t.name, "description": t.description,
         "papers": counts.get(t.slug, 0), "recent": recent.get(t.slug, 0)}
        for t in topics
    ]
    context = {
        "topics": topic_views, "papers": papers, "total": store.count_papers(),
        "recent_days": subscription.RECENT_DAYS,
    }
    if not runtime.config.subscribe.enabled:
        return render(
            request, "index.html", context,
            headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"},
        )
    # With the sign-up form, the page holds this browser's CSRF token: not for shared caches.
    csrf = Csrf.of(request, subscription.cached_site_key(request))
    return subscription.page(
        request, "index.html", {**context, **subscription.signup_form(runtime)}, csrf
    )


def paper_page(request: Request) -> Response:
    runtime = runtime_of(request)
    store = runtime.store
    paper = store.paper_by_slug(request.path_params["slug"])
    if paper is None:
        raise HTTPException(404)
    names = {t.slug: t.name for t in store.topics()}
    view = _paper_view(paper, store.paper_matches([paper.id])[paper.id], names)
    view["abstract"] = abstract_segments(paper.abstract, paper.links)
    view["links"] = [u for u in paper.links if is_web_url(u)]
    return render(
        request, "paper.html", {"paper": view},
        headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"},
    )


def healthz(request: Request) -> Response:
    ok = runtime_of(request).store.ping()
    return PlainTextResponse(
        "ok\n" if ok else "database unavailable\n",
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


async def not_found(request: Request, exc: Exception) -> Response:
    """The one 404 page, whatever was not found (a path, a paper, a token)."""
    return render(request, "404.html", status_code=404)


ERROR_PAGES = {
    400: ("Bad request", "The form could not be read. Please go back and try again."),
    410: ("This link has expired",
          "Confirmation links work for a limited time. Please sign up again: it only takes "
          "a minute."),
    413: ("Too much", "That was more than any form here sends. Please go back and shorten it."),
    415: ("Bad request", "Please send the form from this site's pages."),
}


async def error_page(request: Request, exc: Exception) -> Response:
    """A page for the other refusals (expired links, oversized forms), same look as the rest."""
    status = getattr(exc, "status_code", 400)
    title, message = ERROR_PAGES.get(status, ERROR_PAGES[400])
    return render(
        request, "message.html",
        {"title": title, "message": message, "signup": status == 410},
        status_code=status, headers={"Cache-Control": "no-store"},
    )


# The app ---------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # A fresh machine (or a new feeds directory) has nothing to serve until the next batch:
    # write the feeds before accepting requests. A failure is logged; pages still work.
    runtime: Runtime = app.state.runtime
    if not (runtime.config.feeds_dir / "all.atom").is_file():
        try:
            report = await anyio.to_thread.run_sync(build_feeds, runtime)
            log.info("feeds built at startup %s", report)
        except Exception:
            log.exception("feed build at startup failed")
    yield


def create_app(runtime: Runtime) -> Starlette:
    sub, unsub = subscription, unsubscribe
    routes: list[BaseRoute] = [
        Route("/", index, name="index"),
        Route("/healthz", healthz, name="healthz"),
        Route("/papers/{slug}", paper_page, name="paper"),
        Route("/feeds/private/{name}", private_feed, name="private_feed"),
        Route("/feeds/{path:path}", public_feed, name="feed"),
        # self-service subscription (digestd.web.subscription, digestd.web.unsubscribe)
        Route("/subscribe", sub.subscribe_page, methods=["GET"], name="subscribe_page"),
        Route("/subscribe", sub.subscribe, methods=["POST"], name="subscribe"),
        Route("/confirm/{code}", sub.confirm_page, methods=["GET"], name="confirm_page"),
        Route("/confirm/{code}", sub.confirm, methods=["POST"], name="confirm"),
        Route("/manage/{token}", sub.manage_page, methods=["GET"], name="manage_page"),
        Route("/manage/{token}", sub.manage, methods=["POST"], name="manage"),
        Route("/unsubscribe/{token}", unsub.unsubscribe_page, methods=["GET"],
              name="unsubscribe_page"),
        Route("/unsubscribe/{token}", unsub.unsubscribe, methods=["POST"], name="unsubscribe"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(WeakEtagWhenCompressed),
            Middleware(GZipMiddleware, minimum_size=500),
        ],
        exception_handlers={
            404: not_found, **dict.fromkeys(ERROR_PAGES, error_page),
        },
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.feed_files = FeedFiles()
    app.state.templates = {}
    app.state.site_keys = {}
    return app
