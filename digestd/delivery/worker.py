"""One connection's share of a sending run: claim, take in hand, compose, send, settle.

What each outcome does to the row is in sender.py's docstring; the claims and leases are in
store/claims.py. A worker takes the next claimed row in hand in the same transaction that
records the previous one as sent, so a message costs one commit after the server's reply.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable

from digestd.delivery.papers import PaperCache
from digestd.delivery.ranking import Ranker
from digestd.delivery.replies import refusal_key
from digestd.delivery.report import SendReport, TransportHealth
from digestd.delivery.rising import RisingPicker
from digestd.delivery.transport import Transport
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
def send_lease(timeout: float) -> dt.timedelta:
    """How long the message in hand is ours: a send is a handful of replies, each waited for
    at most `timeout` seconds, and nobody may send the row again before it is over."""
    return dt.timedelta(seconds=3 * timeout + 5)


class Shared:
    """What a run's senders share: the rendered bodies and the papers, behind one lock
    (composing is CPU work under the GIL anyway; the connections overlap their waits)."""

    def __init__(self, composer: Composer, papers: PaperCache) -> None:
        self.composer = composer
        self.papers = papers
        self.lock = threading.Lock()


class TransportDown(Exception):
    """Raised inside a run to stop it: the transport cannot take mail now."""


class Worker:
    def __init__(
        self, runtime: Runtime, transport: Transport, shared: Shared,
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
        #: rows taken in hand (True) or found taken over (False) along with a mark_sent
        self.taken: dict[int, bool] = {}
        #: permanent refusals in a row with the same words, not charged yet
        self.refusals: list[tuple[ClaimedDelivery, str]] = []
        self.refusal_key: str | None = None

    def run(self) -> None:
        # the per-message writes go over one connection held for the run
        with self.store.holding_ledger():
            self._run()

    def _run(self) -> None:
        try:
            while not self.should_stop():
                claimed = self.store.claim_deliveries(
                    self.clock(), lease=dt.timedelta(seconds=CLAIM_LEASE), limit=CLAIM_BATCH,
                    claimer=self.claimer,
                )
                if not claimed:
                    return
                self.open = dict.fromkeys(item.delivery.id for item in claimed)
                self.taken = {}
                self.ranker.known(claimed)
                for index, item in enumerate(claimed):
                    if self.should_stop():
                        log.info("stopping: the rest of the claimed digests are given back")
                        return
                    self.deliver(item, claimed[index + 1] if index + 1 < len(claimed) else None)
                self._charge_refusals()
        except TransportDown as exc:
            self._give_back(str(exc))
        finally:
            try:
                self._charge_refusals()
            except StoreError:
                log.warning("cannot record refusals; the rows are tried again after their lease")
            self._release(list(self.open))

    # One message ------------------------------------------------------------------------------

    def deliver(self, item: ClaimedDelivery, following: ClaimedDelivery | None = None) -> None:
        """Send one claimed row; `following` is the next, taken in hand when this one is
        recorded as sent."""
        delivery, subscriber = item.delivery, item.subscriber
        taken = self.taken.pop(delivery.id, None)
        if taken is None:
            taken = self.store.take_claimed(
                delivery.id, claimer=self.claimer, until=self.clock() + self.lease
            )
        if not taken:
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
        self._record_sent(item, composed, following)

    def _send(self, composed: Composed) -> None:
        """Hand the message over; a connection problem gets one fresh connection (the first
        may have been a stale one), a second one in a row means the transport is down."""
        for tries in (1, 2):
            try:
                self.transport.send(composed.outgoing, envelope_from=composed.envelope_from)
                return
            except TransportError as exc:
                if exc.refused or tries == 2:
                    raise TransportDown(str(exc)) from exc
                log.info("smtp connection failed, trying a fresh one error=%r", str(exc))

    def _record_sent(
        self, item: ClaimedDelivery, composed: Composed, following: ClaimedDelivery | None
    ) -> None:
        delivery, subscriber = item.delivery, item.subscriber
        # Accepted: from here until the commit below is the one window for a duplicate.
        self.open.pop(delivery.id, None)
        now = self.clock()
        # Taking the next row in the same commit saves a transaction: on SQLite it costs
        # microseconds, on PostgreSQL it rides in the same statement, one round trip either
        # way (as three statements in one transaction there it doubled the duplicates per
        # crash, crash_duplicates.py: 0.44 per kill against 0.22)
        take_next = (
            (following.delivery.id, self.claimer, now + self.lease)
            if following is not None else None
        )
        for tries in (1, 2):
            try:
                took = self.store.mark_sent(
                    delivery.id, message_id=composed.message_id, now=now,
                    # With a bounce mailbox, a relay's acceptance says nothing about delivery:
                    # clearing the count would undo every bounce that came back by mail.
                    clear_bounces=subscriber.bounce_count != 0 and not self.config.reads_bounces,
                    take_next=take_next,
                )
                if following is not None and took is not None:
                    self.taken[following.delivery.id] = took
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
            raise TransportDown(
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
