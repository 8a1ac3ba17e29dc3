"""The delivery ledger: one row per subscriber and digest, claimed, sent and settled.

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

Planning's writes are in plan_rows.py, claiming and settling in claims.py; this module holds
the records, the queue's administration (expiry, retries) and what is read about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from digestd.store.db import Database
from digestd.store.models import Delivery, Paper, Subscriber
from digestd.store.papers import _record as _paper_record
from digestd.store.records import PaperRecord
from digestd.store.subscribers import SubscriberRecord, _subscriber_record

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
    #: whether the subscriber has a feedback model, read with the claim (None: not known)
    has_model: bool | None = None


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
    return and_(or_(_due_pending(now), _lease_over(now)), _first_open())


def _due_pending(now: dt.datetime):  # type: ignore[no-untyped-def]
    return and_(
        Delivery.status == "pending",
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
    )


def _lease_over(now: dt.datetime):  # type: ignore[no-untyped-def]
    return and_(Delivery.status == "sending", Delivery.claimed_until < now)


def _first_open():  # type: ignore[no-untyped-def]
    # In order per subscriber: an older digest still on its way holds this one back.
    earlier = aliased(Delivery)
    return ~exists().where(
        earlier.subscriber_id == Delivery.subscriber_id,
        earlier.id < Delivery.id,
        earlier.status.in_(OPEN_STATUSES),
    )


def _claimable_each(now: dt.datetime):  # type: ignore[no-untyped-def]
    """`_claimable` as one condition per status: each walks the (status, id) index in order
    and stops at its limit, where the two statuses in one query read and sort every open row
    for each claim (a claim's cost then grows with the queue: quadratic over a run)."""
    return (and_(_due_pending(now), _first_open()), and_(_lease_over(now), _first_open()))


def retry_delay(attempts: int, backoff: float) -> float:
    """Seconds before the next try after `attempts` tries: doubling, at most an hour."""
    return min(backoff * 2 ** max(attempts - 1, 0), max(MAX_RETRY_DELAY, backoff))


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(text.split())[:limit]


class DeliveryStore(Database):
    # Queue administration ------------------------------------------------------------------

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
