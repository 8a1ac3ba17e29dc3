"""Conditional requests for the public feed files, answered in front of the app.

Feed readers poll `/feeds/*` with `If-None-Match`, and nearly every answer is a 304. Through
the app that 304 passed four middlewares, the router, a Request and a Response object; here it
is the same `FeedFiles` look-up the route makes (one stat()), one comparison and header lists
made once per version of a file. Everything else (a 200, an unknown feed, `If-Modified-Since`
alone, any other path) goes to the app unchanged. The requests answered here are counted and
logged exactly as `RequestAccounting` does it, under the feed route's template.
"""

from __future__ import annotations

import time
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from digestd import links
from digestd.metrics import Metrics
from digestd.web.feeds import PUBLIC_FEED, FeedFile
from digestd.web.http import etag_matches, gzip_acceptable
from digestd.web.middleware import log_request

if TYPE_CHECKING:
    from digestd.config import Config

#: the route `digestd.web.feeds.public_feed` answers, as the metrics and the log name it
FEED_ROUTE = "/feeds/{path:path}"
_FEEDS = "/feeds/"


class _Settings:
    """What a request needs from one configuration, worked out once per configuration (a
    reload replaces it): the path prefix, the feeds directory and each feed file's path.

    Paths are remembered only for files that exist, so requests for made-up feed names
    cannot grow the map.
    """

    __slots__ = ("access_log", "config", "feeds_dir", "max_age", "paths", "prefix")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.prefix = links.path_prefix(config.base_url)
        self.feeds_dir = config.feeds_dir
        self.max_age = config.feeds.max_age
        self.access_log = config.log.access_log
        self.paths: dict[str, Path] = {}


class ConditionalFeeds:
    """Answers a GET or HEAD of a public feed file whose ETag the client has with a 304."""

    def __init__(self, app: Starlette, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._settings: _Settings | None = None
        self._counters: dict[str, Any] = {}

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Whether the request was answered (with a 304); False leaves it to the app."""
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return False
        config = self.app.state.runtime.config
        settings = self._settings
        if settings is None or settings.config is not config:
            settings = self._settings = _Settings(config)
        path = _unprefixed(scope["path"], settings.prefix)
        if not path.startswith(_FEEDS) or not PUBLIC_FEED.fullmatch(name := path[len(_FEEDS):]):
            return False
        if_none_match = accept_encoding = None
        for key, value in scope["headers"]:
            # the first of repeated fields, as Starlette's Headers.get reads them
            if key == b"if-none-match":
                if if_none_match is None:
                    if_none_match = value
            elif key == b"accept-encoding" and accept_encoding is None:
                accept_encoding = value
        if if_none_match is None:
            return False
        started = time.monotonic()
        file_path = settings.paths.get(name) or settings.feeds_dir / name
        feed = self.app.state.feed_files.get(file_path)
        if feed is None:
            return False
        settings.paths.setdefault(name, file_path)
        compressed = accept_encoding is not None and _gzip_acceptable(accept_encoding)
        headers = _not_modified_headers(feed, compressed, settings.max_age)
        etag = headers[0][1]
        # a reader sends back the ETag it was given: the exact bytes need no parsing
        if if_none_match != etag and not etag_matches(
            if_none_match.decode("latin-1"), etag.decode("latin-1")
        ):
            return False
        try:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        finally:
            counter = self._counters.get(method)
            if counter is None:
                counter = self.metrics.http_requests.labels(FEED_ROUTE, method, "304")
                self._counters[method] = counter
            counter.inc()
            if settings.access_log:
                log_request(scope, path, 304, started)
        return True


def _unprefixed(path: str, prefix: str) -> str:
    """The request path with the public prefix taken off, as `PathPrefix` does."""
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix):] or "/"
    return path


@lru_cache(maxsize=256)
def _gzip_acceptable(accept_encoding: bytes) -> bool:
    # readers send one of a handful of Accept-Encoding values, over and over
    return gzip_acceptable(accept_encoding.decode("latin-1"))


def _not_modified_headers(
    feed: FeedFile, compressed: bool, max_age: int
) -> list[tuple[bytes, bytes]]:
    """The 304's header fields, as the feed route and the middlewares would send them."""
    key = (compressed, max_age)
    headers = feed.not_modified.get(key)
    if headers is None:
        etag = f"W/{feed.etag}" if compressed else feed.etag
        headers = [
            (b"etag", etag.encode("latin-1")),
            (b"last-modified", format_datetime(feed.last_modified, usegmt=True).encode()),
            (b"cache-control", f"public, max-age={max_age}".encode()),
            (b"vary", b"Accept-Encoding"),
        ]
        feed.not_modified[key] = headers
    return headers


class App(Starlette):
    """The Starlette app, with conditional feed requests answered before its middleware."""

    conditional_feeds: ConditionalFeeds | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.conditional_feeds is not None
            and await self.conditional_feeds.answer(scope, send)
        ):
            return
        await super().__call__(scope, receive, send)

