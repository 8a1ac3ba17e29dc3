"""Sending the queue: claim due deliveries, take each in hand, send it, settle the outcome.

`send_pending` claims rows in small batches (see store/deliveries.py for claims and leases),
renders and sends outside any transaction, then records what the transport said:

- accepted → ``sent`` (and the subscriber's bounce count back to 0);
- a temporary reply about the recipient (a 4xx to RCPT TO or DATA: greylisting, a full
  mailbox) → one attempt more, ``pending`` again after ``retry_backoff * 2**(attempts-1)``
  seconds (at most an hour), ``failed`` after ``delivery.max_attempts`` such replies; the run
  goes on with the other recipients;
- a permanent reply about the recipient → ``failed`` at once and one bounce for the
  subscriber (`record_bounce`), who is paused after ``delivery.pause_after_failures`` in a row;
- the transport is the problem (`TransportError`: cannot connect, dropped, timed out, TLS or
  login failure, 421, or a permanent refusal of digestd itself; or the same permanent reply to
  ``SAME_REFUSAL_LIMIT`` recipients in a row) → the run stops, the message in hand and the
  rest of the claim go back to ``pending`` untouched (no attempt, no bounce), and the
  transport is left alone for a backoff that doubles while it stays down (`TransportHealth`).

Nothing fails for being queued during an outage: a row that was never handed over expires
only after ``delivery.max_queue_hours`` (status ``expired``; `digestd deliveries retry
--expired` queues it again).

**The duplicate window.** A row is recorded as sent only after the server accepted the
message. If the process dies (or the database cannot be reached) between that acceptance and
the ledger's commit, the row stays ``sending``; once its send lease ends another run sends
the same digest again, with the same Message-ID, so most mail clients show it once. The
README gives the measured rate per crash.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from digestd.delivery.papers import PaperCache
from digestd.delivery.ranking import Ranker
from digestd.delivery.replies import refusal_key
from digestd.delivery.rising import RisingPicker
from digestd.delivery.transport import Transport, make_transport
from digestd.digest import Composed, Composer
from digestd.errors import (
    PermanentDeliveryError,
    StoreError,
    TemporaryDeliveryError,
    TransportError,
)
from digestd.runtime import Runtime
from digestd.store import ClaimedDelivery, SubscriberRecord

log = logging.getLogger(__name__)

#: rows claimed per round trip; small, so several senders share the work and a dead one
#: holds little
CLAIM_BATCH = 25
#: seconds a claimed row may wait for its turn; after that another run may take it over
#: (the run that claimed it then skips it), so a dead process's claims come back this soon
CLAIM_LEASE = 10.0
#: the same permanent reply (the address taken out) to this many recipients in a row is a
#: refusal of digestd, whatever its words
SAME_REFUSAL_LIMIT = 5
#: the longest the transport is left alone after failures
MAX_TRANSPORT_BACKOFF = 3600.0


def send_lease(timeout: float) -> dt.timedelta:
    """How long the message in hand is ours: a send is a handful of replies, each waited for
    at most `timeout` seconds, and nobody may send the row again before it is over."""
    return dt.timedelta(seconds=3 * timeout + 5)


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


def send_pending(
    runtime: Runtime,
    now: dt.datetime,
    *,
    transport: Transport | None = None,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    health: TransportHealth | None = None,
) -> SendReport:
    """Claim the deliveries that are due (new, or retries whose time has come) and send them.

    Only active subscribers are sent to; rows of unconfirmed, paused or unsubscribed ones are
    settled as failed. `transport` defaults to the configured one (closed at the end). With
    `dry_run` nothing is claimed, rendered or sent; the report lists what would be sent.
    `should_stop` is asked before each message: a daemon being stopped sends no more and
    gives the rest of its claim back at once, so no one waits for a lease to run out.
    `health` carries the transport's state from one run to the next (the daemon keeps one);
    while it is down nothing is claimed.
    """
    store = runtime.store
    report = SendReport()
    if dry_run:
        for delivery in store.claimable_deliveries(now):
            subscriber = store.subscriber_by_id(delivery.subscriber_id)
            if subscriber is not None and subscriber.status == "active":
                report.pending.append(
                    PendingDigest(
                        delivery.id, subscriber.email, delivery.digest_key,
                        len(delivery.paper_ids), delivery.attempts,
                    )
                )
        return report

    health = health if health is not None else TransportHealth()
    max_age = dt.timedelta(hours=runtime.config.delivery.max_queue_hours)
    report.expired = store.expire_deliveries(now, max_age=max_age)
    if report.expired:
        log.warning(
            "deliveries expired count=%d: queued longer than delivery.max_queue_hours=%g "
            "(digestd deliveries retry --expired queues them again)",
            report.expired, runtime.config.delivery.max_queue_hours,
        )
    if health.is_down(now):
        report.transport_down = health.last_error
        return report

    owned = transport is None
    workers = runtime.config.smtp.connections if owned and _is_smtp(runtime) else 1
    transports = (
        [transport] if transport is not None
        else [make_transport(runtime.config) for _ in range(workers)]
    )
    _share_pace(transports)
    composer = Composer(runtime.config)
    started = time.monotonic()

    def clock() -> dt.datetime:
        # `now` moved on by the time spent, so long runs take fresh leases and backoffs.
        return now + dt.timedelta(seconds=time.monotonic() - started)

    def stop() -> bool:
        # one worker finding the transport down stops the others' claiming too
        return should_stop() or health.is_down(clock())

    shared = _Shared(composer, PaperCache(runtime.store))
    senders = [
        _Sender(runtime, each, shared, clock, SendReport(), stop, health)
        for each in transports
    ]
    try:
        if len(senders) == 1:
            senders[0].run()
        else:
            _run_side_by_side(senders)
    finally:
        for sender in senders:
            report.merge(sender.report)
        report.renders = composer.renderer.renders
        if owned:
            for each in transports:
                each.close()
    if report.sent or report.failed or report.retrying or report.deferred:
        log.info("digests sent %s", report)
    return report


def _is_smtp(runtime: Runtime) -> bool:
    return runtime.config.mail.transport == "smtp"


def _share_pace(transports: list[Transport]) -> None:
    """One rate limit for all of a run's connections."""
    pacers = [t.pacer for t in transports if hasattr(t, "pacer")]
    for each in transports[1:]:
        if hasattr(each, "pacer") and pacers:
            each.pacer = pacers[0]


