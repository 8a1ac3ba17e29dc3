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
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from digestd import links
from digestd.metrics import Metrics
from digestd.web.feeds import PUBLIC_FEED, FeedFile
from digestd.web.http import etag_matches, gzip_acceptable
from digestd.web.middleware import log_request

#: the route `digestd.web.feeds.public_feed` answers, as the metrics and the log name it
FEED_ROUTE = "/feeds/{path:path}"
_FEEDS = "/feeds/"


class ConditionalFeeds:
    """Answers a GET or HEAD of a public feed file whose ETag the client has with a 304."""

    def __init__(self, app: Starlette, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._prefix: tuple[str, str] = ("", "")  # (base_url, its path prefix)
        self._counters: dict[str, Any] = {}

    def _path(self, scope: Scope, base_url: str) -> str:
        """The request path with the public prefix taken off, as `PathPrefix` does."""
        if self._prefix[0] != base_url:
            self._prefix = (base_url, links.path_prefix(base_url))
        prefix = self._prefix[1]
        path: str = scope["path"]
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return path[len(prefix):] or "/"
        return path

    async def answer(self, scope: Scope, send: Send) -> bool:
        """Whether the request was answered (with a 304); False leaves it to the app."""
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return False
        runtime = self.app.state.runtime
        config = runtime.config
        path = self._path(scope, config.base_url)
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
        feed = self.app.state.feed_files.get(config.feeds_dir / name)
        if feed is None:
            return False
        compressed = accept_encoding is not None and gzip_acceptable(
            accept_encoding.decode("latin-1")
        )
        headers = _not_modified_headers(feed, compressed, config.feeds.max_age)
        if not etag_matches(if_none_match.decode("latin-1"), headers[0][1].decode("latin-1")):
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
            if config.log.access_log:
                log_request(scope, path, 304, started)
        return True


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

