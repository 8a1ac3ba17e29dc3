"""What an SMTP reply is about: the recipient, or digestd itself. Pure functions.

A relay that refuses digestd (no login, not an allowed client, not allowed to relay) answers
every recipient the same way; charging those replies to the recipients as bounces would
pause the whole list over one setting on our side. Enhanced status codes (RFC 3463) help:
x.1.x and x.2.x are about the address and the mailbox, so they are always the recipient's;
5.7.x is security or policy, which is digestd's problem when the text says client, relay or
authentication.
"""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ANGLED = re.compile(r"<[^>]*>")
#: words of refusals aimed at the sending client, as Postfix, Exim, Sendmail and the big
#: providers phrase them
_ABOUT_CLIENT = (
    "client host rejected",
    "relay access denied",
    "relaying denied",
    "relay not permitted",
    "not permitted to relay",
    "relaying not allowed",
    "unable to relay",
    "authentication required",
    "must authenticate",
    "authenticate first",
    "sender address rejected",
)


def enhanced_status(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code a reply text starts with (or carries), if any."""
    match = _ENHANCED.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def refuses_sender(code: int, text: str) -> bool:
    """Whether a permanent reply refuses digestd (client, relay, login) rather than the
    recipient: 530, or a 5xx whose words say so."""
    if code == 530:  # RFC 4954: authentication required
        return True
    if not 500 <= code < 600:
        return False
    status = enhanced_status(text)
    if status is not None and status[1] in (1, 2):
        return False
    lowered = text.lower()
    return any(words in lowered for words in _ABOUT_CLIENT)


def refusal_key(text: str, recipient: str) -> str | None:
    """A permanent reply with the recipient's address taken out, so that the same refusal to
    many recipients compares equal; None when the reply is about the address or mailbox
    (x.1.x, x.2.x), which many recipients at one dead domain may share honestly."""
    status = enhanced_status(text)
    if status is not None and status[1] in (1, 2):
        return None
    text = _ANGLED.sub("<>", text).replace(recipient, "")
    return " ".join(text.lower().split())
