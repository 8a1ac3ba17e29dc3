"""The two mails the sign-up form sends: "confirm your subscription" and "you already do".

Rendered from ``templates/email/{confirm,known}.{txt,html}`` and handed to the configured
transport (the Maildir outbox or SMTP) like a digest. Header values go through
`header_text`, so a name or address cannot start a header of its own. These are answers to
a request, not list mail: no List-Unsubscribe, and nothing is sent to an unconfirmed
address but the confirmation itself.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from digestd.config import Config
from digestd.delivery import make_transport
from digestd.digest.message import POLICY, header_text, parse_from


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
    local, _, domain = to_email.rpartition("@")
    msg["To"] = Address(display_name=header_text(to_name), username=local, domain=domain)
    msg["Subject"] = header_text(subject)
    msg["Date"] = email.utils.format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = f"<{template}.{secrets.token_hex(12)}@{sender.domain or 'localhost'}>"
    # RFC 3834: an automatic answer; vacation responders stay quiet.
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(env.get_template(f"{template}.txt").render(full), charset="utf-8")
    msg.add_alternative(
        env.get_template(f"{template}.html").render(full), subtype="html", charset="utf-8"
    )
    return msg


def send_notice(config: Config, message: EmailMessage) -> None:
    """Hand one message to the configured transport; DeliveryError when it cannot."""
    transport = make_transport(config)
    try:
        transport.send(message)
    finally:
        transport.close()
