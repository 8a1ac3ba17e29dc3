"""Delivering digests exactly once: plan rows in the ledger, claim them, send, settle.

Planning (`plan_digests`) looks at every active subscriber. One whose cadence slot has come
(immediate subscribers: always) and who has papers waiting gets a delivery row; the row and
the subscriber's advance past those papers are written in one transaction, so a digest is
planned once even when several processes plan at the same moment. A subscriber due with
nothing waiting gets no e-mail; the slot is recorded as handled.

Sending (`send_pending`) claims rows in small batches (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), renders and sends outside any transaction, then records the outcome:

- accepted by the transport → ``sent`` (and the subscriber's bounce count back to 0);
- temporary failure → ``pending`` again after ``retry_backoff * 2**(attempts-1)`` seconds,
  ``failed`` after ``delivery.max_attempts`` attempts;
- permanent failure → ``failed`` at once, the subscriber's bounce count + 1, and the subscriber
  paused after ``delivery.pause_after_failures`` consecutive ones.

A dropped connection loses nothing: the message being sent is retried later, and after a few
temporary failures in a row the run stops and gives the rest of its claim back untouched.

**The duplicate window.** A row is recorded as sent only after the server accepted the
message. If the process dies (or the database cannot be reached) between that acceptance and
the ledger's commit, the row stays ``sending``; when its lease ends another run claims it and
sends the same digest again, with the same Message-ID, so most mail clients show it once.
That window of a few milliseconds per message is the only way a digest goes out twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from digestd.cadence import due_slot
from digestd.delivery.transport import Transport, make_transport
from digestd.digest import Composed, Composer
from digestd.errors import PermanentDeliveryError, StoreError, TemporaryDeliveryError
from digestd.runtime import Runtime
from digestd.store import (
    ClaimedDelivery,
    PaperMatch,
    PaperRecord,
    SelectedPaper,
    Store,
    SubscriberRecord,
)

log = logging.getLogger(__name__)

#: rows claimed per round trip; small, so several senders share the work and a dead one
#: holds little
CLAIM_BATCH = 25
#: this many temporary failures in a row mean the transport is down: stop the run
MAX_CONSECUTIVE_TEMPORARY = 3

Outcome = Literal["sent", "retry", "failed", "error"]


@dataclass(frozen=True)
class PlannedDigest:
    subscriber_id: int
    email: str
    digest_key: str
    papers: int


@dataclass
class PlanReport:
    #: active subscribers looked at
    checked: int = 0
    #: delivery rows created (or, in a dry run, that would be)
    planned: int = 0
    #: due, but no new paper matches their topics: no e-mail, slot recorded
    nothing_new: int = 0
    #: planned by another process in the meantime
    raced: int = 0
    errors: int = 0
    digests: list[PlannedDigest] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"planned={self.planned} nothing_new={self.nothing_new} checked={self.checked} "
            f"raced={self.raced} errors={self.errors}"
        )


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
    #: temporary failures that will be tried again
    retrying: int = 0
    failed: int = 0
    #: subscribers paused by this run (too many permanent failures)
    paused: int = 0
    #: claimed rows given back untried because the transport was down
    deferred: int = 0
    #: distinct bodies rendered (premailer runs)
    renders: int = 0
    #: for a dry run: what would be sent
    pending: list[PendingDigest] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"sent={self.sent} retrying={self.retrying} failed={self.failed} "
            f"paused={self.paused} deferred={self.deferred} renders={self.renders}"
        )


# Planning ------------------------------------------------------------------------------------


def plan_digests(runtime: Runtime, now: dt.datetime, *, dry_run: bool = False) -> PlanReport:
    """Create a delivery row for every active subscriber who is due and has papers waiting.

    With `dry_run` nothing is written; the report lists what would be planned.
    """
    store, config = runtime.store, runtime.config
    report = PlanReport()
    latest = store.latest_batch_id()
    # Subscribers who follow the same topics since the same batch wait for the same papers;
    # with thousands of subscribers and a few hundred distinct selections, asking the database
    # once per selection instead of once per subscriber is most of the planning time.
    selections: dict[tuple[int, frozenset[str]], list[int]] = {}
    for subscriber in store.subscribers(status="active"):
        report.checked += 1
        try:
            due, slot = due_slot(
                subscriber.cadence, subscriber.timezone,
                subscriber.last_slot_at or subscriber.created_at, now, config.schedule,
            )
            if not due:
                continue
            selection_key = (subscriber.since_batch_id, frozenset(subscriber.topics))
            selected = selections.get(selection_key)
            if selected is None:
                selected = (
                    [
                        item.paper.id
                        for item in store.due_papers(subscriber, through_batch=latest)
                    ]
                    if subscriber.since_batch_id < latest
                    else []
                )
                selections[selection_key] = selected
            if not selected:
                report.nothing_new += 1
                if slot is not None and not dry_run:
                    store.mark_slot_handled(subscriber.id, slot)
                continue
            planned = PlannedDigest(
                subscriber.id, subscriber.email, f"{subscriber.since_batch_id}-{latest}",
                len(selected),
            )
            if not dry_run:
                record = store.plan_delivery(
                    subscriber.id,
                    since_batch_id=subscriber.since_batch_id,
                    through_batch_id=latest,
                    paper_ids=selected,
                    slot=slot,
                    now=now,
                )
                if record is None:
                    report.raced += 1
                    continue
                log.info(
                    "digest planned subscriber=%d delivery=%d digest=%s papers=%d",
                    subscriber.id, record.id, record.digest_key, len(selected),
                )
            report.planned += 1
            report.digests.append(planned)
        except StoreError:
            raise  # the database is away: every other subscriber would fail the same way
        except Exception:
            # One subscriber's bad data (say, a time zone that no longer exists) must not
            # keep digests from everybody else.
            log.exception("digest planning failed subscriber=%d", subscriber.id)
            report.errors += 1
    return report


# Sending -------------------------------------------------------------------------------------


class _PaperCache:
    """Papers and their topic matches, read once per run however many digests hold them."""

    def __init__(self, store: Store):
        self.store = store
        self.papers: dict[int, PaperRecord | None] = {}
        self.matches: dict[int, list[PaperMatch]] = {}

    def selected(self, paper_ids: Sequence[int], topics: Sequence[str]) -> list[SelectedPaper]:
        missing = [i for i in dict.fromkeys(paper_ids) if i not in self.papers]
        if missing:
            found = {p.id: p for p in self.store.papers_by_ids(missing)}
            self.matches.update(self.store.paper_matches(found))
            for paper_id in missing:
                self.papers[paper_id] = found.get(paper_id)
        wanted = set(topics)
        selected = []
        for paper_id in paper_ids:
            paper = self.papers[paper_id]
            if paper is not None:
                matches = tuple(m for m in self.matches.get(paper_id, ()) if m.slug in wanted)
                selected.append(SelectedPaper(paper, matches))
        return selected


def _lease_for(timeout: float) -> dt.timedelta:
    # Long enough for a whole batch to time out message by message, so a live sender never
    # sees its claim taken over.
    return dt.timedelta(seconds=max(300.0, CLAIM_BATCH * (timeout + 5)))


def send_pending(
    runtime: Runtime,
    now: dt.datetime,
    *,
    transport: Transport | None = None,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SendReport:
    """Claim the deliveries that are due (new, or retries whose time has come) and send them.

    Only active subscribers are sent to; rows of unconfirmed, paused or unsubscribed ones are
    settled as failed. `transport` defaults to the configured one (closed at the end). With
    `dry_run` nothing is claimed, rendered or sent; the report lists what would be sent.
    `should_stop` is asked before each message: a daemon being stopped sends no more and
    gives the rest of its claim back at once, so no one waits for a lease to run out.
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

    owned = transport is None
    if transport is None:
        transport = make_transport(runtime.config)
    composer = Composer(runtime.config)
    started = time.monotonic()

    def clock() -> dt.datetime:
        # `now` moved on by the time spent, so long runs take fresh leases and backoffs.
        return now + dt.timedelta(seconds=time.monotonic() - started)

    sender = _Sender(runtime, transport, composer, clock, report, should_stop)
    try:
        sender.run()
    finally:
        report.renders = composer.renderer.renders
        if owned:
            transport.close()
    if report.sent or report.failed or report.retrying or report.deferred:
        log.info("digests sent %s", report)
    return report


