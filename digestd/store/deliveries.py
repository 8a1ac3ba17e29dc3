"""The delivery ledger: one row per subscriber and digest, claimed, sent and settled here.

The life of a row::

    planned ──> pending ──claim──> sending ──take──> in hand ──accepted──> sent
                 ^  │                 │                 │
                 │  │                 └─────────────────┴─transport down──> pending (backoff,
                 │  │                                     no attempt charged)
                 │  ├──temporary reply about the recipient──< (attempts + 1, backoff;
                 │  │                                        failed after max_attempts)
                 │  ├──permanent reply about the recipient──> failed (bounce_count + 1)
                 │  └──older than delivery.max_queue_hours──> expired
                 └──── digestd deliveries retry (failed, expired)

Planning writes the row and advances the subscriber's ``since_batch_id`` in one transaction,
so a digest is planned exactly once even when two processes plan at the same moment: the
subscriber row is locked (PostgreSQL) or the write transaction is exclusive (SQLite), and
the unique (subscriber, digest_key) constraint backs both.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several senders share the work
without waiting on each other. A claim is short (seconds); before a message is sent the
claiming run *takes* it, which extends that one row's lease to cover the send and succeeds
only if the claim is still the run's own. So a dead process's claims come back within
seconds, the one message it had in hand once its send lease ends, and a live process never
sends a row that another run took over. A row is never claimed while an older row of the
same subscriber is pending or sending: digests reach a subscriber in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from digestd.store.db import Database, bulk_insert
from digestd.store.models import Delivery, Paper, Subscriber, UtcDateTime
from digestd.store.papers import _record as _paper_record
from digestd.store.records import PaperRecord
from digestd.store.subscribers import SubscriberRecord, _subscriber_record, record_bounce_in

#: every status a delivery row can have
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "expired")
#: rows still on their way: they hold back the subscriber's later digests
OPEN_STATUSES = ("pending", "sending")
#: the longest wait between two tries of one message (MTAs stop doubling at about an hour)
MAX_RETRY_DELAY = 3600.0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: int
    subscriber_id: int
    digest_key: str
    since_batch_id: int
    through_batch_id: int
    paper_ids: tuple[int, ...]
    status: str
    attempts: int
    last_error: str | None
    message_id: str | None
    next_attempt_at: dt.datetime | None
    claimed_until: dt.datetime | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    queued_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A row this process now owns until its lease ends, with the subscriber it goes to."""

    delivery: DeliveryRecord
    subscriber: SubscriberRecord


def _delivery_record(row: Delivery) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        subscriber_id=row.subscriber_id,
        digest_key=row.digest_key,
        since_batch_id=row.since_batch_id,
        through_batch_id=row.through_batch_id,
        paper_ids=tuple(row.paper_ids or ()),
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        message_id=row.message_id,
        next_attempt_at=row.next_attempt_at,
        claimed_until=row.claimed_until,
        created_at=row.created_at,
        sent_at=row.sent_at,
        queued_at=row.queued_at,
    )


def _claimable(now: dt.datetime):  # type: ignore[no-untyped-def]
    earlier = aliased(Delivery)
    return and_(
        or_(
            and_(
                Delivery.status == "pending",
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            ),
            and_(Delivery.status == "sending", Delivery.claimed_until < now),
        ),
        # In order per subscriber: an older digest still on its way holds this one back.
        ~exists().where(
            earlier.subscriber_id == Delivery.subscriber_id,
            earlier.id < Delivery.id,
            earlier.status.in_(OPEN_STATUSES),
        ),
    )


def retry_delay(attempts: int, backoff: float) -> float:
    """Seconds before the next try after `attempts` tries: doubling, at most an hour."""
    return min(backoff * 2 ** max(attempts - 1, 0), max(MAX_RETRY_DELAY, backoff))


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """One subscriber's digest to plan: the papers, and the batches it covers."""

    subscriber_id: int
    since_batch_id: int
    through_batch_id: int
    paper_ids: Sequence[int]
    slot: dt.datetime | None


def _advance_slots(session: Session, slots: Sequence[tuple[int, dt.datetime]]) -> None:
    """last_slot_at moved forward to each slot, never back."""
    table = Subscriber.__table__
    slot = bindparam("slot", type_=UtcDateTime())
    statement = (
        table.update()
        .where(
            table.c.id == bindparam("subscriber"),
            or_(table.c.last_slot_at.is_(None), table.c.last_slot_at < slot),
        )
        .values(last_slot_at=slot)
    )
    session.execute(statement, [{"subscriber": i, "slot": slot} for i, slot in slots])


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(text.split())[:limit]


