"""Figures about the store as a whole, for metrics and health checks: counts and ages only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select

from digestd.store.db import Database
from digestd.store.models import Batch, Delivery, Dump, Paper, Subscriber


@dataclass(frozen=True, slots=True)
class StoreStats:
    papers: int
    batches: int
    #: when a dump last brought papers in (None: never)
    last_ingest_at: dt.datetime | None
    #: dumps in the ledger by status (ingested, unchanged, failed)
    dumps: dict[str, int]
    #: delivery rows by status (pending, sending, sent, failed)
    deliveries: dict[str, int]
    #: deliveries being sent, or pending and due: what the sender has to do now
    queue_depth: int
    #: deliveries recorded as sent within the last `window` seconds
    sent_recently: int
    window: float
    subscribers: dict[str, int]


class StatsStore(Database):
    def stats(self, now: dt.datetime, *, window: float = 300.0) -> StoreStats:
        """Counts for /metrics in one read transaction: a handful of aggregate queries."""
        since = now - dt.timedelta(seconds=window)
        with self.read() as session:
            papers = session.scalar(select(func.count(Paper.id))) or 0
            batches = session.scalar(select(func.count(Batch.id))) or 0
            last_ingest = session.scalar(select(func.max(Dump.ingested_at)))
            dumps = dict(
                session.execute(select(Dump.status, func.count(Dump.id)).group_by(Dump.status))
                .all()
            )
            deliveries = dict(
                session.execute(
                    select(Delivery.status, func.count(Delivery.id)).group_by(Delivery.status)
                ).all()
            )
            queue = session.scalar(
                select(func.count(Delivery.id)).where(
                    or_(
                        Delivery.status == "sending",
                        and_(
                            Delivery.status == "pending",
                            or_(Delivery.next_attempt_at.is_(None),
                                Delivery.next_attempt_at <= now),
                        ),
                    )
                )
            ) or 0
            sent = session.scalar(
                select(func.count(Delivery.id)).where(
                    Delivery.status == "sent", Delivery.sent_at >= since
                )
            ) or 0
            subscribers = dict(
                session.execute(
                    select(Subscriber.status, func.count(Subscriber.id))
                    .group_by(Subscriber.status)
                ).all()
            )
        return StoreStats(
            papers=papers, batches=batches, last_ingest_at=last_ingest, dumps=dumps,
            deliveries=deliveries, queue_depth=queue, sent_recently=sent, window=window,
            subscribers=subscribers,
        )
