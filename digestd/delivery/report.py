"""What a sending run reports, and the transport's health, which the daemon keeps across runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: the longest the transport is left alone after failures
MAX_TRANSPORT_BACKOFF = 3600.0


@dataclass(frozen=True)
class PendingDigest:
    delivery_id: int
    email: str
    digest_key: str
    papers: int
    attempts: int


@dataclass
class SendReport:
    sent: int = 0
    #: temporary replies about the recipient that will be tried again
    retrying: int = 0
    failed: int = 0
    #: subscribers paused by this run (too many permanent failures)
    paused: int = 0
    #: claimed rows given back untried (transport down, or a stop was asked for)
    deferred: int = 0
    #: rows that had been queued longer than delivery.max_queue_hours
    expired: int = 0
    #: why the transport was found down (empty when it was not)
    transport_down: str = ""
    #: distinct bodies rendered (premailer runs)
    renders: int = 0
    #: for a dry run: what would be sent
    pending: list[PendingDigest] = field(default_factory=list)

    def merge(self, other: SendReport) -> None:
        """Add another sender's counts (a run with several connections)."""
        for name in ("sent", "retrying", "failed", "paused", "deferred", "expired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.transport_down = self.transport_down or other.transport_down
        self.pending.extend(other.pending)

    def __str__(self) -> str:
        text = (
            f"sent={self.sent} retrying={self.retrying} failed={self.failed} "
            f"paused={self.paused} deferred={self.deferred} expired={self.expired} "
            f"renders={self.renders}"
        )
        return text + (f" transport_down={self.transport_down!r}" if self.transport_down else "")


@dataclass
class TransportHealth:
    """Whether the transport was found down, and until when it is left alone.

    Kept by the daemon across runs: each failure in a row doubles the wait (from
    ``delivery.retry_backoff``, at most an hour); one accepted message resets it.
    """

    failures: int = 0
    down_until: dt.datetime | None = None
    last_error: str = ""

    def is_down(self, now: dt.datetime) -> bool:
        return self.down_until is not None and now < self.down_until

    def failed(self, now: dt.datetime, backoff: float, error: str) -> dt.datetime:
        self.failures += 1
        delay = min(backoff * 2 ** (self.failures - 1), max(MAX_TRANSPORT_BACKOFF, backoff))
        self.down_until = now + dt.timedelta(seconds=delay)
        self.last_error = error
        return self.down_until

    def worked(self) -> None:
        self.failures = 0
        self.down_until = None
        self.last_error = ""
