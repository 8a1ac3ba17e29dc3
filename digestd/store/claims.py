"""Claiming and settling ledger rows: what a sending run does around each message.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several senders share the work
without waiting on each other. A claim is short (seconds); before a message is sent the
claiming run *takes* it, which extends that one row's lease to cover the send and succeeds
only if the claim is still the run's own. So a dead process's claims come back within
seconds, the one message it had in hand once its send lease ends, and a live process never
sends a row that another run took over. A row is never claimed while an older row of the
same subscriber is pending or sending: digests reach a subscriber in order.

A claim runs once per 25 messages or so, so its queries are SQLAlchemy Core statements built
once, on a connection rather than an ORM session, and the subscribers of a claim (with whether
each has a feedback model) are read in two queries for the whole batch. Taking a row in hand
and recording it sent, the writes of every message, are in `.ledger_writes`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from digestd.bounce_score import BounceRules
from digestd.errors import StoreError
from digestd.store.db import _first_line
from digestd.store.deliveries import (
    ClaimedDelivery,
    DeliveryRecord,
    _claimable,
    _claimable_each,
    _delivery_record,
    _one_line,
    retry_delay,
)
from digestd.store.ledger_writes import LedgerWrites
from digestd.store.models import (
    Delivery,
    FeedbackModel,
    Subscriber,
    SubscriberTopic,
    Topic,
    utcnow,
)
from digestd.store.subscribers import (
    SubscriberRecord,
    _subscriber_record,
    record_bounce_in,
    subscriber_record_of,
)

_DELIVERIES = Delivery.__table__
_SUBSCRIBERS = Subscriber.__table__

_CLAIM = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("claim_id"))
    .values(
        status="sending", claimed_until=bindparam("claim_until"),
        claimed_by=bindparam("claim_by"),
    )
)
_REFUSE = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("claim_id"))
    .values(
        status="failed", claimed_until=None, claimed_by=None,
        last_error=bindparam("claim_error"),
    )
)


class ClaimStore(LedgerWrites):
    _ledger_engine: Engine | None = None
    #: the claim's two queries (see `_claim_queries`)
    _claim_queries: tuple[Select[Any], ...] | None = None

    @contextmanager
    def _ledger(self) -> Iterator[Connection]:
        """One write transaction on a plain connection (BEGIN IMMEDIATE on SQLite)."""
        engine = self._ledger_engine
        if engine is None:
            engine = self._ledger_engine = (
                self.engine.execution_options(sqlite_begin="IMMEDIATE")
                if self.is_sqlite else self.engine
            )
        try:
            with engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise StoreError(f"database error: {_first_line(exc)}") from exc

    def claim_deliveries(
        self, now: dt.datetime, *, lease: dt.timedelta, limit: int, claimer: str = ""
    ) -> list[ClaimedDelivery]:
        """Take up to `limit` rows that are due, marking them ``sending`` by `claimer` until
        now + lease. No attempt is counted: that happens when the transport answers.

        Rows of subscribers who are not active (unconfirmed, paused, unsubscribed) are
        settled as failed in the same transaction and never handed out.
        """
        until = now + lease
        queries = self._claim_queries
        if queries is None:
            # built once: making the statements and their cache keys cost more than running them
            queries = self._claim_queries = _claim_queries(self.is_postgres)
        with self._ledger() as connection:
            rows = []
            for query in queries:
                rows += connection.execute(query, {"claim_now": now, "claim_limit": limit}).all()
            # the lowest ids of both, as one query over both statuses would give
            rows = sorted(rows, key=lambda row: row.id)[:limit]
            if not rows:
                return []
            subscribers = _subscriber_records(
                connection, {row.subscriber_id for row in rows}, self.link_key,
                self.bounce_rules,
            )
            refused, taken, claimed = [], [], []
            for row in rows:
                subscriber, has_model = subscribers.get(row.subscriber_id, (None, False))
                if subscriber is None or subscriber.status != "active":
                    state = subscriber.status if subscriber else "gone"
                    refused.append(
                        {"claim_id": row.id, "claim_error": f"not sent: subscriber is {state}"}
                    )
                    continue
                taken.append(
                    {"claim_id": row.id, "claim_until": until, "claim_by": claimer or None}
                )
                record = _delivery_record(row)
                claimed.append(
                    ClaimedDelivery(
                        dataclasses.replace(record, status="sending", claimed_until=until),
                        subscriber, has_model,
                    )
                )
            if refused:
                connection.execute(_REFUSE, refused)
            if taken:
                connection.execute(_CLAIM, taken)
            return claimed

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


def _claim_queries(postgres: bool) -> tuple[Select[Any], ...]:
    """The first due rows of each status in id order, up to `claim_limit`, at `claim_now`."""
    now = bindparam("claim_now", type_=Delivery.next_attempt_at.type)
    queries = []
    for condition in _claimable_each(now):
        query = (
            select(_DELIVERIES).where(condition).order_by(Delivery.id)
            .limit(bindparam("claim_limit", type_=Integer))
        )
        if postgres:
            query = query.with_for_update(skip_locked=True, of=Delivery)
        queries.append(query)
    return tuple(queries)


#: a claim's subscribers, whether each has a feedback model (the ranking asks), and their
#: topics; built once like the claim queries
_CLAIMED_SUBSCRIBERS = select(
    _SUBSCRIBERS,
    exists().where(FeedbackModel.subscriber_id == _SUBSCRIBERS.c.id).label("has_model"),
).where(_SUBSCRIBERS.c.id.in_(bindparam("claimed_ids", expanding=True)))
_CLAIMED_TOPICS = (
    select(SubscriberTopic.subscriber_id, Topic.slug)
    .join(Topic, SubscriberTopic.topic_id == Topic.id)
    .where(SubscriberTopic.subscriber_id.in_(bindparam("claimed_ids", expanding=True)))
    .order_by(SubscriberTopic.subscriber_id, Topic.position, Topic.slug)
)


def _subscriber_records(
    connection: Connection, ids: Iterable[int], link_key: bytes | None,
    rules: BounceRules | None,
) -> dict[int, tuple[SubscriberRecord, bool]]:
    """The records of these subscribers, as `_subscriber_record` makes them, each with whether
    the subscriber has a feedback model, in two queries."""
    wanted = {"claimed_ids": list(ids)}
    rules = rules or BounceRules()
    now = utcnow()
    rows = connection.execute(_CLAIMED_SUBSCRIBERS, wanted).all()
    topics: dict[int, list[str]] = {row.id: [] for row in rows}
    for subscriber_id, slug in connection.execute(_CLAIMED_TOPICS, wanted):
        topics[subscriber_id].append(slug)
    return {
        row.id: (
            subscriber_record_of(row, topics[row.id], link_key, rules, now), bool(row.has_model)
        )
        for row in rows
    }