class DeliveryStore(Database):
    # Planning --------------------------------------------------------------------------------

    def plan_delivery(
        self,
        subscriber_id: int,
        *,
        since_batch_id: int,
        through_batch_id: int,
        paper_ids: Sequence[int],
        slot: dt.datetime | None,
        now: dt.datetime,
    ) -> DeliveryRecord | None:
        """Create the delivery row and advance the subscriber past it, in one transaction.

        Returns None, writing nothing, when another process planned this subscriber first
        (their ``since_batch_id`` moved) or the subscriber is no longer active.
        """
        try:
            with self.write() as session:
                query = select(Subscriber).where(Subscriber.id == subscriber_id)
                if self.is_postgres:
                    query = query.with_for_update()
                subscriber = session.scalar(query)
                if (
                    subscriber is None
                    or subscriber.status != "active"
                    or subscriber.since_batch_id != since_batch_id
                ):
                    return None
                row = Delivery(
                    subscriber_id=subscriber_id,
                    digest_key=f"{since_batch_id}-{through_batch_id}",
                    since_batch_id=since_batch_id,
                    through_batch_id=through_batch_id,
                    paper_ids=list(paper_ids),
                    status="pending",
                    attempts=0,
                    created_at=now,
                )
                session.add(row)
                session.flush()
                subscriber.since_batch_id = through_batch_id
                if slot is not None and (
                    subscriber.last_slot_at is None or subscriber.last_slot_at < slot
                ):
                    subscriber.last_slot_at = slot
                return _delivery_record(row)
        except IntegrityError:
            # The same digest was planned by another process between our read and our insert.
            return None

    def plan_deliveries(
        self, plans: Sequence[PlannedRow], *, now: dt.datetime
    ) -> dict[int, int]:
        """`plan_delivery` for many subscribers in one transaction: subscriber id -> row id.

        Subscribers another process planned first, or who are no longer active, are left out
        of the result and get nothing written, as with `plan_delivery`. The rows and the
        subscribers' advance commit together, so exactly-once holds as for one subscriber.
        """
        if not plans:
            return {}
        by_id = {plan.subscriber_id: plan for plan in plans}
        try:
            with self.write() as session:
                query = select(Subscriber.id, Subscriber.since_batch_id, Subscriber.status).where(
                    Subscriber.id.in_(list(by_id))
                )
                if self.is_postgres:
                    query = query.with_for_update()
                kept = [
                    by_id[row.id]
                    for row in session.execute(query)
                    if row.status == "active" and row.since_batch_id == by_id[row.id].since_batch_id
                ]
                if not kept:
                    return {}
                bulk_insert(
                    session,
                    Delivery.__table__,
                    [
                        {
                            "subscriber_id": plan.subscriber_id,
                            "digest_key": f"{plan.since_batch_id}-{plan.through_batch_id}",
                            "since_batch_id": plan.since_batch_id,
                            "through_batch_id": plan.through_batch_id,
                            "paper_ids": list(plan.paper_ids),
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                        }
                        for plan in kept
                    ],
                )
                session.execute(
                    update(Subscriber).execution_options(synchronize_session=False),
                    [
                        {"id": plan.subscriber_id, "since_batch_id": plan.through_batch_id}
                        for plan in kept
                    ],
                )
                slots = [plan for plan in kept if plan.slot is not None]
                if slots:
                    _advance_slots(session, [(p.subscriber_id, p.slot) for p in slots])
                ids = [plan.subscriber_id for plan in kept]
                planned: dict[int, int] = {}
                for start in range(0, len(ids), 500):
                    planned.update(
                        session.execute(
                            select(Delivery.subscriber_id, Delivery.id).where(
                                Delivery.subscriber_id.in_(ids[start : start + 500]),
                                Delivery.digest_key.in_(
                                    {f"{p.since_batch_id}-{p.through_batch_id}" for p in kept}
                                ),
                            )
                        ).all()
                    )
                return planned
        except IntegrityError:
            # One of them was planned by another process between our read and our insert:
            # the chunk is rolled back whole; plan it subscriber by subscriber.
            planned = {}
            for plan in plans:
                record = self.plan_delivery(
                    plan.subscriber_id, since_batch_id=plan.since_batch_id,
                    through_batch_id=plan.through_batch_id, paper_ids=plan.paper_ids,
                    slot=plan.slot, now=now,
                )
                if record is not None:
                    planned[plan.subscriber_id] = record.id
            return planned

    def mark_slots_handled(self, slots: Sequence[tuple[int, dt.datetime]]) -> None:
        """`mark_slot_handled` for many subscribers in one statement."""
        if slots:
            with self.write() as session:
                _advance_slots(session, slots)

    # Claiming and settling -------------------------------------------------------------------

    def claim_deliveries(
        self, now: dt.datetime, *, lease: dt.timedelta, limit: int, claimer: str = ""
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` rows that are due, marking them ``sending`` by `claimer` until
        now + lease. No attempt is counted: that happens when the transport answers.

        Rows of subscribers who are not active (unconfirmed, paused, unsubscribed) are
        settled as failed in the same transaction and never handed out.
        """
        with self.write() as session:
            query = (
                select(Delivery).where(_claimable(now)).order_by(Delivery.id).limit(limit)
            )
            if self.is_postgres:
                query = query.with_for_update(skip_locked=True, of=Delivery)
            rows = list(session.scalars(query))
            if not rows:
                return []
            subscribers = {
                s.id: s
                for s in session.scalars(
                    select(Subscriber).where(Subscriber.id.in_({r.subscriber_id for r in rows}))
                )
            }
            claimed = []
            for row in rows:
                subscriber = subscribers.get(row.subscriber_id)
                if subscriber is None or subscriber.status != "active":
                    state = subscriber.status if subscriber else "gone"
                    row.status = "failed"
                    row.claimed_until = None
                    row.claimed_by = None
                    row.last_error = f"not sent: subscriber is {state}"
                    continue
                row.status = "sending"
                row.claimed_until = now + lease
                row.claimed_by = claimer or None
                session.flush()
                claimed.append(
                    ClaimedDelivery(_delivery_record(row), _subscriber_record(session, subscriber))
                )
            return claimed

    def take_claimed(
        self, delivery_id: int, *, claimer: str, until: dt.datetime
    ) -> bool:
        """Take a claimed row in hand for sending: its lease now runs until `until`. False
        (and nothing changed) when the claim is no longer `claimer`'s: it ran out and another
        run took the row over."""
        with self.write() as session:
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == "sending",
                    Delivery.claimed_by == claimer,
                )
                .values(claimed_until=until)
            )
            return bool(result.rowcount)

    def next_delivery_due(self, now: dt.datetime) -> dt.datetime | None:
        """When a row not claimable at `now` becomes so next: the end of a backoff, or of a
        claim's lease (a dead process's); None when nothing waits."""
        with self.read() as session:
            backoff = session.scalar(
                select(func.min(Delivery.next_attempt_at)).where(
                    Delivery.status == "pending", Delivery.next_attempt_at > now
                )
            )
            lease = session.scalar(
                select(func.min(Delivery.claimed_until)).where(Delivery.status == "sending")
            )
        due = [t for t in (backoff, lease) if t is not None]
        return min(due) if due else None

    def claimable_deliveries(self, now: dt.datetime) -> list[DeliveryRecord]:
        """What a claim at `now` would take, without taking it (for --dry-run)."""
        with self.read() as session:
            query = select(Delivery).where(_claimable(now)).order_by(Delivery.id)
            return [_delivery_record(r) for r in session.scalars(query)]

    def mark_sent(
        self, delivery_id: int, *, message_id: str, now: dt.datetime, clear_bounces: bool = True
    ) -> None:
        """The transport accepted the message: settle the row and clear the bounce count.

        `clear_bounces` False skips the subscriber's row, for a caller that knows the count
        is 0 already: the fewer writes here, the shorter the window in which a crash after
        the server's acceptance makes a duplicate.
        """
        # Nothing loaded: this runs once per message sent, and loading the row (with its list
        # of paper ids) and the subscriber cost more than the writes.
        with self.write() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    status="sent", sent_at=now, message_id=message_id, claimed_until=None,
                    claimed_by=None, next_attempt_at=None, last_error=None,
                    attempts=Delivery.attempts + 1,
                )
            )
            if not clear_bounces:
                return
            session.execute(
                update(Subscriber)
                .where(
                    Subscriber.id
                    == select(Delivery.subscriber_id)
                    .where(Delivery.id == delivery_id)
                    .scalar_subquery(),
                    Subscriber.bounce_count != 0,
                )
                .values(bounce_count=0)
            )

    def mark_temporary_failure(
        self,
        delivery_id: int,
        *,
        error: str,
        now: dt.datetime,
        retry_backoff: float,
        max_attempts: int,
    ) -> DeliveryRecord | None:
        """A temporary reply about the recipient: one attempt more, back to pending after a
        backoff doubling per attempt; failed at `max_attempts` (0: never, the queue's age
        limit decides)."""
        with self.write() as session:
            row = session.get(Delivery, delivery_id)
            if row is None:
                return None
            row.attempts += 1
            row.last_error = _one_line(error)
            row.claimed_until = None
            row.claimed_by = None
            if max_attempts and row.attempts >= max_attempts:
                row.status = "failed"
                row.next_attempt_at = None
            else:
                row.status = "pending"
                delay = retry_delay(row.attempts, retry_backoff)
                row.next_attempt_at = now + dt.timedelta(seconds=delay)
            session.flush()
            return _delivery_record(row)

    def mark_permanent_failure(
        self, delivery_id: int, *, error: str, pause_after: int, now: dt.datetime | None = None
    ) -> tuple[SubscriberRecord, bool] | None:
        """Failed for good: one attempt more, and a bounce for the subscriber (see
        `record_bounce`). Returns the subscriber and whether this paused them."""
        now = now or dt.datetime.now(dt.UTC)
        with self.write() as session:
            row = session.get(Delivery, delivery_id)
            if row is None:
                return None
            row.status = "failed"
            row.attempts += 1
            row.last_error = _one_line(error)
            row.claimed_until = None
            row.claimed_by = None
            row.next_attempt_at = None
            subscriber = session.get(Subscriber, row.subscriber_id)
            if subscriber is None:
                return None
            paused = record_bounce_in(
                session, subscriber, error=error, pause_after=pause_after, now=now
            )
            session.flush()
            return _subscriber_record(session, subscriber), paused

    def release_claims(
        self,
        delivery_ids: Iterable[int],
        *,
        next_attempt_at: dt.datetime | None = None,
        error: str | None = None,
    ) -> None:
        """Give claimed rows back untried (or tried against a transport that was down):
        pending again, no attempt counted, not before `next_attempt_at` when given."""
        ids = list(delivery_ids)
        if not ids:
            return
        values: dict[str, object] = {
            "status": "pending", "claimed_until": None, "claimed_by": None,
        }
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if error is not None:
            values["last_error"] = _one_line(error)
        with self.write() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == "sending")
                .values(**values)
            )

    def expire_deliveries(self, now: dt.datetime, *, max_age: dt.timedelta) -> int:
        """Rows queued longer than `max_age` and still not handed over become ``expired``."""
        cutoff = now - max_age
        with self.write() as session:
            result = session.execute(
                update(Delivery)
                .where(
                    func.coalesce(Delivery.queued_at, Delivery.created_at) < cutoff,
                    or_(
                        Delivery.status == "pending",
                        and_(Delivery.status == "sending", Delivery.claimed_until < now),
                    ),
                )
                .values(
                    status="expired", claimed_until=None, claimed_by=None, next_attempt_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)

    def retry_deliveries(
        self, statuses: Sequence[str], *, now: dt.datetime, since: dt.datetime | None = None
    ) -> int:
        """Put failed or expired rows back in the queue, as if planned now (attempts 0)."""
        query = update(Delivery).where(Delivery.status.in_(list(statuses)))
        if since is not None:
            query = query.where(Delivery.created_at >= since)
        with self.write() as session:
            result = session.execute(
                query.values(
                    status="pending", attempts=0, next_attempt_at=None, claimed_until=None,
                    claimed_by=None, queued_at=now,
                ).execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)

    # Reading ---------------------------------------------------------------------------------

    def deliveries(
        self, *, subscriber_id: int | None = None, status: str | None = None
    ) -> list[DeliveryRecord]:
        query = select(Delivery).order_by(Delivery.id)
        if subscriber_id is not None:
            query = query.where(Delivery.subscriber_id == subscriber_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        with self.read() as session:
            return [_delivery_record(r) for r in session.scalars(query)]

    def delivery_listing(
        self, *, status: str | None = None, limit: int | None = None
    ) -> list[tuple[DeliveryRecord, str]]:
        """Deliveries, newest first, each with its subscriber's address."""
        query = (
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .order_by(Delivery.id.desc())
        )
        if status is not None:
            query = query.where(Delivery.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.read() as session:
            return [(_delivery_record(row), email) for row, email in session.execute(query)]

    def delivery_counts(self) -> dict[str, int]:
        with self.read() as session:
            rows = session.execute(
                select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)
            )
            return {status: count for status, count in rows}

    def subscriber_by_id(self, subscriber_id: int) -> SubscriberRecord | None:
        with self.read() as session:
            row = session.get(Subscriber, subscriber_id)
            return _subscriber_record(session, row) if row else None

    def papers_by_ids(self, paper_ids: Sequence[int]) -> list[PaperRecord]:
        """The papers with these ids, in the order given (ids no longer stored are left out)."""
        found: dict[int, PaperRecord] = {}
        ids = list(paper_ids)
        with self.read() as session:
            for start in range(0, len(ids), 500):
                for paper in session.scalars(
                    select(Paper).where(Paper.id.in_(ids[start : start + 500]))
                ):
                    found[paper.id] = _paper_record(paper)
        return [found[i] for i in ids if i in found]
