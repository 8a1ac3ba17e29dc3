"""The two mails the sign-up form sends: "confirm your subscription" and "you already do".

Rendered from ``templates/email/{confirm,known}.{txt,html}`` and handed to the configured
transport (the Maildir outbox or SMTP) like a digest. Header values go through
`header_text`, so a name or address cannot start a header of its own. These are answers to
a request, not list mail: no List-Unsubscribe, and nothing is sent to an unconfirmed
address but the confirmation itself, which carries no name: whatever was typed as a name
on the form would otherwise reach any address the form was given.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import secrets
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from digestd.config import Config
from digestd.delivery import make_transport
from digestd.digest.message import POLICY, parse_from, set_address, set_header, text_part


def _environment(templates_dir: Path) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir / "email")),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def build_notice(
    config: Config,
    template: str,
    *,
    subject: str,
    to_email: str,
    to_name: str,
    context: dict[str, Any],
    now: dt.datetime,
) -> EmailMessage:
    """A text + HTML message from `template`.txt and `template`.html, every header safe."""
    env = _environment(config.templates_dir)
    full = {"name": to_name, "email": to_email, "base_url": config.base_url, **context}
    sender = parse_from(config.mail.from_address)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    set_address(msg, "To", to_name, to_email)
    set_header(msg, "Subject", subject)
    msg["Date"] = email.utils.format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = f"<{template}.{secrets.token_hex(12)}@{sender.domain or 'localhost'}>"
    # RFC 3834: an automatic answer; vacation responders stay quiet.
    msg["Auto-Submitted"] = "auto-replied"
    if config.mail.feedback_id:
        msg["Feedback-ID"] = config.mail.feedback_id
    # Quoted-printable by hand (lines of at most 76): the policy allows 998-character lines,
    # which the email package would otherwise use for the body too.
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(text_part(env.get_template(f"{template}.txt").render(full), "plain"))
    msg.attach(text_part(env.get_template(f"{template}.html").render(full), "html"))
    return msg


def send_notice(config: Config, message: EmailMessage) -> None:
    """Hand one message to the configured transport; DeliveryError when it cannot."""
    transport = make_transport(config)
    try:
        # Not VERP: an unconfirmed address has no subscription a bounce could pause.
        transport.send(message, envelope_from=config.mail.envelope_sender or None)
    finally:
        transport.close()
