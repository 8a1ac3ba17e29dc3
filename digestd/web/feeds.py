"""Serving feeds: the public files `digestd.feeds.build_feeds` wrote, kept in memory while
their inode, size and mtime stay the same (a conditional request costs one stat()); private
feeds and archive pages rendered per request from the store, never written to disk."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from digestd.feeds import CONTENT_TYPES, FeedDoc, all_doc, private_doc, render_feed, topic_doc
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord, TopicRecord
from digestd.web.http import accepts_gzip, strong_etag, validated_response
from digestd.web.render import runtime_of

#: the public feed files, relative to the feeds directory; nothing else is ever opened
PUBLIC_FEED = re.compile(
    r"(?:all|rising|topics/[A-Za-z0-9-]{1,64})\.(?:rss|atom|json)|topics\.opml"
)
FEED_NAME = re.compile(r"(?P<name>[A-Za-z0-9_-]{1,64})\.(?P<fmt>rss|atom|json)")
#: an archive page: "<number>.<format>"; page numbers start at 1
ARCHIVE_PAGE = re.compile(r"(?P<page>[1-9][0-9]{0,8})\.(?P<fmt>rss|atom|json)")
#: archive pages never change once full: readers and proxies may keep them for a week
ARCHIVE_MAX_AGE = 7 * 24 * 3600
#: responses that depend on a secret in the URL: not to be shared, indexed or leaked
PRIVATE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


# Feed files ------------------------------------------------------------------------------------


@dataclass(slots=True)
class FeedFile:
    identity: tuple[int, int, int]
    body: bytes
    etag: str
    last_modified: dt.datetime
    _gzipped: bytes | None = None
    #: the header fields of a 304 for this version, by (gzip, max-age): see web.conditional
    not_modified: dict[tuple[bool, int], list[tuple[bytes, bytes]]] = field(default_factory=dict)

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
    topic = topic_or_404(runtime, request.path_params["slug"])
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


def topic_or_404(runtime: Runtime, slug: str) -> TopicRecord:
    topic = next((t for t in runtime.store.topics() if t.slug == slug), None)
    if topic is None:
        raise HTTPException(404)
    return topic
