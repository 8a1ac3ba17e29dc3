"""Reading the envelope sender's mailbox: bounces, complaints and unsubscribe requests.

The mailbox is a Maildir (``bounces.maildir``, where a local MTA delivers) or an IMAP folder
(``bounces.imap_*``, read with imap-tools); the daemon's leader reads it every
``bounces.check_interval`` seconds, and ``digestd bounces check`` reads it now. Each message
is classified (`digestd.delivery.bounces`) and acted on:

- a hard bounce adds ``delivery.hard_bounce_score`` to the subscriber's bounce score (the one
  SMTP refusals raise), a soft one ``delivery.soft_bounce_score``; at
  ``delivery.pause_after_failures`` they are paused (see `digestd.bounce_score`);
- a complaint or an unsubscribe request unsubscribes them;
- a delay notice or an automatic reply changes nothing;
- what cannot be classified, or names nobody digestd knows, is kept: copied into the Maildir
  ``<data_dir>/bounces-kept`` (``digestd bounces list`` shows it) before it leaves the
  mailbox. A message is removed from the mailbox only after its outcome is recorded, so a
  crash or a database error leaves it there for the next read: nothing is lost.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import mailbox
import os
import ssl
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from digestd.bounce_score import Severity
from digestd.config import Config
from digestd.delivery.bounces import Verdict, classify, parse
from digestd.delivery.tls import client_context, is_loopback
from digestd.errors import ConfigError, DeliveryError, StoreError
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord

log = logging.getLogger(__name__)

IMAP_PASSWORD_ENV = "DIGESTD_IMAP_PASSWORD"
#: the header a kept message carries, saying why it was kept
KEPT_HEADER = "X-Digestd-Kept"


@dataclass
class IntakeReport:
    read: int = 0
    bounces: int = 0
    paused: int = 0
    unsubscribed: int = 0
    ignored: int = 0
    kept: int = 0
    #: messages left in the mailbox for the next read (an error while acting on them)
    left: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"read={self.read} bounces={self.bounces} paused={self.paused} "
            f"unsubscribed={self.unsubscribed} ignored={self.ignored} kept={self.kept} "
            f"left={self.left}"
        )


class Source(Protocol):
    name: str

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(key, raw message) of every message in the mailbox."""

    def remove(self, key: str) -> None:
        """Take a handled message out of the mailbox."""

    def close(self) -> None: ...


class MaildirSource:
    """A Maildir's new/ and cur/ messages; handled ones are deleted."""

    def __init__(self, path: Path):
        self.path = path
        self.name = f"maildir {path}"
        self._box = mailbox.Maildir(path, factory=None, create=False)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        try:
            keys = list(self._box.iterkeys())
        except FileNotFoundError:
            return  # an MTA creates new/ and cur/ with the first delivery
        for key in keys:
            try:
                data = self._box.get_bytes(key)
            except (KeyError, FileNotFoundError):
                continue  # taken by another reader meanwhile
            yield key, data

    def remove(self, key: str) -> None:
        with contextlib.suppress(KeyError, FileNotFoundError):
            self._box.remove(key)

    def close(self) -> None:
        self._box.close()


