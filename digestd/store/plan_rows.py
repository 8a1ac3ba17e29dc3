"""Planning's writes to the ledger: a digest's row and the subscriber's advance, together.

Planning writes the row and advances the subscriber's ``since_batch_id`` in one transaction,
so a digest is planned exactly once even when two processes plan at the same moment: the
subscriber row is locked (PostgreSQL) or the write transaction is exclusive (SQLite), and
the unique (subscriber, digest_key) constraint backs both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digestd.store.db import Database, bulk_insert
from digestd.store.deliveries import DeliveryRecord, _delivery_record
from digestd.store.models import Delivery, Subscriber, UtcDateTime


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


class PlanRowStore(Database):
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
                # A run moves nearly every subscriber to the same batch: one UPDATE per target
                # batch instead of a statement per row (on PostgreSQL each is a round trip).
                by_target: dict[int, list[int]] = {}
                for plan in kept:
                    by_target.setdefault(plan.through_batch_id, []).append(plan.subscriber_id)
                for through, members in by_target.items():
                    for start in range(0, len(members), 500):
                        session.execute(
                            update(Subscriber)
                            .where(Subscriber.id.in_(members[start : start + 500]))
                            .values(since_batch_id=through)
                            .execution_options(synchronize_session=False)
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

    def refresh_ledger_statistics(self) -> None:
        """After planning many rows, PostgreSQL's statistics of the ledger as ANALYZE makes
        them. Without any (a fresh table, autovacuum off or not come round yet) the planner
        takes every status for a handful of rows and runs each claim as a nested loop over
        all open rows: seconds per claim at 10,000 rows, growing with the square. Autovacuum
        would do the same, a minute later at best; SQLite needs nothing."""
        if self.is_postgres:
            with self.write() as session:
                session.execute(text("ANALYZE deliveries"))