class _Sender:
    def __init__(
        self, runtime: Runtime, transport: Transport, composer: Composer,
        clock: Callable[[], dt.datetime], report: SendReport,
        should_stop: Callable[[], bool] = lambda: False,
    ):
        self.should_stop = should_stop
        self.store = runtime.store
        self.config = runtime.config
        self.transport = transport
        self.composer = composer
        self.clock = clock
        self.report = report
        self.papers = _PaperCache(self.store)
        self.topic_names = {t.slug: t.name for t in self.store.topics(include_inactive=True)}

    def run(self) -> None:
        lease = _lease_for(self.config.smtp.timeout)
        consecutive = 0
        while not self.should_stop():
            claimed = self.store.claim_deliveries(self.clock(), lease=lease, limit=CLAIM_BATCH)
            if not claimed:
                return
            done = 0
            try:
                for item in claimed:
                    if self.should_stop():
                        log.info("stopping: the rest of the claimed digests are given back")
                        return
                    outcome = self.deliver(item)
                    done += 1
                    consecutive = consecutive + 1 if outcome == "retry" else 0
                    if consecutive >= MAX_CONSECUTIVE_TEMPORARY:
                        log.warning(
                            "transport failing, stopping this run failures=%d", consecutive
                        )
                        return
            finally:
                rest = [item.delivery.id for item in claimed[done:]]
                if rest:
                    self.report.deferred += len(rest)
                    self._release(rest)

    def _release(self, ids: list[int]) -> None:
        try:
            self.store.release_claims(ids)
        except StoreError:
            # Their leases will run out and another run will pick them up.
            log.warning("cannot release claims deliveries=%s", ",".join(map(str, ids)))

    def deliver(self, item: ClaimedDelivery) -> Outcome:
        delivery, subscriber = item.delivery, item.subscriber
        try:
            composed = self._compose(item)
        except Exception as exc:
            # A bug or bad data in one digest must not stop everybody else's.
            log.exception(
                "digest not composed delivery=%d subscriber=%d", delivery.id, subscriber.id
            )
            self._temporary(delivery.id, subscriber, f"cannot compose the digest: {exc}")
            return "error"
        if composed is None:
            self.store.mark_temporary_failure(
                delivery.id, error="its papers are no longer stored", now=self.clock(),
                retry_backoff=0, max_attempts=0,
            )
            self.report.failed += 1
            return "failed"
        try:
            self.transport.send(composed.message)
        except TemporaryDeliveryError as exc:
            return self._temporary(delivery.id, subscriber, str(exc))
        except PermanentDeliveryError as exc:
            after = self.store.mark_permanent_failure(
                delivery.id, error=str(exc), pause_after=self.config.delivery.pause_after_failures
            )
            self.report.failed += 1
            paused = after is not None and after.status == "paused"
            self.report.paused += paused
            log.warning(
                "digest refused delivery=%d subscriber=%d bounces=%s paused=%s error=%r",
                delivery.id, subscriber.id, after.bounce_count if after else "-",
                "yes" if paused else "no", str(exc),
            )
            return "failed"
        # Accepted: from here until the commit below is the one window for a duplicate.
        self.store.mark_sent(delivery.id, message_id=composed.message_id, now=self.clock())
        self.report.sent += 1
        log.debug(
            "digest sent delivery=%d subscriber=%d papers=%d",
            delivery.id, subscriber.id, len(delivery.paper_ids),
        )
        return "sent"

    def _compose(self, item: ClaimedDelivery) -> Composed | None:
        delivery, subscriber = item.delivery, item.subscriber
        selected = self.papers.selected(delivery.paper_ids, subscriber.topics)
        if not selected:
            return None
        return self.composer.compose(
            subscriber, selected, self.topic_names, digest_key=delivery.digest_key,
            now=self.clock(),
        )

    def _temporary(self, delivery_id: int, subscriber: SubscriberRecord, error: str) -> Outcome:
        record = self.store.mark_temporary_failure(
            delivery_id, error=error, now=self.clock(),
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
            delivery_id, subscriber.id, record.attempts if record else "-",
            record.next_attempt_at.isoformat() if record and record.next_attempt_at else "never",
            error,
        )
        return "retry"


# Preview -------------------------------------------------------------------------------------


def preview_digest(
    runtime: Runtime, subscriber: SubscriberRecord, now: dt.datetime
) -> Composed | None:
    """The digest `subscriber` would get now, without touching the ledger; None if nothing.

    A planned but unsent digest is shown as it will go out; otherwise the papers waiting for
    the subscriber's next digest, whether or not its time has come.
    """
    store = runtime.store
    composer = Composer(runtime.config)
    topic_names = {t.slug: t.name for t in store.topics(include_inactive=True)}
    waiting = [
        d for d in store.deliveries(subscriber_id=subscriber.id)
        if d.status in ("pending", "sending")
    ]
    if waiting:
        delivery = waiting[0]
        selected = _PaperCache(store).selected(delivery.paper_ids, subscriber.topics)
        key = delivery.digest_key
    else:
        latest = store.latest_batch_id()
        selected = store.due_papers(subscriber, through_batch=latest)
        key = f"{subscriber.since_batch_id}-{latest}"
    if not selected:
        return None
    return composer.compose(subscriber, selected, topic_names, digest_key=key, now=now)

