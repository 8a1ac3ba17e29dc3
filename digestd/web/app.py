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
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware, IdentityResponder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digestd import links
from digestd.errors import StoreError
from digestd.feeds import (
    CONTENT_TYPES,
    FeedDoc,
    abstract_segments,
    all_doc,
    paper_links,
    private_doc,
    render_feed,
    topic_doc,
)
from digestd.metrics import Metrics
from digestd.pipeline import ensure_feeds
from digestd.runtime import Runtime
from digestd.store import PaperMatch, PaperRecord, Store, SubscriberRecord, TopicRecord
from digestd.store.models import utcnow
from digestd.web import digest_view, feedback, icons, ops, subscription, unsubscribe
from digestd.web.middleware import PathPrefix, RequestAccounting
from digestd.web.render import render, runtime_of
from digestd.web.security import Csrf

log = logging.getLogger(__name__)

#: the public feed files, relative to the feeds directory; nothing else is ever opened
PUBLIC_FEED = re.compile(r"(?:all|topics/[A-Za-z0-9-]{1,64})\.(?:rss|atom|json)|topics\.opml")
FEED_NAME = re.compile(r"(?P<name>[A-Za-z0-9_-]{1,64})\.(?P<fmt>rss|atom|json)")
#: an archive page: "<number>.<format>"; page numbers start at 1
ARCHIVE_PAGE = re.compile(r"(?P<page>[1-9][0-9]{0,8})\.(?P<fmt>rss|atom|json)")
#: archive pages never change once full: readers and proxies may keep them for a week
ARCHIVE_MAX_AGE = 7 * 24 * 3600
#: papers listed on the index page
INDEX_PAPERS = 30
#: papers per page of a topic's page
TOPIC_PAGE_PAPERS = 25
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


def _feed_response(
    request: Request, doc: FeedDoc | None, fmt: str, *, private: bool,
    last_modified: dt.datetime | None = None,
) -> Response:
    """A feed rendered on request: a private feed, or an archive page."""
    if doc is None:
        raise HTTPException(404)
    config = runtime_of(request).config
    scope = "private" if private else "public"
    max_age = config.feeds.max_age if doc.page is None else ARCHIVE_MAX_AGE
    return validated_response(
        request,
        render_feed(doc, fmt),
        content_type=CONTENT_TYPES[fmt],
        last_modified=max(doc.updated, last_modified or doc.updated),
        cache_control=f"{scope}, max-age={max_age}",
        extra_headers=PRIVATE_HEADERS if private else None,
    )


def _archive_page(request: Request) -> tuple[int, str]:
    match = ARCHIVE_PAGE.fullmatch(request.path_params["page"])
    if match is None:
        raise HTTPException(404)
    return int(match["page"]), match["fmt"]


def _subscriber(request: Request, token: str) -> SubscriberRecord:
    subscriber = runtime_of(request).store.subscriber_by_token(token)
    if subscriber is None or subscriber.status not in ("active", "paused"):
        raise HTTPException(404)
    return subscriber


def private_feed(request: Request) -> Response:
    match = FEED_NAME.fullmatch(request.path_params["name"])
    if match is None:
        raise HTTPException(404)
    runtime = runtime_of(request)
    subscriber = _subscriber(request, match["name"])
    doc = private_doc(runtime.store, runtime.config, subscriber)
    # Narrowing one's topics can leave older papers on top: the time of that change keeps
    # Last-Modified from going backwards for clients that send only If-Modified-Since.
    return _feed_response(request, doc, match["fmt"], private=True,
                          last_modified=subscriber.updated_at)


def private_archive(request: Request) -> Response:
    page, fmt = _archive_page(request)
    runtime = runtime_of(request)
    subscriber = _subscriber(request, request.path_params["token"])
    doc = private_doc(runtime.store, runtime.config, subscriber, page)
    return _feed_response(request, doc, fmt, private=True,
                          last_modified=_page_changed(runtime, doc))


