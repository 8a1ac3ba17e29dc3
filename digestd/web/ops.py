"""Pages for operators and their tools: /healthz, /metrics, and the page shown while the
database is down (instead of a traceback per request)."""

from __future__ import annotations

import ipaddress
import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from digestd.web.render import render, runtime_of

log = logging.getLogger(__name__)


def healthz(request: Request) -> Response:
    """200 when the database answers and, on the leader, the scheduler keeps time; else 503.

    The first line is the verdict (`ok`, or what is wrong); `key: value` lines follow.
    """
    checks: dict[str, str] = {"database": "ok" if runtime_of(request).store.ping() else "down"}
    problems = [] if checks["database"] == "ok" else ["database unavailable"]
    daemon_health = request.app.state.daemon_health
    if daemon_health is not None:
        role, scheduler = daemon_health()
        checks["role"] = role
        checks["scheduler"] = scheduler
        if scheduler != "ok":
            problems.append(f"scheduler {scheduler}")
    lines = ["; ".join(problems) or "ok", *(f"{k}: {v}" for k, v in checks.items())]
    return PlainTextResponse(
        "\n".join(lines) + "\n",
        status_code=503 if problems else 200,
        headers={"Cache-Control": "no-store"},
    )


def metrics(request: Request) -> Response:
    """Prometheus text format, when metrics.enabled and the client is in metrics.allow."""
    config = runtime_of(request).config.metrics
    if not config.enabled:
        raise HTTPException(404)
    client = request.client.host if request.client else ""
    if not _allowed(client, config.allow):
        return PlainTextResponse(
            "forbidden: this address is not in metrics.allow\n", status_code=403,
            headers={"Cache-Control": "no-store"},
        )
    return Response(
        request.app.state.metrics.render(),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )


def _allowed(client: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


#: seconds between two log lines about the database being down, however many requests fail
OUTAGE_LOG_INTERVAL = 60.0


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """A friendly 503 while the database is down: one log line a minute, not a traceback per
    request. The page needs nothing from the database."""
    state = request.app.state
    now = time.monotonic()
    if now - state.outage_logged_at >= OUTAGE_LOG_INTERVAL:
        state.outage_logged_at = now
        log.warning("database unavailable; answering 503 path=%s error=%r",
                    request.url.path, str(exc).splitlines()[0] if str(exc) else repr(exc))
    return render(
        request, "message.html",
        {"title": "Back in a moment",
         "message": "digestd cannot reach its database right now. Please try again in a "
                    "minute; nothing you sent before was lost."},
        status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "30"},
    )


