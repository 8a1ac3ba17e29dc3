"""What a transport is, and which one the configuration asks for.

A transport hands one message over and raises `TemporaryDeliveryError` (worth retrying) or
`PermanentDeliveryError` (not) when it cannot; returning normally means the message was
accepted, and only then does the ledger record it as sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Protocol

from digestd.config import Config
from digestd.digest.wire import Assembled


class Transport(Protocol):
    def send(
        self, message: EmailMessage | Assembled, *, envelope_from: str | None = None
    ) -> None:
        """Hand `message` over to its recipients (the To header), or raise a DeliveryError.

        An `Assembled` message is bytes already (see digest/wire.py), with its addresses.

        `envelope_from` is the envelope sender (where bounces go); None means the From
        address.
        """

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""


def make_transport(config: Config, environ: Mapping[str, str] | None = None) -> Transport:
    """The transport `mail.transport` names: the Maildir outbox or an SMTP server."""
    from digestd.delivery.signing import make_signer

    signer = make_signer(config)
    if config.mail.transport == "smtp":
        from digestd.delivery.smtp import SmtpTransport

        return SmtpTransport(
            config.smtp, environ=os.environ if environ is None else environ, signer=signer
        )
    from digestd.delivery.maildir import MaildirTransport

    return MaildirTransport(config.outbox_dir, signer=signer)