def _run_side_by_side(senders: list[_Sender]) -> None:
    """Each sender on its own connection in its own thread; the first error is raised."""
    errors: list[BaseException] = []

    def work(sender: _Sender) -> None:
        try:
            sender.run()
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(sender,), name=f"smtp-{number}", daemon=True)
        for number, sender in enumerate(senders, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class _Shared:
    """What a run's senders share: the rendered bodies and the papers, behind one lock
    (composing is CPU work under the GIL anyway; the connections overlap their waits)."""

    def __init__(self, composer: Composer, papers: PaperCache) -> None:
        self.composer = composer
        self.papers = papers
        self.lock = threading.Lock()


class _TransportDown(Exception):
    """Raised inside a run to stop it: the transport cannot take mail now."""


class _Sender:
    def __init__(
        self, runtime: Runtime, transport: Transport, shared: _Shared,
        clock: Callable[[], dt.datetime], report: SendReport,
        should_stop: Callable[[], bool], health: TransportHealth,
    ):
        self.should_stop = should_stop
        self.store = runtime.store
        self.config = runtime.config
        self.transport = transport
        self.shared = shared
        self.clock = clock
        self.report = report
        self.health = health
        self.topic_names = {t.slug: t.name for t in self.store.topics(include_inactive=True)}
        self.ranker = Ranker(runtime)
        self.rising = RisingPicker(runtime)
        #: this run's name on its claims; only rows claimed under it are taken in hand
        self.claimer = uuid.uuid4().hex
        self.lease = send_lease(self.config.smtp.timeout)
        #: claimed rows neither settled nor held (an ordered set): given back when the run ends
        self.open: dict[int, None] = {}
        #: permanent refusals in a row with the same words, not charged yet
        self.refusals: list[tuple[ClaimedDelivery, str]] = []
        self.refusal_key: str | None = None

    def run(self) -> None:
        try:
            while not self.should_stop():
                claimed = self.store.claim_deliveries(
                    self.clock(), lease=dt.timedelta(seconds=CLAIM_LEASE), limit=CLAIM_BATCH,
                    claimer=self.claimer,
                )
                if not claimed:
                    return
                self.open = dict.fromkeys(item.delivery.id for item in claimed)
                for item in claimed:
                    if self.should_stop():
                        log.info("stopping: the rest of the claimed digests are given back")
                        return
                    self.deliver(item)
                self._charge_refusals()
        except _TransportDown as exc:
            self._give_back(str(exc))
        finally:
            try:
                self._charge_refusals()
            except StoreError:
                log.warning("cannot record refusals; the rows are tried again after their lease")
            self._release(list(self.open))

    # One message ------------------------------------------------------------------------------

    def deliver(self, item: ClaimedDelivery) -> None:
        delivery, subscriber = item.delivery, item.subscriber
        if not self.store.take_claimed(
            delivery.id, claimer=self.claimer, until=self.clock() + self.lease
        ):
            # Our claim ran out while earlier messages were sent and another run took it.
            self.open.pop(delivery.id, None)
            return
        try:
            composed = self._compose(item)
        except Exception as exc:
            # A bug or bad data in one digest must not stop everybody else's.
            log.exception(
                "digest not composed delivery=%d subscriber=%d", delivery.id, subscriber.id
            )
            self._temporary(item, f"cannot compose the digest: {exc}")
            return
        if composed is None:
            self.open.pop(delivery.id, None)
            self.store.mark_temporary_failure(
                delivery.id, error="its papers are no longer stored", now=self.clock(),
                retry_backoff=0, max_attempts=1,
            )
            self.report.failed += 1
            return
        try:
            self._send(composed)
        except TemporaryDeliveryError as exc:
            self.health.worked()  # it answered about the recipient: it is up
            self._charge_refusals()
            self._temporary(item, str(exc))
            return
        except PermanentDeliveryError as exc:
            self.health.worked()
            self._refused(item, str(exc))
            return
        self.health.worked()
        self._charge_refusals()
        self._record_sent(item, composed)

    def _send(self, composed: Composed) -> None:
        """Hand the message over; a connection problem gets one fresh connection (the first
        may have been a stale one), a second one in a row means the transport is down."""
        for tries in (1, 2):
            try:
                self.transport.send(composed.outgoing, envelope_from=composed.envelope_from)
                return
            except TransportError as exc:
                if exc.refused or tries == 2:
                    raise _TransportDown(str(exc)) from exc
                log.info("smtp connection failed, trying a fresh one error=%r", str(exc))

    def _record_sent(self, item: ClaimedDelivery, composed: Composed) -> None:
        delivery, subscriber = item.delivery, item.subscriber
        # Accepted: from here until the commit below is the one window for a duplicate.
        self.open.pop(delivery.id, None)
        for tries in (1, 2):
            try:
                self.store.mark_sent(
                    delivery.id, message_id=composed.message_id, now=self.clock(),
                    # With a bounce mailbox, a relay's acceptance says nothing about delivery:
                    # clearing the count would undo every bounce that came back by mail.
                    clear_bounces=subscriber.bounce_count != 0 and not self.config.reads_bounces,
                )
                break
            except StoreError:
                if tries == 2:
                    # Not given back: the row keeps its send lease, so nothing resends this
                    # accepted message before the lease ends.
                    log.error(
                        "digest accepted but not recorded delivery=%d subscriber=%d; it is "
                        "sent again after its lease unless the ledger is fixed by then",
                        delivery.id, subscriber.id,
                    )
                    raise
                time.sleep(0.5)
        self.report.sent += 1
        log.debug(
            "digest sent delivery=%d subscriber=%d papers=%d",
            delivery.id, subscriber.id, len(delivery.paper_ids),
        )

    def _compose(self, item: ClaimedDelivery) -> Composed | None:
        delivery, subscriber = item.delivery, item.subscriber
        with self.shared.lock:
            selected = self.shared.papers.selected(delivery.paper_ids, subscriber.topics)
            if not selected:
                return None
            ranking = self.ranker.ranking(
                subscriber, selected, delivery.since_batch_id, delivery.through_batch_id
            )
            now = self.clock()
            return self.shared.composer.compose(
                subscriber, selected, self.topic_names, digest_key=delivery.digest_key,
                now=now, ranking=ranking, rising=self.rising.pick(subscriber, selected, now),
            )

    def _temporary(self, item: ClaimedDelivery, error: str) -> None:
        delivery, subscriber = item.delivery, item.subscriber
        self.open.pop(delivery.id, None)
        record = self.store.mark_temporary_failure(
            delivery.id, error=error, now=self.clock(),
            retry_backoff=self.config.delivery.retry_backoff,
            max_attempts=self.config.delivery.max_attempts,
        )
        gave_up = record is not None and record.status == "failed"
        if gave_up:
            self.report.failed += 1
        else:
            self.report.retrying += 1
        log.warning(
            "digest not sent delivery=%d subscriber=%d attempts=%s retry_at=%s error=%r",
            delivery.id, subscriber.id, record.attempts if record else "-",
            record.next_attempt_at.isoformat() if record and record.next_attempt_at else "never",
            error,
        )

    # Permanent refusals -----------------------------------------------------------------------

    def _refused(self, item: ClaimedDelivery, error: str) -> None:
        """A permanent reply: charged to the recipient, unless the same words keep coming
        for every recipient, which makes it a refusal of digestd (held back until known)."""
        self.open.pop(item.delivery.id, None)
        key = refusal_key(error, item.subscriber.email)
        if key is None or key != self.refusal_key:
            self._charge_refusals()
        if key is None:
            self._bounce(item, error)
            return
        self.refusal_key = key
        self.refusals.append((item, error))
        if len(self.refusals) >= SAME_REFUSAL_LIMIT:
            held = [i.delivery.id for i, _ in self.refusals]
            self.refusals, self.refusal_key = [], None
            self.open.update(dict.fromkeys(held))
            raise _TransportDown(
                f"the same refusal for {len(held)} recipients in a row: {error}"
            )

    def _charge_refusals(self) -> None:
        held, self.refusals, self.refusal_key = self.refusals, [], None
        for item, error in held:
            self._bounce(item, error)

    def _bounce(self, item: ClaimedDelivery, error: str) -> None:
        delivery, subscriber = item.delivery, item.subscriber
        after = self.store.mark_permanent_failure(
            delivery.id, error=error, pause_after=self.config.delivery.pause_after_failures,
            now=self.clock(),
        )
        self.report.failed += 1
        record: SubscriberRecord | None = after[0] if after else None
        paused = bool(after and after[1])
        self.report.paused += paused
        log.warning(
            "digest refused delivery=%d subscriber=%d bounces=%s paused=%s error=%r",
            delivery.id, subscriber.id, record.bounce_count if record else "-",
            "yes" if paused else "no", error,
        )

    # Giving claims back -----------------------------------------------------------------------

    def _give_back(self, error: str) -> None:
        """The transport is down: everything claimed waits out its backoff, uncharged."""
        now = self.clock()
        until = self.health.failed(now, self.config.delivery.retry_backoff, error)
        self.report.transport_down = error
        ids = list(self.open)
        self.open = {}
        log.warning(
            "transport down, nothing charged, next try at %s deliveries_waiting=%d error=%r",
            until.isoformat(timespec="seconds"), len(ids), error,
        )
        self._release(ids, next_attempt_at=until, error=error)

    def _release(
        self, ids: list[int], *, next_attempt_at: dt.datetime | None = None,
        error: str | None = None,
    ) -> None:
        if not ids:
            return
        self.report.deferred += len(ids)
        self.open = {}
        try:
            self.store.release_claims(ids, next_attempt_at=next_attempt_at, error=error)
        except StoreError:
            # Their leases will run out and another run will pick them up.
            log.warning("cannot release claims deliveries=%s", ",".join(map(str, ids)))