def all_archive(request: Request) -> Response:
    page, fmt = _archive_page(request)
    runtime = runtime_of(request)
    doc = all_doc(runtime.store, runtime.config, page)
    return _feed_response(request, doc, fmt, private=False,
                          last_modified=_page_changed(runtime, doc))


def topic_archive(request: Request) -> Response:
    page, fmt = _archive_page(request)
    runtime = runtime_of(request)
    topic = _topic(runtime, request.path_params["slug"])
    doc = topic_doc(runtime.store, runtime.config, topic, page)
    return _feed_response(request, doc, fmt, private=False,
                          last_modified=_page_changed(runtime, doc))


def _page_changed(runtime: Runtime, doc: FeedDoc | None) -> dt.datetime | None:
    """When what an archive page shows last changed: its papers' data or its topics' names."""
    if doc is None:
        return None
    slugs = {c.slug for item in doc.items for c in item.categories}
    times = [item.changed for item in doc.items] + runtime.store.topics_changed_at(slugs)
    return max(times, default=None)


def _topic(runtime: Runtime, slug: str) -> TopicRecord:
    topic = next((t for t in runtime.store.topics() if t.slug == slug), None)
    if topic is None:
        raise HTTPException(404)
    return topic


# Pages -----------------------------------------------------------------------------------------


def _creator(paper: PaperRecord) -> str | None:
    named = " · ".join(part for part in (paper.authors_line, paper.organization) if part)
    if named:
        return named
    if paper.authors_count:
        return f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}"
    return None


def _date(value: dt.date | None) -> str | None:
    return f"{value:%b} {value.day}, {value.year}" if value else None


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


def newest(
    store: Store, slugs: tuple[str, ...] | None, offset: int, limit: int
) -> list[tuple[PaperRecord, list[PaperMatch]]]:
    """Papers newest arrival first (the feeds' order), each with the active topics it matched."""
    ids = store.feed_paper_ids(slugs, newest_first=True, offset=offset, limit=limit)
    papers = {p.id: p for p in store.papers(ids=ids)}
    matches = store.paper_matches(ids)
    return [(papers[i], matches[i]) for i in ids if i in papers]


def index(request: Request) -> Response:
    runtime = runtime_of(request)
    store = runtime.store
    topics = store.topics()
    counts = store.topic_paper_counts()
    recent = store.topic_paper_counts(
        since=utcnow() - dt.timedelta(days=subscription.RECENT_DAYS)
    )
    names = {t.slug: t.name for t in topics}
    papers = [_paper_view(p, m, names) for p, m in newest(store, None, 0, INDEX_PAPERS)]
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
    view["links"] = paper_links(paper)
    view["authors"] = list(paper.authors)
    view["arxiv_id"] = paper.arxiv_id
    view["arxiv_version"] = paper.arxiv_version
    view["categories"] = list(paper.categories)
    view["keywords"] = list(paper.keywords)
    view["ai_summary"] = paper.ai_summary
    view["github_stars"] = paper.github_stars
    view["comments"] = paper.comments
    return render(
        request, "paper.html", {"paper": view},
        headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"},
    )