class ImapSource:
    """One IMAP folder; handled messages are deleted (and expunged) by UID.

    Over TLS the server's certificate is verified (`bounces.imap_ca_file` or the system's
    store); with "starttls" a server that does not offer it is refused before the login,
    never read in plaintext.
    """

    def __init__(self, config: Config, environ: os._Environ[str] | dict[str, str] = os.environ):
        from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted

        settings = config.bounces
        self.name = f"imap {settings.imap_host}:{settings.imap_port}/{settings.imap_folder}"
        if settings.imap_security == "none" and not is_loopback(settings.imap_host):
            raise ConfigError(
                f"bounces.imap_security is 'none': the IMAP password would cross the network "
                f"to {settings.imap_host} unencrypted; set it to 'tls' or 'starttls' (only a "
                "server on this machine may take a login in clear)"
            )
        password = _imap_password(config, environ)
        box: Any = None
        try:
            if settings.imap_security == "none":
                box = MailBoxUnencrypted(settings.imap_host, settings.imap_port, timeout=30)
            else:
                kind = MailBox if settings.imap_security == "tls" else MailBoxStartTls
                context = client_context(settings.imap_ca_file, "bounces.imap_ca_file")
                box = kind(settings.imap_host, settings.imap_port, timeout=30,
                           ssl_context=context)
            self._box = box
            self._box.login(settings.imap_username, password, initial_folder=settings.imap_folder)
        except ConfigError:
            raise
        except Exception as exc:  # imaplib, ssl and socket errors, imap-tools' own
            # A connection that failed half-way (no STARTTLS, a bad certificate, a refused
            # login) is closed now: left to the garbage collector, the server would see it end
            # whenever a collection found it (imap-tools' mailbox is a reference cycle).
            _close_connections(exc, box)
            traceback.clear_frames(exc.__traceback__)
            raise DeliveryError(f"cannot read {self.name}: {_imap_failure(exc)}") from exc

    def messages(self) -> Iterator[tuple[str, bytes]]:
        # Peek (no \Seen): a message left after an error looks untouched to the next read.
        for message in self._box.fetch(mark_seen=False, bulk=50):
            yield message.uid or "", message.obj.as_bytes()

    def remove(self, key: str) -> None:
        if key:
            self._box.delete([key])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._box.logout()


def _close_connections(exc: BaseException, box: Any) -> None:
    """Close the IMAP connections a failed open made: the mailbox's, and any a constructor
    that raised still holds in the frames of `exc` (imap-tools makes them inside)."""
    import imaplib

    clients = [getattr(box, "client", None)]
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        clients += [v for v in frame.f_locals.values() if isinstance(v, imaplib.IMAP4)]
    for client in clients:
        for part in (getattr(client, "file", None), getattr(client, "sock", None)):
            if part is not None:
                with contextlib.suppress(OSError):
                    part.close()


def _imap_failure(exc: Exception) -> str:
    import imaplib

    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"untrusted TLS certificate: {exc.verify_message or exc} (check "
            "bounces.imap_host, or set bounces.imap_ca_file to the CA that signed it)"
        )
    if isinstance(exc, imaplib.IMAP4.abort) and "TLS not supported" in str(exc):
        return (
            "the server does not offer STARTTLS, and the password is not sent in clear "
            "(check bounces.imap_security and imap_port)"
        )
    return str(exc)


def _imap_password(config: Config, environ: os._Environ[str] | dict[str, str]) -> str:
    path = config.bounces.imap_password_file
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"bounces.imap_password_file {path}: cannot read: {exc.strerror or exc}"
            ) from exc
    return environ.get(IMAP_PASSWORD_ENV, "")


def sources(config: Config) -> list[Source]:
    """The configured mailboxes, opened.

    A Maildir is left for the MTA to create (its delivery agent must own it); until its
    first delivery it is simply empty.
    """
    opened: list[Source] = []
    if config.bounces.maildir:
        path = Path(config.bounces.maildir)
        if not path.is_dir():
            raise ConfigError(f"bounces.maildir {path}: no such directory")
        opened.append(MaildirSource(path))
    if config.bounces.imap_host:
        opened.append(ImapSource(config))
    return opened


# Acting on a verdict ------------------------------------------------------------------------


def _subscriber(runtime: Runtime, verdict: Verdict) -> SubscriberRecord | None:
    store = runtime.store
    if verdict.token:
        found = store.subscriber_by_token(verdict.token)
        if found is not None:
            return found
    for address in verdict.addresses:
        found = store.subscriber(address.strip().lower())
        if found is not None:
            return found
    return None


