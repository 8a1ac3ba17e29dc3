"""The two writes of every message a sending run makes: taking its row in hand, and
recording it sent.

They run once per message, so they are SQLAlchemy Core statements compiled once (`Prepared`)
and run on the driver's cursor of a connection the run holds (`holding_ledger`) rather than
one checked out of the pool per write. `mark_sent` can take the next row in hand in the same
transaction: one commit per message instead of two. On PostgreSQL, where every statement is
a round trip and so are BEGIN and COMMIT, each write is one statement on a connection in
autocommit (the sent record, the bounce count and the next take are data-modifying WITH
clauses of one statement); the connection is set back out of autocommit before it returns
to the pool. Claiming, and settling failures, are in `.claims`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Boolean, Select, bindparam, func, select, update
from sqlalchemy.exc import OperationalError

from digestd.errors import StoreError
from digestd.store.db import Database, _first_line
from digestd.store.models import Delivery, Subscriber
from digestd.store.prepared import Prepared

__all__ = ["LedgerWrites"]

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


class LedgerWrites(Database):
    """Taking a claimed row in hand and recording it sent (see the module docstring)."""

    #: the per-message statements, compiled for this store's dialect on first use
    _prepared: dict[str, Prepared] | None = None
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