def topic_page(request: Request) -> Response:
    """A topic: what it is, its query, its feeds, its papers a page at a time, and sign-up."""
    runtime = runtime_of(request)
    store = runtime.store
    topic = _topic(runtime, request.path_params["slug"])
    raw_page = request.query_params.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 100_000:
        raise HTTPException(404)
    page = int(raw_page)
    total = store.feed_paper_count((topic.slug,))
    pages = max(1, -(-total // TOPIC_PAGE_PAPERS))
    if page > pages:
        raise HTTPException(404)
    names = {t.slug: t.name for t in store.topics()}
    offset = (page - 1) * TOPIC_PAGE_PAPERS
    papers = [_paper_view(p, m, names)
              for p, m in newest(store, (topic.slug,), offset, TOPIC_PAGE_PAPERS)]
    context = {
        "topic": {"slug": topic.slug, "name": topic.name, "description": topic.description,
                  "query": topic.query},
        "papers": papers, "total": total, "page": page, "pages": pages,
    }
    return render(request, "topic.html", context,
                  headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"})


def icon(request: Request) -> Response:
    return Response(icons.icon_png(), media_type="image/png",
                    headers={"Cache-Control": f"public, max-age={ARCHIVE_MAX_AGE}"})


def favicon(request: Request) -> Response:
    return Response(icons.favicon_ico(), media_type="image/x-icon",
                    headers={"Cache-Control": f"public, max-age={ARCHIVE_MAX_AGE}"})


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
    await anyio.to_thread.run_sync(ensure_feeds, runtime)
    yield


def create_app(
    runtime: Runtime,
    *,
    metrics: Metrics | None = None,
    daemon_health: Callable[[], tuple[str, str]] | None = None,
) -> Starlette:
    """The app for `runtime`. `metrics` collects request counts (the daemon passes its own,
    which also counts job failures); `daemon_health` gives (role, scheduler state) to /healthz.
    """
    sub, unsub = subscription, unsubscribe
    routes: list[BaseRoute] = [
        Route("/", index, name="index"),
        Route("/healthz", ops.healthz, name="healthz"),
        Route("/metrics", ops.metrics, name="metrics"),
        Route("/papers/{slug}", paper_page, name="paper"),
        Route("/topics/{slug}", topic_page, name="topic"),
        Route("/icon.png", icon, name="icon"),
        Route("/favicon.ico", favicon, name="favicon"),
        Route("/feeds/private/{name}", private_feed, name="private_feed"),
        Route("/feeds/private/{token}/archive/{page}", private_archive, name="private_archive"),
        Route("/feeds/archive/all/{page}", all_archive, name="all_archive"),
        Route("/feeds/archive/topics/{slug}/{page}", topic_archive, name="topic_archive"),
        Route("/feeds/{path:path}", public_feed, name="feed"),
        # self-service subscription (digestd.web.subscription, digestd.web.unsubscribe)
        Route("/subscribe", sub.subscribe_page, methods=["GET"], name="subscribe_page"),
        Route("/subscribe", sub.subscribe, methods=["POST"], name="subscribe"),
        Route("/confirm/{code}", sub.confirm_page, methods=["GET"], name="confirm_page"),
        Route("/confirm/{code}", sub.confirm, methods=["POST"], name="confirm"),
        Route("/manage/{token}", sub.manage_page, methods=["GET"], name="manage_page"),
        Route("/manage/{token}", sub.manage, methods=["POST"], name="manage"),
        Route("/feedback/{token}/{paper}/{rating}", feedback.rating_page, methods=["GET"],
              name="feedback_page"),
        Route("/feedback/{token}/{paper}/{rating}", feedback.rate, methods=["POST"],
              name="feedback"),
        Route("/unsubscribe/{token}", unsub.unsubscribe_page, methods=["GET"],
              name="unsubscribe_page"),
        Route("/unsubscribe/{token}", unsub.unsubscribe, methods=["POST"], name="unsubscribe"),
        Route("/digests/{token}/{key}", digest_view.digest_page, name="digest"),
    ]
    metrics_ = metrics or Metrics()
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                PathPrefix, prefix=lambda: links.path_prefix(app.state.runtime.config.base_url)
            ),
            Middleware(
                RequestAccounting, metrics=metrics_,
                access_log_on=lambda: app.state.runtime.config.log.access_log,
            ),
            Middleware(WeakEtagWhenCompressed),
            Middleware(NegotiatedGZip, minimum_size=500),
        ],
        exception_handlers={
            404: not_found, **dict.fromkeys(ERROR_PAGES, error_page),
            StoreError: ops.database_unavailable, DBAPIError: ops.database_unavailable,
        },
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.feed_files = FeedFiles()
    app.state.templates = {}
    app.state.site_keys = {}
    app.state.metrics = metrics_
    app.state.daemon_health = daemon_health
    app.state.outage_logged_at = -ops.OUTAGE_LOG_INTERVAL
    metrics_.watch_store(lambda: app.state.runtime.store)
    return app