def act(runtime: Runtime, verdict: Verdict, report: IntakeReport) -> str | None:
    """Apply `verdict`; the reason to keep the message for an operator, or None."""
    if verdict.kind in ("delayed", "auto-reply") or (
        verdict.kind == "soft" and not runtime.config.delivery.soft_bounce_score
    ):
        report.ignored += 1
        log.info("bounce mailbox: ignored kind=%s reason=%r", verdict.kind, verdict.reason)
        return None
    if verdict.kind == "unknown":
        return verdict.reason
    subscriber = _subscriber(runtime, verdict)
    if subscriber is None:
        return f"{verdict.kind} for nobody digestd knows ({verdict.reason})"
    store = runtime.store
    if verdict.kind in ("bounce", "soft"):
        severity: Severity = "hard" if verdict.kind == "bounce" else "soft"
        after = store.record_bounce(
            subscriber.id, error=f"{severity} bounce by mail: {verdict.reason}",
            pause_after=runtime.config.delivery.pause_after_failures, severity=severity,
        )
        report.bounces += 1
        paused = after is not None and after.status == "paused" and subscriber.status != "paused"
        report.paused += paused
        log.warning(
            "bounce by mail subscriber=%d severity=%s bounces=%s score=%s paused=%s reason=%r",
            subscriber.id, severity, after.bounce_count if after else "-",
            f"{after.bounce_score:g}" if after else "-", "yes" if paused else "no",
            verdict.reason,
        )
        return None
    # a complaint or an unsubscribe request
    if subscriber.status != "unsubscribed":
        store.set_subscriber_status(subscriber.id, "unsubscribed")
        report.unsubscribed += 1
    log.info("unsubscribed by mail subscriber=%d kind=%s", subscriber.id, verdict.kind)
    return None


def keep(config: Config, data: bytes, reason: str) -> None:
    """Copy a message into the kept Maildir, with the reason on top."""
    config.bounces_kept_dir.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(config.bounces_kept_dir, create=True)
    try:
        line = " ".join(reason.split())[:500].encode("utf-8", "replace")
        box.add(KEPT_HEADER.encode() + b": " + line + b"\n" + data)
    finally:
        box.close()


def read_bounces(runtime: Runtime, *, opened: list[Source] | None = None) -> IntakeReport:
    """Read every configured mailbox once; one bad message never stops the rest."""
    config = runtime.config
    report = IntakeReport()
    envelope_sender = config.mail.envelope_sender
    for source in opened if opened is not None else sources(config):
        try:
            for key, data in source.messages():
                report.read += 1
                try:
                    verdict = classify(data, envelope_sender)
                    reason = act(runtime, verdict, report)
                    if reason is not None:
                        keep(config, data, reason)
                        report.kept += 1
                        log.warning("bounce mailbox: kept for an operator reason=%r", reason)
                except (StoreError, OSError) as exc:
                    report.left += 1
                    report.errors.append(f"{source.name} {key}: {exc}")
                    log.error("bounce mailbox: left for the next read key=%s error=%r", key, exc)
                    continue
                source.remove(key)
        finally:
            source.close()
    if report.read:
        log.info("bounce mailbox read %s", report)
    return report


# The kept folder ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptMessage:
    key: str
    date: str
    sender: str
    subject: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {
            "key": self.key, "date": self.date, "from": self.sender, "subject": self.subject,
            "reason": self.reason,
        }


def kept_messages(config: Config) -> list[KeptMessage]:
    """What the intake kept for an operator, oldest first."""
    path = config.bounces_kept_dir
    if not path.is_dir():
        return []
    box = mailbox.Maildir(path, create=False)
    found = []
    try:
        for key in box.iterkeys():
            message = parse(box.get_bytes(key))
            date = message.get("Date")
            try:
                when = email.utils.parsedate_to_datetime(str(date)).isoformat() if date else ""
            except (TypeError, ValueError):
                when = str(date)
            found.append(KeptMessage(
                key=key, date=when, sender=" ".join(str(message.get("From", "")).split()),
                subject=" ".join(str(message.get("Subject", "")).split()),
                reason=" ".join(str(message.get(KEPT_HEADER, "")).split()),
            ))
    finally:
        box.close()
    return sorted(found, key=lambda m: (m.date, m.key))
