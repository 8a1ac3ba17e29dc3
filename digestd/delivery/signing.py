"""DKIM signatures (RFC 6376) with dkimpy, made on the exact bytes a transport hands over.

Signing happens last, on the flattened message, so nothing can change a signed header
afterwards. The list headers are signed as RFC 8058 asks: a provider honours one-click
unsubscribe only when List-Unsubscribe and List-Unsubscribe-Post are covered by a valid
signature. Relaxed canonicalisation survives the re-folding relays sometimes do.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from digestd.config import Config
from digestd.digest.message import parse_from
from digestd.errors import ConfigError

#: the headers covered by the signature, when present
SIGNED_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Id", b"List-Unsubscribe",
    b"List-Unsubscribe-Post", b"Feedback-ID", b"MIME-Version", b"Content-Type",
    b"Auto-Submitted",
)


class DkimSigner:
    def __init__(self, key_file: Path, selector: str, domain: str):
        try:
            self.key = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"mail.dkim_key_file {key_file}: cannot read: {exc.strerror or exc}"
            ) from exc
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("idna")
        try:
            # One trial signature: a key dkimpy cannot use is a configuration error now,
            # not a failure of every message later.
            self.sign(b"From: a@example.org\r\nSubject: x\r\n\r\nx\r\n")
        except dkim.DKIMException as exc:
            raise ConfigError(
                f"mail.dkim_key_file {key_file}: not a usable private key ({exc})"
            ) from exc

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front, in the line ends `data` uses."""
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].splitlines()
            if line[:1] not in (b" ", b"\t") and b":" in line
        }
        headers = [h for h in SIGNED_HEADERS if h.lower() in present]
        signature = dkim.sign(
            data, self.selector, self.domain, self.key,
            include_headers=headers, canonicalize=(b"relaxed", b"relaxed"),
        )
        if b"\r\n" not in data:
            signature = signature.replace(b"\r\n", b"\n")
        return signature + data


def make_signer(config: Config) -> DkimSigner | None:
    """The signer `mail.dkim_*` asks for, or None when DKIM is off."""
    mail = config.mail
    if not mail.dkim_key_file:
        return None
    domain = mail.dkim_domain or parse_from(mail.from_address).domain
    return DkimSigner(Path(mail.dkim_key_file), mail.dkim_selector, domain)
