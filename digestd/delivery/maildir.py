"""The default transport: a Maildir outbox under the data directory.

Nothing leaves the machine, which is what a first run and a test want; read the outbox with
``mutt -f var/outbox``. Each message is written to ``tmp/`` and renamed into ``new/``, so a
reader never sees half a message.
"""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

from digestd.delivery.signing import DkimSigner
from digestd.digest.message import message_bytes
from digestd.digest.wire import Assembled
from digestd.errors import TransportError


class MaildirTransport:
    def __init__(self, path: Path, *, signer: DkimSigner | None = None):
        self.path = Path(path)
        self.signer = signer
        self._box: mailbox.Maildir | None = None

    def send(
        self, message: EmailMessage | Assembled, *, envelope_from: str | None = None
    ) -> None:
        # Flattened with \n line ends: files in a Maildir use the local convention.
        if isinstance(message, Assembled):
            data = message.with_linesep("\n")
        else:
            data = message_bytes(message, message.policy.clone(linesep="\n"))
        if self.signer is not None:
            data = self.signer.sign(data)
        if envelope_from:
            # What a delivering MTA writes: the envelope sender, for a reader to see.
            data = f"Return-Path: <{envelope_from}>\n".encode() + data
        try:
            if self._box is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, create=True)
            self._box.add(data)
        except OSError as exc:
            # A full or read-only disk stops every message alike: the transport is down.
            raise TransportError(
                f"cannot write to the outbox {self.path}: {exc.strerror or exc}"
            ) from exc

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None
