"""Engine, sessions and migrations: how digestd reaches its database.

SQLite (WAL) is the embedded default; PostgreSQL is reached by URL. Writers on SQLite begin
with ``BEGIN IMMEDIATE`` so that two processes that both read-then-write queue on the busy
timeout instead of failing with "database is locked" half-way through a transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from digestd.bounce_score import BounceRules
from digestd.errors import StoreError
from digestd.store.schema import (
    MIGRATIONS_DIR,
    check_migratable,
    display_url,
    revisions,
    sqlite_file,
)

log = logging.getLogger(__name__)

# Any fixed number will do: it only has to be the same in every digestd process.
MIGRATION_LOCK_ID = 0x6469_6765  # "dige"


def create_store_engine(url: str) -> Engine:
    if url.startswith("postgres://"):  # what Heroku, Render and libpq tools hand out
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {redact_url(url)!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file(parsed)
        if database and not Path(database).parent.is_dir():
            # Never made silently: a typo in a path would scatter databases on the disk.
            raise StoreError(
                f"the directory of the SQLite database {database} does not exist"
            )
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is the driver we install; plain postgresql:// would pick psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_pre_ping=True, json_serializer=json_text)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(
            f"cannot use database URL {parsed.render_as_string(hide_password=True)!r}: {exc}"
        ) from exc


def json_text(value: Any) -> str:
    """A JSON column's text. Matches' terms are tuples of a few strings, the same ones in
    thousands of rows of a re-match: their text is made once."""
    if value is None:
        return "null"
    if type(value) is tuple:
        try:
            return _tuple_json(value)
        except TypeError:  # an element that cannot be a key (a list): not remembered
            pass
    return json.dumps(value)


@lru_cache(maxsize=4096)
def _tuple_json(value: tuple[Any, ...]) -> str:
    return json.dumps(value)


def redact_url(url: str) -> str:
    """The URL with any password masked, for messages (it may not even parse)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own is deferred
        # and implicit, which hides when the write lock is taken).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Owns the engine and hands out sessions; the store's query mixins build on it."""

    #: derives private-link tokens (store/tokens.py); kept outside the database, given by
    #: whoever opens the store, and handed to each session so records can carry the tokens
    link_key: bytes | None = None
    #: how bounces are weighed and forgotten (digestd.bounce_score), set from the
    #: configuration like the link key and handed to each session the same way
    bounce_rules: BounceRules | None = None

    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.is_postgres = engine.dialect.name == "postgresql"
        writer = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._reader = sessionmaker(engine, expire_on_commit=False)
        self._writer = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with self._reader() as session:
            session.info["link_key"] = self.link_key
            session.info["bounce_rules"] = self.bounce_rules
            try:
                yield session
            except OperationalError as exc:
                raise StoreError(f"database error: {_first_line(exc)}") from exc
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._writer() as session:
            session.info["link_key"] = self.link_key
            session.info["bounce_rules"] = self.bounce_rules
            try:
                with session.begin():
                    yield session
            except OperationalError as exc:
                raise StoreError(f"database error: {_first_line(exc)}") from exc

    def ping(self) -> bool:
        """True when the database answers a trivial query (health checks, the watchdog)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def migrate_to(self, target: str) -> str:
        """Move the schema up or down to `target`; returns the revision now stamped.

        Refuses a database holding tables that are not digestd's, and one stamped with a
        revision this digestd does not know (migrated by a newer one).
        """
        known = revisions()
        if target == "head":
            target = known[-1]
        if target not in known:
            raise StoreError(f"unknown revision {target!r} (known: {', '.join(known)})")
        state = check_migratable(self.engine)
        current = known.index(state.revision) if state.revision else -1
        self.migrate(target, downgrade=known.index(target) < current)
        return target

    def migrate(self, revision: str = "head", *, downgrade: bool = False) -> None:
        """Bring the schema to `revision`; safe when several processes start at once.

        On SQLite, foreign keys are off while migrations run: a batch migration rebuilds a
        table by copying it and dropping the old one, and with foreign keys on, that drop
        would cascade-delete every row referring to it (subscriber topics, deliveries). The
        keys are checked before the commit instead.
        """
        alembic_config = AlembicConfig()
        alembic_config.set_main_option("script_location", str(MIGRATIONS_DIR))
        check_migratable(self.engine)
        try:
            with self.engine.connect() as connection:
                if self.is_sqlite:
                    # Outside any transaction, or SQLite ignores it; before the first execute,
                    # which would begin one.
                    connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
                try:
                    with connection.begin():
                        if self.is_postgres:
                            # Transaction-scoped: released with the migration's commit.
                            connection.execute(
                                text("SELECT pg_advisory_xact_lock(:id)"),
                                {"id": MIGRATION_LOCK_ID},
                            )
                        alembic_config.attributes["connection"] = connection
                        if downgrade:
                            command.downgrade(alembic_config, revision)
                        else:
                            command.upgrade(alembic_config, revision)
                        if self.is_sqlite:
                            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                            if broken:
                                raise StoreError(
                                    f"migration left {len(broken)} rows whose references are "
                                    f"broken (first in table {broken[0][0]}); nothing changed"
                                )
                finally:
                    if self.is_sqlite:
                        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot migrate the database at {display_url(self.engine)}: {_first_line(exc)}"
            ) from exc

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log back into the database so it does not grow unbounded."""
        if self.is_sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        self.engine.dispose()


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows with one executemany, converting values with each column's own type.

    Equivalent to ``session.execute(insert(table), rows)`` but without SQLAlchemy's generic
    per-row parameter machinery, which costs more than SQLite's insert itself on large dumps.
    All rows must have the same keys.
    """
    if not rows:
        return
    keys = list(rows[0])
    connection = session.connection()
    dialect = connection.dialect
    compiled = insert(table).compile(dialect=dialect, column_keys=keys)
    # name -> converter, only where the type needs one; a batch's rows share their timestamps,
    # so each converter remembers its last answer.
    processors = {name: _remember_last(f) for name, f in compiled._bind_processors.items()}
    if compiled.positional:
        order = list(compiled.positiontup or ())
        pick = itemgetter(*order)
        convert_at = [(i, processors[name]) for i, name in enumerate(order) if name in processors]
        params: list[Any] = []
        for row in rows:
            values = list(pick(row)) if len(order) > 1 else [pick(row)]
            for index, convert in convert_at:
                values[index] = convert(values[index])
            params.append(tuple(values))
    else:
        params = [
            {name: processors[name](value) if name in processors else value
             for name, value in row.items()}
            for row in rows
        ]
    connection.exec_driver_sql(compiled.string, params)


def _remember_last(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: list[Any] = [_MISSING, None]

    def remembered(value: Any) -> Any:
        if type(value) is not dt.datetime:
            return convert(value)
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return remembered


_MISSING = object()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
