"""Migrations, walked one revision at a time over whatever revisions exist: every table holds
rows on the way up, and every downgrade keeps every row (SQLite rebuilds tables in batch
migrations; with foreign keys on that would cascade-delete the rows referring to them)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection

from digestd.store import Store
from digestd.store.db import MIGRATIONS_DIR
from digestd.store.terms import TABLE_PREFIX as TERMS_TABLE_PREFIX

from support import backend_database


def _revisions() -> list[str]:
    """Every revision id, oldest first (a straight line: one head)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, f"more than one head: {script.get_heads()}"
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions()


def _before(revision: str) -> str:
    return REVISIONS[REVISIONS.index(revision) - 1]
_counter = itertools.count(1)


def _value(column, table_name: str, ids: dict[str, list[int]]):  # type: ignore[no-untyped-def]
    """A plausible value for any column: a reference to an existing row, or one of its type."""
    for fk in column.foreign_keys:
        referred = fk.column.table.name
        return ids[referred][0]
    n = next(_counter)
    kind = column.type
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, Float | Numeric):
        return 1.5
    if isinstance(kind, DateTime):
        return dt.datetime(2026, 11, 1, 12, 0, n % 60)
    if isinstance(kind, Date):
        return dt.date(2026, 11, 1)
    if isinstance(kind, JSON):
        return []
    if isinstance(kind, LargeBinary):
        return b"\x00\x00\x00\x00"
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 64
        return f"{column.name[:6]}{n}"[:length]
    return f"{n}"


def _fill_empty_tables(connection: Connection) -> None:
    """Give every table that has no row a row of its own, parents before children."""
    meta = MetaData()
    meta.reflect(connection)
    ids: dict[str, list[int]] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version" or table.name.startswith(TERMS_TABLE_PREFIX):
            # the full-text index is derived data, filled from the papers (and an FTS5
            # table's shadow tables take no hand-made rows)
            continue
        if connection.scalar(select(func.count()).select_from(table)) == 0:
            row = {c.name: _value(c, table.name, ids) for c in table.columns}
            connection.execute(insert(table).values(**row))
        if "id" in table.columns:
            ids[table.name] = list(connection.scalars(select(table.c.id)))


def _counts(connection: Connection) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(connection)
    return {
        t.name: connection.scalar(select(func.count()).select_from(t))
        for t in meta.sorted_tables
        if t.name != "alembic_version" and not t.name.startswith(TERMS_TABLE_PREFIX)
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_downgrade_keeps_every_row(backend: str, tmp_path: Path) -> None:
    with backend_database(backend, tmp_path / "digestd.db") as url:
        store = Store.open(url, migrate=False)
        try:
            for revision in REVISIONS:
                store.migrate(revision)
                with store.engine.begin() as connection:
                    _fill_empty_tables(connection)
            with store.engine.connect() as connection:
                at_head = _counts(connection)
            assert all(at_head.values()), at_head
            for target in reversed(REVISIONS[:-1]):
                store.migrate(target, downgrade=True)
                with store.engine.connect() as connection:
                    now = _counts(connection)
                assert now == {t: at_head[t] for t in now}, f"rows lost going down to {target}"
            # and up again: the tables that outlived the way down still hold their rows
            store.migrate("head")
            with store.engine.connect() as connection:
                again = _counts(connection)
            assert {t: again[t] for t in now} == {t: at_head[t] for t in now}
        finally:
            store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_tokens_become_hashes_and_old_links_keep_working(backend: str, tmp_path: Path) -> None:
    with backend_database(backend, tmp_path / "digestd.db") as url:
        store = Store.open(url, migrate=False, link_key=b"k" * 32)
        try:
            store.migrate(_before("0006_ops"))
            token = "abcdefghijkl" + "s" * 43
            with store.engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO subscribers (id, email, email_key, name, cadence, timezone, "
                        "token, token_lookup, status, since_batch_id, bounce_count, created_at, "
                        "updated_at) VALUES (7, 'ada@example.org', 'ada@example.org', '', "
                        "'daily', 'UTC', :token, :lookup, 'active', 0, 0, :at, :at)"
                    ),
                    {"token": token, "lookup": token[:12], "at": dt.datetime(2026, 11, 1)},
                )
            store.migrate("head")
            with store.engine.connect() as connection:
                columns = {c["name"] for c in _inspect_columns(connection, "subscribers")}
                stored = list(connection.exec_driver_sql("SELECT * FROM subscriber_tokens"))
            assert "token" not in columns and "token_lookup" not in columns
            assert [row[0] for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]
            assert store.subscriber_by_token(token).id == 7  # a link mailed before the upgrade
            assert store.register_link_key() == 1
            derived = store.subscriber_by_token(token)
            assert derived is not None and derived.token != token
            assert store.subscriber_by_token(derived.token).id == 7  # links mailed from now on
            assert store.register_link_key() == 0  # once per key
        finally:
            store.dispose()


def _inspect_columns(connection: Connection, table: str) -> list[dict[str, object]]:
    from sqlalchemy import inspect

    return inspect(connection).get_columns(table)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_index_forgets_changed_papers_by_trigger_from_0020(backend: str,
                                                                tmp_path: Path) -> None:
    """0020 keeps the state rows the comparison before it called fresh, drops the others,
    and from then on a change of a paper's words deletes its row; its downgrade stops that."""
    def state(connection: Connection) -> list[int]:
        return list(connection.scalars(
            text("SELECT paper_id FROM paper_terms_state ORDER BY paper_id")))

    size = ("length(title) + length(abstract) "
            "+ coalesce(length(CAST(keywords AS TEXT)), 0)")
    with backend_database(backend, tmp_path / "digestd.db") as url:
        store = Store.open(url, migrate=False)
        try:
            store.migrate(_before("0020_perf_forget"))
            with store.engine.begin() as connection:
                _fill_empty_tables(connection)  # a paper
                meta = MetaData()
                meta.reflect(connection, only=["papers"])
                papers = meta.tables["papers"]
                ids = {fk.column.table.name: list(connection.scalars(select(fk.column)))
                       for c in papers.columns for fk in c.foreign_keys}
                row = {c.name: _value(c, "papers", ids) for c in papers.columns}
                connection.execute(insert(papers).values(**row))  # and another
                first, second = connection.scalars(select(papers.c.id).order_by(papers.c.id))
                connection.execute(text(
                    "INSERT INTO paper_terms_state (paper_id, updated_at, size) "
                    f"SELECT id, updated_at, {size} FROM papers"))
                # the second changed since it was indexed, by its size
                connection.execute(text(
                    "UPDATE paper_terms_state SET size = size + 1 WHERE paper_id = :id"),
                    {"id": second})
            store.migrate("0020_perf_forget")
            with store.engine.begin() as connection:
                assert state(connection) == [first]
                connection.execute(text("UPDATE papers SET title = 'Other' WHERE id = :id"),
                                   {"id": first})
                assert state(connection) == []
            store.migrate(_before("0020_perf_forget"), downgrade=True)
            with store.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO paper_terms_state (paper_id, updated_at, size) "
                    f"SELECT id, updated_at, {size} FROM papers"))
                connection.execute(text("UPDATE papers SET title = 'Again' WHERE id = :id"),
                                   {"id": first})
                assert state(connection) == [first, second]
        finally:
            store.dispose()
