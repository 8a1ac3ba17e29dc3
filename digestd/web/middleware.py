"""ASGI middleware around the app: a public path prefix, request counting and the access log.

Behind a reverse proxy at `https://example.org/digest`, some proxies pass `/digest/subscribe`
on and some strip it to `/subscribe`; `PathPrefix` makes both reach the same route. The pages
themselves build every URL from `http.base_url` (digestd.links), so they carry the prefix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digestd.metrics import Metrics

access_log = logging.getLogger("digestd.access")

#: path parameters that hold a secret (manage and unsubscribe tokens, confirmation codes,
#: private feed names): the access log names the route instead of the path that holds them
SECRET_PARAMS = frozenset({"token", "code", "name"})


class PathPrefix:
    """Strips `prefix` from request paths that start with it; other paths pass unchanged."""

    def __init__(self, app: ASGIApp, prefix: Callable[[], str]) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = self.prefix()
        if scope["type"] == "http" and prefix:
            path: str = scope["path"]
            if path == prefix or path.startswith(prefix + "/"):
                scope = dict(scope)
                scope["path"] = path[len(prefix):] or "/"
                raw = scope.get("raw_path")
                if raw is not None and raw.startswith(prefix.encode()):
                    scope["raw_path"] = raw[len(prefix):] or b"/"
        await self.app(scope, receive, send)


class RequestAccounting:
    """Counts every answered request by route and status; optionally logs one line for each."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, access_log_on: Callable[[], bool]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log_on = access_log_on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # what the client sees when the app raises before answering

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(template, scope["method"], str(status)).inc()
            if self.access_log_on():
                params = scope.get("path_params") or {}
                shown = template if SECRET_PARAMS & set(params) else scope["path"]
                log_request(scope, shown, status, started)


def log_request(scope: Scope, shown: str, status: int, started: float) -> None:
    """The access log's line for a request answered with `status`; `shown` is its path (or
    its route, when the path holds a secret), `started` its time.monotonic() on arrival."""
    client = scope.get("client")
    access_log.info(
        "request method=%s path=%s status=%d ms=%.1f client=%s",
        scope["method"], _quoted(shown[:200]), status,
        (time.monotonic() - started) * 1000, client[0] if client else "-",
    )


def _quoted(text: str) -> str:
    """The path as one field: spaces and quotes cannot split or forge a key=value."""
    return text if text.isprintable() and " " not in text and '"' not in text else repr(text)
