"""Claiming and settling ledger rows: what a sending run does around each message.

Claiming uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several senders share the work
without waiting on each other. A claim is short (seconds); before a message is sent the
claiming run *takes* it, which extends that one row's lease to cover the send and succeeds
only if the claim is still the run's own. So a dead process's claims come back within
seconds, the one message it had in hand once its send lease ends, and a live process never
sends a row that another run took over. A row is never claimed while an older row of the
same subscriber is pending or sending: digests reach a subscriber in order.

These run once per message, so the busy ones (claim, take, mark sent) are SQLAlchemy Core
statements built once, on a connection rather than an ORM session, and the subscribers of a
claim (with whether each has a feedback model) are read in two queries for the whole batch.
`mark_sent` can take the next row in hand in the same transaction: one commit per message
instead of two. On PostgreSQL, where every statement is a round trip, take and mark sent are
one statement each on a connection in autocommit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Boolean,
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
from digestd.store.db import Database, _first_line
from digestd.store.deliveries import (
    ClaimedDelivery,
    DeliveryRecord,
    _claimable,
    _claimable_each,
    _delivery_record,
    _one_line,
    retry_delay,
)
from digestd.store.models import (
    Delivery,
    FeedbackModel,
    Subscriber,
    SubscriberTopic,
    Topic,
    utcnow,
)
from digestd.store.prepared import Prepared
from digestd.store.subscribers import (
    SubscriberRecord,
    _subscriber_record,
    record_bounce_in,
    subscriber_record_of,
)

_DELIVERIES = Delivery.__table__
_SUBSCRIBERS = Subscriber.__table__

#: a claimed row taken in hand for sending: its lease runs on, if the claim is still ours
_TAKE = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.id == bindparam("take_id"),
        _DELIVERIES.c.status == "sending",
        _DELIVERIES.c.claimed_by == bindparam("take_claimer"),
    )
    .values(claimed_until=bindparam("take_until"))
)
_SENT = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("sent_id"))
    .values(
        status="sent", sent_at=bindparam("sent_at"), message_id=bindparam("sent_message_id"),
        claimed_until=None, claimed_by=None, next_attempt_at=None, last_error=None,
        attempts=_DELIVERIES.c.attempts + 1,
    )
)
_CLEAR_BOUNCES = (
    update(_SUBSCRIBERS)
    .where(
        _SUBSCRIBERS.c.id
        == select(_DELIVERIES.c.subscriber_id)
        .where(_DELIVERIES.c.id == bindparam("sent_id"))
        .scalar_subquery(),
        _SUBSCRIBERS.c.bounce_count != 0,
    )
    .values(bounce_count=0)
)


def _sent_and_take() -> Select[Any]:
    """On PostgreSQL, `_SENT`, `_CLEAR_BOUNCES` when ``sent_clear`` and `_TAKE` as one
    statement, whose result is the number of rows taken (0 or 1). A statement is a
    transaction of its own in autocommit: one round trip after the server's acceptance, where
    the three statements in a transaction were five (BEGIN and COMMIT are round trips too).
    Nothing needs `take_id`: NULL matches no row."""
    sent = _SENT.returning(_DELIVERIES.c.subscriber_id).cte("sent")
    cleared = (
        update(_SUBSCRIBERS)
        .where(
            _SUBSCRIBERS.c.id.in_(select(sent.c.subscriber_id)),
            _SUBSCRIBERS.c.bounce_count != 0,
            bindparam("sent_clear", type_=Boolean),
        )
        .values(bounce_count=0)
        .returning(_SUBSCRIBERS.c.id)
        .cte("cleared")
    )
    taken = _TAKE.returning(_DELIVERIES.c.id).cte("taken")
    # data-modifying WITH clauses run once, to completion, read or not
    return select(select(func.count()).select_from(taken).scalar_subquery()).add_cte(
        sent, cleared
    )


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


class ClaimStore(Database):
    _ledger_engine: Engine | None = None
    #: the per-message statements, compiled for this store's dialect on first use
    _prepared: dict[str, Prepared] | None = None
    #: the claim's two queries (see `_claim_queries`)
    _claim_queries: tuple[Select[Any], ...] | None = None
    #: per thread: the DBAPI connection a sending run holds (see `holding_ledger`)
    _held: threading.local | None = None

    @contextmanager
    def holding_ledger(self) -> Iterator[None]:
        """For the calling thread, until the block ends: `take_claimed` and `mark_sent` run on
        one connection of their own, kept between messages, instead of one from the pool
        each time (a checkout, and on PostgreSQL a ping, per write)."""
        if self._held is None:
            self._held = threading.local()
        held = self._held
        if getattr(held, "active", False):
            yield
            return
        held.active, held.connection = True, None
        try:
            yield
        finally:
            connection, held.connection, held.active = held.connection, None, False
            if connection is not None:
                _back_to_pool(connection)

    def _statement(self, name: str) -> Prepared:
        prepared = self._prepared
        if prepared is None:
            dialect = self.engine.dialect
            prepared = self._prepared = {
                "take": Prepared(_TAKE, dialect), "sent": Prepared(_SENT, dialect),
                "clear": Prepared(_CLEAR_BOUNCES, dialect),
            }
            if self.is_postgres:
                prepared["sent_take"] = Prepared(_sent_and_take(), dialect)
        return prepared[name]

    @contextmanager
    def _fast_ledger(self) -> Iterator[Any]:
        """One write transaction on a DBAPI cursor: the held connection when a run holds one,
        else one from the pool for this transaction alone. On PostgreSQL the caller runs one
        statement, in autocommit: BEGIN and COMMIT would be a round trip each."""
        held = self._held if self._held is not None and getattr(self._held, "active", False) \
            else None
        connection = held.connection if held is not None else None
        sqlite = self.is_sqlite
        if connection is None:
            try:
                connection = self.engine.raw_connection()
            except OperationalError as exc:
                raise StoreError(f"database error: {_first_line(exc)}") from exc
            if not sqlite:
                try:
                    # the pool's other users expect transactions: set back in `_back_to_pool`
                    connection.driver_connection.autocommit = True
                except BaseException:
                    connection.invalidate()
                    raise
            if held is not None:
                held.connection = connection
        cursor = connection.cursor()
        try:
            if sqlite:  # autocommit mode (see db.py): the transaction is ours to open
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            if sqlite:
                cursor.execute("COMMIT")
        except BaseException as exc:
            if sqlite:
                with contextlib.suppress(Exception):
                    connection.rollback()
            if isinstance(exc, self.engine.dialect.loaded_dbapi.Error):
                # A connection that failed is not trusted again: the next write takes a fresh one.
                with contextlib.suppress(Exception):
                    connection.invalidate()
                if held is not None:
                    held.connection = None
                connection = None
                raise StoreError(f"database error: {_first_line(exc)}") from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
            if held is None and connection is not None:
                _back_to_pool(connection)

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

    def take_claimed(
        self, delivery_id: int, *, claimer: str, until: dt.datetime
    ) -> bool:
        """Take a claimed row in hand for sending: its lease now runs until `until`. False
        (and nothing changed) when the claim is no longer `claimer`'s: it ran out and another
        run took the row over."""
        take = self._statement("take")
        with self._fast_ledger() as cursor:
            cursor.execute(take.sql, take.arguments(
                {"take_id": delivery_id, "take_claimer": claimer, "take_until": until}
            ))
            return bool(cursor.rowcount)

    def mark_sent(
        self, delivery_id: int, *, message_id: str, now: dt.datetime, clear_bounces: bool = True,
        take_next: tuple[int, str, dt.datetime] | None = None,
    ) -> bool | None:
        """The transport accepted the message: settle the row and clear the bounce count.

        `clear_bounces` False skips the subscriber's row, for a caller that knows the count
        is 0 already: the fewer writes here, the shorter the window in which a crash after
        the server's acceptance makes a duplicate. `take_next` (row id, claimer, until) takes
        the run's next row in hand in the same transaction, as `take_claimed` would, and the
        result says whether it could; None when nothing was asked.
        """
        if self.is_postgres:
            return self._mark_sent_in_one(delivery_id, message_id, now, clear_bounces, take_next)
        sent = self._statement("sent")
        with self._fast_ledger() as cursor:
            cursor.execute(sent.sql, sent.arguments(
                {"sent_id": delivery_id, "sent_at": now, "sent_message_id": message_id}
            ))
            if clear_bounces:
                clear = self._statement("clear")
                cursor.execute(clear.sql, clear.arguments({"sent_id": delivery_id}))
            if take_next is None:
                return None
            next_id, claimer, until = take_next
            take = self._statement("take")
            cursor.execute(take.sql, take.arguments(
                {"take_id": next_id, "take_claimer": claimer, "take_until": until}
            ))
            return bool(cursor.rowcount)

    def _mark_sent_in_one(
        self, delivery_id: int, message_id: str, now: dt.datetime, clear_bounces: bool,
        take_next: tuple[int, str, dt.datetime] | None,
    ) -> bool | None:
        """`mark_sent` on PostgreSQL: one statement (see `_sent_and_take`)."""
        next_id, claimer, until = take_next if take_next is not None else (None, None, None)
        statement = self._statement("sent_take")
        with self._fast_ledger() as cursor:
            cursor.execute(statement.sql, statement.arguments({
                "sent_id": delivery_id, "sent_at": now, "sent_message_id": message_id,
                "sent_clear": clear_bounces,
                "take_id": next_id, "take_claimer": claimer, "take_until": until,
            }))
            taken = cursor.fetchone()[0]
        return None if take_next is None else bool(taken)

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



def _back_to_pool(connection: Any) -> None:
    """A DBAPI connection of the pool given back, out of autocommit (PostgreSQL)."""
    with contextlib.suppress(Exception):
        if not connection.is_valid:
            return
        driver = connection.driver_connection
        if getattr(driver, "autocommit", False):
            driver.autocommit = False
    with contextlib.suppress(Exception):
        connection.close()


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
