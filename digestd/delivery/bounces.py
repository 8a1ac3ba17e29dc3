"""What a mail to the envelope sender is: a bounce, a complaint, an unsubscribe request, …

Pure: bytes in, a `Verdict` out; `digestd.delivery.intake` reads the mailboxes and acts.

- **Delivery status notifications** (RFC 3464, ``multipart/report;
  report-type=delivery-status``): a recipient with ``Action: failed`` and a 5.x.x status is
  a hard bounce; ``failed`` with a 4.x.x status is a soft one (the remote server gave up
  after temporary trouble, a full mailbox say); ``delayed`` (the mail is still queued) and
  success notices change nothing.
- **Complaints** (ARF, RFC 5965, ``report-type=feedback-report``): the reader marked a digest
  as spam; they are unsubscribed.
- **Unsubscribe requests**: what the ``mailto:`` of List-Unsubscribe produces, a mail whose
  subject (or first line) says "unsubscribe".
- **Automatic replies** (RFC 3834 ``Auto-Submitted``, vacation notices): nothing to do.
- Anything else is ``unknown``, and is kept for an operator.

Who a message is about comes first from the address it was sent to: digests go out from
``bounces+<token>@domain`` (VERP), so the token names the subscriber. Failing that, from the
returned original (its List-Unsubscribe link holds the token), and last from the addresses
the report names (Final-Recipient, the original To).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Literal

from digestd import links

Kind = Literal[
    "bounce", "soft", "delayed", "complaint", "unsubscribe", "auto-reply", "unknown"
]

#: headers that may carry the address a message was delivered to, most specific first
_DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_UNSUBSCRIBE_WORD = re.compile(r"\bunsubscribe\b", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_TOKEN_IN_URL = re.compile(r"/unsubscribe/([A-Za-z0-9_-]{13,64})")
_ADDRESS = re.compile(r"[^\s<>;\"]+@[^\s<>;\"]+")
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|abwesenheit|vacation)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    #: the subscriber token the message names (VERP, or the original's unsubscribe link)
    token: str | None = None
    #: addresses the report names as the failed recipient or the complainant
    addresses: tuple[str, ...] = ()
    #: one line for the log and for the operator: the status and reply, or why it is unknown
    reason: str = ""


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def _verp_token(message: Message, envelope_sender: str) -> str | None:
    for header in _DELIVERED_TO:
        for value in message.get_all(header) or ():
            for address in _ADDRESS.findall(str(value)):
                token = links.verp_token(address, envelope_sender)
                if token:
                    return token
    return None


def _original(report: Message) -> Message | None:
    """The returned message (or its headers) inside a report, when there is one."""
    for part in report.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]  # type: ignore[no-any-return]
        if content_type in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True) or b""
            return email.message_from_bytes(raw, policy=email.policy.default)
    return None


def _token_from_original(original: Message | None, envelope_sender: str) -> str | None:
    if original is None:
        return None
    for header in ("Return-Path", "Sender"):
        for address in _ADDRESS.findall(str(original.get(header, ""))):
            token = links.verp_token(address, envelope_sender)
            if token:
                return token
    match = _TOKEN_IN_URL.search(str(original.get("List-Unsubscribe", "")))
    return match.group(1) if match else None


def _status_blocks(report: Message) -> list[Message]:
    """The per-recipient field groups of a message/delivery-status part."""
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [block for block in payload if block.get("Action") or block.get("Status")]
        # Some senders write the fields as text; read them as header blocks.
        text = payload if isinstance(payload, str) else ""
        blocks = [b for b in re.split(r"\r?\n\r?\n", text.strip()) if b.strip()]
        parsed = [email.message_from_string(b + "\n\n") for b in blocks]
        return [b for b in parsed if b.get("Action") or b.get("Status")]
    return []


def _address_field(value: object) -> str:
    """``rfc822; user@example.org`` → ``user@example.org``."""
    text = _text(value)
    return text.split(";", 1)[1].strip().strip("<>") if ";" in text else text.strip("<>")


def _dsn(report: Message, envelope_sender: str, token: str | None) -> Verdict:
    blocks = _status_blocks(report)
    original = _original(report)
    token = token or _token_from_original(original, envelope_sender)
    failed, soft, delayed = [], [], []
    for block in blocks:
        action = _text(block.get("Action")).lower()
        status = _STATUS.search(_text(block.get("Status")))
        recipient = _address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
        detail = " ".join(
            filter(None, [_text(block.get("Status")), _text(block.get("Diagnostic-Code"))])
        )
        if action == "failed" and status and status.group(1) == "5":
            failed.append((recipient, detail))
        elif action == "failed":
            soft.append((recipient, detail))
        elif action == "delayed":
            delayed.append((recipient, detail))
    if failed:
        return Verdict(
            "bounce", token, tuple(r for r, _ in failed if r), failed[0][1][:300]
        )
    if soft:
        return Verdict("soft", token, tuple(r for r, _ in soft if r), soft[0][1][:300])
    if delayed:
        return Verdict("delayed", token, tuple(r for r, _ in delayed if r), delayed[0][1][:300])
    if blocks:
        # relayed, delivered, expanded: a success notice
        return Verdict("auto-reply", token, (), "delivery status notice without a failure")
    return Verdict("unknown", token, (), "delivery report without per-recipient fields")


def _feedback_fields(report: Message) -> Message | None:
    for part in report.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]  # type: ignore[no-any-return]
            raw = payload if isinstance(payload, str) else ""
            return email.message_from_string(raw.strip() + "\n\n")
    return None


def _complaint(report: Message, envelope_sender: str, token: str | None) -> Verdict:
    original = _original(report)
    token = token or _token_from_original(original, envelope_sender)
    fields = _feedback_fields(report)
    feedback_type = _text(fields.get("Feedback-Type")) if fields is not None else ""
    addresses = [
        _address_field(v) for v in (fields.get_all("Original-Rcpt-To") if fields else None) or ()
    ]
    if original is not None and not addresses:
        addresses += [a.lower() for a in _ADDRESS.findall(str(original.get("To", "")))]
    if token is None and not addresses:
        return Verdict("unknown", None, (), "complaint that names no subscriber")
    return Verdict(
        "complaint", token, tuple(addresses), f"complaint ({feedback_type or 'abuse'})"
    )


def _automatic(message: Message) -> bool:
    auto = _text(message.get("Auto-Submitted")).lower()
    if auto and auto != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if _text(message.get("Precedence")).lower() in ("auto_reply", "bulk", "junk", "list"):
        return True
    return bool(_AUTO_SUBJECT.match(_text(message.get("Subject"))))


def _first_line(message: EmailMessage) -> str:
    try:
        body = message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
    except (LookupError, KeyError, ValueError):
        return ""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def classify(data: bytes, envelope_sender: str) -> Verdict:
    """What `data` is, and whom it is about; never raises for odd mail (it is "unknown")."""
    try:
        message = parse(data)
    except Exception as exc:  # the email package is lenient; anything it raises is odd mail
        return Verdict("unknown", None, (), f"unreadable message: {exc}")
    token = _verp_token(message, envelope_sender)
    if message.get_content_type() == "multipart/report":
        report_type = _text(message.get_param("report-type", "")).lower()
        if report_type == "delivery-status":
            return _dsn(message, envelope_sender, token)
        if report_type == "feedback-report":
            return _complaint(message, envelope_sender, token)
    if _automatic(message):
        return Verdict("auto-reply", token, (), "automatic reply")
    subject = _text(message.get("Subject"))
    if _UNSUBSCRIBE_WORD.search(subject) or _UNSUBSCRIBE_WORD.search(_first_line(message)[:200]):
        if token:
            return Verdict("unsubscribe", token, (), "unsubscribe request by mail")
        return Verdict("unknown", None, (), "unsubscribe request to an address without a token")
    return Verdict("unknown", token, (), "not a bounce, complaint or unsubscribe request")
