"""What keeps the web forms safe: CSRF tokens, signed confirmation links, response headers.

CSRF uses a signed double submit. A random value lives in a cookie (``SameSite=Lax``,
``HttpOnly``); every form carries HMAC(site key, cookie value, form action) in a hidden field.
Another site can neither read the cookie nor compute the HMAC without the site key, and a
cross-site POST does not even carry a Lax cookie, so a forged or missing token is refused.
The site key lives in the database (`Store.site_key`), the same for every process.

A confirmation link is ``<subscriber token>.<expiry>.<HMAC>``: it proves the mail was
received, stops working at its expiry, and stops when the subscriber's token is reset.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "digestd_csrf"
CSRF_FIELD = "csrf"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{32}")
#: a browser keeps its CSRF cookie this long; forms rendered earlier must be reloaded
CSRF_COOKIE_MAX_AGE = 7 * 24 * 3600

#: every HTML page: no script at all, no framing, no sniffing
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
#: pages reached through a secret link: never cached, indexed, or leaked in a Referer
PRIVATE_PAGE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _mac(key: bytes, *parts: str) -> str:
    digest = hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


@dataclass
class Csrf:
    """The CSRF state of one request: the browser's cookie value, or a new one to set."""

    key: bytes
    value: str
    is_new: bool

    @classmethod
    def of(cls, request: Request, key: bytes) -> Csrf:
        value = request.cookies.get(CSRF_COOKIE, "")
        if _COOKIE_VALUE.fullmatch(value):
            return cls(key, value, False)
        return cls(key, secrets.token_urlsafe(24), True)

    def token(self, action: str) -> str:
        """The hidden field's value for a form posting to `action` (a path)."""
        return _mac(self.key, "csrf", self.value, action)

    def valid(self, submitted: str | None, action: str) -> bool:
        """True when the cookie came with the request and `submitted` is its token."""
        if self.is_new or not submitted:
            return False
        return hmac.compare_digest(submitted.encode(), self.token(action).encode())

    def set_cookie(self, response: Response, *, secure: bool) -> None:
        if self.is_new:
            response.set_cookie(
                CSRF_COOKIE, self.value, max_age=CSRF_COOKIE_MAX_AGE, path="/",
                httponly=True, samesite="lax", secure=secure,
            )


# Confirmation links ------------------------------------------------------------------------


def confirmation_code(key: bytes, token: str, expires: dt.datetime) -> str:
    stamp = str(int(expires.timestamp()))
    return f"{token}.{stamp}.{_mac(key, 'confirm', token, stamp)}"


@dataclass(frozen=True)
class ConfirmationCode:
    token: str
    expires: dt.datetime


def read_confirmation_code(key: bytes, code: str) -> ConfirmationCode | None:
    """The token and expiry of a well-signed code (expired or not), else None."""
    token, _, rest = code.partition(".")
    stamp, _, mac = rest.partition(".")
    if not token or not stamp.isdigit() or len(stamp) > 12 or not mac:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(key, "confirm", token, stamp).encode()):
        return None
    return ConfirmationCode(token, dt.datetime.fromtimestamp(int(stamp), dt.UTC))


def client_address(request: Request) -> str:
    """The client's IP (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client else "unknown"
