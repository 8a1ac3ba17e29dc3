"""The SMTP transport: the only module that imports smtplib.

One connection is reused across messages (a digest run may send thousands) and opened again
when the server dropped it. Replies map onto the error tree:

- 4xx to RCPT TO or DATA (greylisting, a full mailbox) → `TemporaryDeliveryError`;
- 5xx to RCPT TO or DATA (a refused recipient, a rejected message) → `PermanentDeliveryError`;
- anything about the connection or about digestd rather than the recipient → `TransportError`:
  cannot connect, dropped, timed out, an untrusted certificate, login refused, STARTTLS
  unsupported, 421, the server refusing our sender address, and permanent refusals of the
  client itself (5.7.x "Client host rejected", "Relay access denied", 530 authentication
  required; see replies.py). Counting those as the recipient's would charge every
  subscriber, and pause them all, over one outage or one wrong setting.

With security "starttls" or "tls" nothing is ever sent before TLS is up, and the certificate
is verified against `smtp.ca_file` or the system's store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path

from digestd.config import SmtpConfig
from digestd.delivery.pace import Pacer
from digestd.delivery.replies import refuses_sender
from digestd.delivery.signing import DkimSigner
from digestd.delivery.tls import client_context, is_loopback
from digestd.digest.message import message_bytes
from digestd.digest.slots import dot_stuffed
from digestd.digest.wire import Assembled
from digestd.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    TransportError,
)

log = logging.getLogger(__name__)

PASSWORD_ENV = "DIGESTD_SMTP_PASSWORD"
#: a connection idle for longer is checked with NOOP before it is used again
IDLE_CHECK_SECONDS = 10.0


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _by_reply(code: int, message: bytes | str, what: str) -> DeliveryError:
    reply = _reply(code, message)
    if code == 421:  # the server is going away, whatever the recipient
        return TransportError(f"{what}: {reply}")
    if refuses_sender(code, reply):
        return TransportError(f"{what}: {reply} (a refusal of digestd, not of the recipient: "
                              "check smtp.username and the relay's client settings)",
                              refused=True)
    if 500 <= code < 600:
        return PermanentDeliveryError(f"{what}: {reply}")
    return TemporaryDeliveryError(f"{what}: {reply}")


def _stuffed(data: bytes) -> bytes:
    """The message as DATA carries it: every line starting with "." gets another one
    (RFC 5321 4.5.2, `dot_stuffed`), and a CRLF before the closing ".". What smtplib does
    with a regular expression over the whole message, here with bytes.replace: a tenth of
    the CPU on a 90 KiB message, where it was as much as the rest of the exchange."""
    data = dot_stuffed(data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Stuffed(bytes):
    """A message dot-stuffed already (Assembled.stuffed), ending in CRLF: DATA sends it as
    it is, with the closing "."."""


#: an address smtplib's quoteaddr would only put in angle brackets (it parses each one with
#: the email package's address parser first, which costs more than the rest of the command)
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+.-]+@[A-Za-z0-9.-]+")


class _Data:
    """MAIL, RCPT and DATA as smtplib sends them (the same replies, the same errors), with
    plain addresses written directly and the message quoted by `_stuffed`."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN_ADDRESS.fullmatch(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)  # type: ignore[misc, no-any-return]
        self.putcmd("mail", f"FROM:<{sender}>{self._options(options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined, no-any-return]

    def rcpt(self, recipient: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN_ADDRESS.fullmatch(recipient):
            return super().rcpt(recipient, options)  # type: ignore[misc, no-any-return]
        self.putcmd("rcpt", f"TO:<{recipient}>{self._options(options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined, no-any-return]

    def _options(self, options: Sequence[str]) -> str:
        return " " + " ".join(options) if options and self.does_esmtp else ""  # type: ignore[attr-defined]

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        if isinstance(msg, str):
            return super().data(msg)  # type: ignore[misc, no-any-return]
        self.putcmd("data")  # type: ignore[attr-defined]
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        self.send(msg + b".\r\n" if isinstance(msg, _Stuffed) else _stuffed(msg))  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined, no-any-return]


class _Client(_Data, smtplib.SMTP):
    pass


class _TlsClient(_Data, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    def __init__(
        self, settings: SmtpConfig, *, environ: Mapping[str, str] = os.environ,
        signer: DkimSigner | None = None,
    ):
        self.settings = settings
        self.environ = environ
        self.signer = signer
        # Read now: a missing password file is a configuration error before anything is claimed.
        self._secret = self._password() if settings.username else ""
        if not (settings.username + self._secret).isascii():
            # smtplib encodes AUTH PLAIN/LOGIN as ASCII; it would raise UnicodeEncodeError on
            # every send, which is no DeliveryError and would stop each run half-way.
            raise ConfigError(
                "smtp.username or the SMTP password holds non-ASCII characters, which "
                "smtplib cannot send in AUTH; use an ASCII password"
            )
        if settings.username and settings.security == "none" and not is_loopback(settings.host):
            # smtplib would send AUTH PLAIN over the open network: the password in clear.
            raise ConfigError(
                f"smtp.username is set but smtp.security is 'none': the password would cross "
                f"the network to {settings.host} unencrypted; set smtp.security to 'starttls' "
                "or 'tls' (only a relay on this machine may take a login in clear)"
            )
        # Built once: loading the trust store per connection is slow, and a bad ca_file is a
        # configuration error, not something to retry message by message.
        self._tls = (
            client_context(settings.ca_file, "smtp.ca_file")
            if settings.security != "none" else None
        )
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0
        #: the rate limit; transports sending side by side share one (`share_pace`)
        self.pacer = Pacer(settings.rate_limit)
        #: connections opened so far (reuse is visible in tests and benchmarks)
        self.connections = 0

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _password(self) -> str:
        if self.settings.password_file:
            path = Path(self.settings.password_file)
            try:
                return path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"smtp.password_file {path}: cannot read: {exc.strerror or exc}"
                ) from exc
        return self.environ.get(PASSWORD_ENV, "")

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        connection: smtplib.SMTP | None = None
        try:
            if settings.security == "tls":
                connection = _TlsClient(
                    settings.host, settings.port, timeout=settings.timeout, context=self._tls,
                )
            else:
                connection = _Client(settings.host, settings.port, timeout=settings.timeout)
            connection.ehlo()
            if settings.security == "starttls":
                # Raises SMTPNotSupportedError when not offered: never fall back to plaintext.
                connection.starttls(context=self._tls)
                connection.ehlo()
            if settings.username:
                connection.login(settings.username, self._secret)
        except smtplib.SMTPAuthenticationError as exc:
            self._quietly_close(connection)
            raise TransportError(
                f"SMTP server {self.where} refused the login of {settings.username!r}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)} (check smtp.username and "
                f"smtp.password_file or {PASSWORD_ENV})"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._quietly_close(connection)
            raise TransportError(
                f"SMTP server {self.where} does not offer STARTTLS or login: {exc} "
                "(nothing was sent; check smtp.security and smtp.username: many servers "
                "offer login only over TLS)"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            self._quietly_close(connection)
            raise TransportError(
                f"SMTP server {self.where} has an untrusted TLS certificate: "
                f"{exc.verify_message or exc} (check smtp.host, or set smtp.ca_file to the "
                "CA that signed it)"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._quietly_close(connection)
            raise TransportError(
                f"cannot connect to SMTP server {self.where}: {exc or type(exc).__name__}"
            ) from exc
        self.connections += 1
        log.debug("smtp connected server=%s", self.where)
        return connection

    def _usable_connection(self) -> smtplib.SMTP:
        connection = self._connection
        if connection is not None and connection.sock is None:
            # smtplib closed it itself (after a 421 to RCPT TO, say): reconnect rather than
            # fail the next message with "please run connect() first".
            self._drop()
            connection = None
        if connection is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            # Servers close idle connections; find out now rather than half-way through a send.
            try:
                code, _ = connection.noop()
            except (smtplib.SMTPException, OSError):
                code = 0
            if code != 250:
                self._drop()
                connection = None
        if connection is None:
            connection = self._connection = self._connect()
        return connection

    def _throttle(self) -> None:
        self.pacer.wait()

    def send(
        self, message: EmailMessage | Assembled, *, envelope_from: str | None = None
    ) -> None:
        if isinstance(message, Assembled):
            # already bytes, with SMTP's line ends
            sender = envelope_from or message.sender
            recipients = list(message.recipients)
            international = not all(a.isascii() for a in [sender, *recipients])
            data = message.data
            # quoted once per body; a signature is made over the message as it is
            if message.stuffed is not None and self.signer is None:
                data = _Stuffed(message.stuffed)
        else:
            sender = envelope_from or message["From"].addresses[0].addr_spec
            recipients = [a.addr_spec for a in message["To"].addresses]
            international = not all(a.isascii() for a in [sender, *recipients])
            # The message's own policy (its header folding), with SMTP's line ends.
            policy = message.policy.clone(linesep="\r\n", utf8=international)
            data = message_bytes(message, policy)
        if self.signer is not None:
            data = self.signer.sign(data)
        self._throttle()
        connection = self._usable_connection()
        options: list[str] = []
        if international:
            if not connection.has_extn("smtputf8"):
                raise PermanentDeliveryError(
                    f"SMTP server {self.where} cannot take the non-ASCII address "
                    f"{recipients[0]!r} (no SMTPUTF8)"
                )
            options.append("SMTPUTF8")
        try:
            connection.sendmail(sender, recipients, data, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
            if code == 421:
                self._drop()
            raise _by_reply(code, reply, "recipient refused") from exc
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code == 421:
                self._drop()
            raise TransportError(
                f"SMTP server {self.where} refused the sender {sender!r}: "
                f"{_reply(exc.smtp_code, exc.smtp_error)} (check mail.from_address)"
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TransportError(
                f"SMTP server {self.where} closed the connection: {exc}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the server is going away; it said so
                self._drop()
            raise _by_reply(exc.smtp_code, exc.smtp_error, "message refused") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TransportError(
                f"SMTP conversation with {self.where} failed: {exc or type(exc).__name__}"
            ) from exc
        finally:
            self._last_used = time.monotonic()

    def _drop(self) -> None:
        self._quietly_close(self._connection)
        self._connection = None

    @staticmethod
    def _quietly_close(connection: smtplib.SMTP | None) -> None:
        if connection is None:
            return
        with contextlib.suppress(OSError):
            connection.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            self._quietly_close(connection)
