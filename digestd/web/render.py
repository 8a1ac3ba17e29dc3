"""Pages from ``templates/web/``: one autoescaping Jinja2 environment, the security headers.

Every page goes through `render`, so every page carries the same Content-Security-Policy
(no script at all, no framing) and the base context (`base_url`, `links`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digestd import links
from digestd.feeds import FORMATS, xml_safe
from digestd.runtime import Runtime
from digestd.web.security import PAGE_HEADERS


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def templates(request: Request) -> jinja2.Environment:
    """The Jinja2 environment of the running configuration's templates directory."""
    directory = runtime_of(request).config.templates_dir / "web"
    envs: dict[Path, jinja2.Environment] = request.app.state.templates
    env = envs.get(directory)
    if env is None:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=True,
            auto_reload=True,  # edited templates show without a restart
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["clean"] = xml_safe
        env.globals["links"] = links
        env.globals["feed_formats"] = FORMATS
        envs[directory] = env
    return env


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page from ``templates/web/``; `base_url` and `links` are available to every template."""
    config = runtime_of(request).config
    base_context = {
        "base_url": config.base_url,
        # forms post to the path the proxy serves (the CSRF token binds the path without it)
        "path_prefix": links.path_prefix(config.base_url),
        "request_path": request.url.path,
        "self_service": config.subscribe.enabled,
    }
    html = templates(request).get_template(template).render({**base_context, **(context or {})})
    return HTMLResponse(
        html, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})}
    )


@cache
def timezone_names() -> tuple[str, ...]:
    """IANA names offered in the forms' time zone list (the legacy aliases left out)."""
    legacy = ("Etc/", "SystemV/", "US/", "posix", "right")
    names = sorted(
        name for name in zoneinfo.available_timezones()
        if "/" in name and not name.startswith(legacy)
    )
    return (*names, "UTC")
