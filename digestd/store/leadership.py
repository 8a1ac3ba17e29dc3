"""Which digestd process runs the scheduler's once-only jobs: an advisory lock on PostgreSQL.

Leadership saves work rather than guarding correctness: claims (``FOR UPDATE SKIP LOCKED``)
and the ledger's unique constraints keep a digest from going out twice even when two
processes both believe they lead for a moment (a leader learns it lost its connection only at
its next check).

On PostgreSQL the lock is session-level and held on one dedicated connection, outside the
pool, so that nothing else ever runs on it and the server releases it the moment that
session ends: a clean stop, a crash, or ``pg_terminate_backend``. The same connection
listens for followers' nudges ("a batch is in: dispatch now"), since only the leader plans.
On SQLite there is one machine and one file, and several processes on it already serialise
their writes (BEGIN IMMEDIATE): every process is leader.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from digestd.store.db import Database, _first_line

log = logging.getLogger(__name__)

#: the fixed part of the lock's name; the database and schema are added (see _lock_key)
SCHEDULER = "digestd-scheduler"

# libpq settings for the leadership connection: a vanished network fails the next check
# within ~15 s instead of hanging the main loop on TCP's own minutes-long timeouts.
_CLIENT_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
    "tcp_user_timeout": 15_000,
}
# The server's side of the same: a leader whose machine vanished without closing its
# socket is noticed (and its lock released) in about 25 s rather than the default 2 hours.
_SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)


def _lock_key(name: str, database: str, schema: str) -> int:
    """A signed 64-bit advisory lock key for `name` in this database and schema.

    Advisory lock keys are database-wide, but a digestd deployment is a schema: two
    deployments sharing one database in separate schemas (and the test suite, which gives
    each test a schema) must not take each other's leadership, while every process of one
    deployment must derive the same number.
    """
    digest = hashlib.blake2b(f"{name}\0{database}\0{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leadership:
    """Always held: the SQLite case, where one machine owns the one file."""

    #: why leadership was last lost or refused, for the log
    error: str | None = None
    key: int | None = None
    backend_pid: int | None = None

    def try_acquire(self) -> bool:
        return True

    @property
    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def nudge(self) -> None:
        """Tell the leader there is work for it (no-op: this process leads)."""

    def take_nudged(self) -> bool:
        """True once after a follower nudged this leader."""
        return False


class AdvisoryLeadership(Leadership):
    """A session-level ``pg_try_advisory_lock`` on a connection of its own.

    Used from one thread only (the daemon's main loop).
    """

    def __init__(self, engine: Engine, name: str = SCHEDULER):
        self.name = name
        # Its own engine without a pool: the connection is opened and closed here only, and
        # a broken one is never handed back reconnected (a new session would not hold the lock).
        self._engine = create_engine(engine.url, poolclass=NullPool, connect_args=_CLIENT_TIMEOUTS)
        self._connection: Connection | None = None
        self._holding = False
        self._nudged = False
        self._channel = ""
        self.key: int | None = None
        self.backend_pid: int | None = None
        self.error: str | None = None

    def _connect(self) -> Connection:
        if self._connection is not None:
            return self._connection
        # Autocommit: an idle transaction could be ended by idle_in_transaction_session_timeout
        # together with the session, and NOTIFY must go out at once.
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            for statement in _SERVER_KEEPALIVES:
                connection.execute(text(statement))
            database, schema, pid = connection.execute(
                text("SELECT current_database(), current_schema(), pg_backend_pid()")
            ).one()
            self.key = _lock_key(self.name, database, schema or "")
            self.backend_pid = pid
            # Per lock, like the key: another deployment's nudges are not ours.
            self._channel = f"digestd_{self.key & 0xFFFF_FFFF_FFFF_FFFF:016x}"
            connection.execute(text(f'LISTEN "{self._channel}"'))
            connection.connection.driver_connection.add_notify_handler(self._on_notify)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _on_notify(self, _notify: Any) -> None:
        self._nudged = True

    def _drop(self, exc: BaseException) -> None:
        self.error = _first_line(exc)
        self._holding = False
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except SQLAlchemyError:
                pass  # already broken: nothing left to close

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process now leads."""
        if self._holding:
            return self.held
        try:
            connection = self._connect()
            self._holding = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
                .scalar()
            )
        except SQLAlchemyError as exc:
            self._drop(exc)
            return False
        self.error = None if self._holding else "held by another process"
        return self._holding

    @property
    def held(self) -> bool:
        """Still leading: the lock's session answers (which also delivers pending nudges)."""
        if not self._holding or self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self._drop(exc)
            return False
        return True

    def release(self) -> None:
        """Give up leadership: closing the session releases the lock at once."""
        self._holding = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()
        self._engine.dispose()

    def nudge(self) -> None:
        """Ask whoever leads to dispatch now (a batch came in here); best effort."""
        try:
            self._connect().execute(text("SELECT pg_notify(:channel, '')"),
                                    {"channel": self._channel})
        except SQLAlchemyError as exc:
            self._drop(exc)  # the leader's interval dispatch will find the batch anyway
            log.warning("cannot nudge the leader error=%r", self.error)

    def take_nudged(self) -> bool:
        nudged, self._nudged = self._nudged, False
        return nudged


def open_leadership(database: Database, name: str = SCHEDULER) -> Leadership:
    """The leadership of `name` for this database: an advisory lock, or always held on SQLite."""
    if database.is_postgres:
        return AdvisoryLeadership(database.engine, name)
    return Leadership()
