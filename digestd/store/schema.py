"""Which migration a database is at, and whether it is digestd's at all.

Only `digestd migrate` (and `digestd run`, or a writing command, while
``database.auto_migrate`` is on) changes a schema; every other command checks first and says
plainly what is wrong: no digestd database there, one migrated by a newer digestd, or one
that needs `digestd migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from digestd.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None, "no migrations"
    return head


def revisions() -> list[str]:
    """Every revision this digestd knows, oldest first."""
    return [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]


def display_url(engine: Engine) -> str:
    """Where the database is, for messages: the file of SQLite, the URL without password."""
    if engine.dialect.name == "sqlite":
        return engine.url.database or ":memory:"
    return engine.url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class SchemaState:
    #: the revision stamped in alembic_version; None when there is none
    revision: str | None
    #: tables that are there besides alembic_version (someone's data, if not ours)
    tables: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.tables


def sqlite_file(url: URL) -> str | None:
    """The file an SQLite URL names, or None (in memory). An SQLite URI filename
    (`sqlite:///file:/path?mode=ro&uri=true`, a read-only open) names the path inside it."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if url.query.get("uri") == "true" and database.startswith("file:"):
        return database[len("file:"):].split("?", 1)[0] or None
    return database


def schema_state(engine: Engine) -> SchemaState:
    """Read what is there, creating nothing (a missing SQLite file is not opened)."""
    if engine.dialect.name == "sqlite":
        database = sqlite_file(engine.url)
        if database and not Path(database).exists():
            return SchemaState(None, ())
    try:
        with engine.connect() as connection:
            tables = tuple(sorted(inspect(connection).get_table_names()))
            revision = None
            if "alembic_version" in tables:
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise StoreError(f"cannot read the database at {display_url(engine)}: {first}") from exc
    return SchemaState(revision, tuple(t for t in tables if t != "alembic_version"))


def require_current(engine: Engine) -> None:
    """Raise a one-line `StoreError` unless the database is digestd's, at the newest revision."""
    where = display_url(engine)
    state = schema_state(engine)
    if state.revision is None:
        if state.tables:
            raise StoreError(f"no digestd database at {where} (it holds other tables)")
        raise StoreError(f"no digestd database at {where} (create it with: digestd migrate)")
    check_known(engine, state.revision)
    head = head_revision()
    if state.revision != head:
        raise StoreError(
            f"the database at {where} is at revision {state.revision}, this digestd needs "
            f"{head}: run digestd migrate"
        )


def check_known(engine: Engine, revision: str) -> None:
    if revision not in revisions():
        from digestd import __version__

        raise StoreError(
            f"the database at {display_url(engine)} is at revision {revision}, which digestd "
            f"{__version__} does not know: it was migrated by a newer digestd (upgrade "
            f"digestd, or migrate it back with the newer one: digestd migrate --to "
            f"{head_revision()})"
        )


def check_migratable(engine: Engine) -> SchemaState:
    """The state, if digestd may migrate this database: its own, or an empty one."""
    state = schema_state(engine)
    if state.revision is None and state.tables:
        raise StoreError(
            f"the database at {display_url(engine)} holds tables that are not digestd's "
            f"({', '.join(state.tables[:3])}{', ...' if len(state.tables) > 3 else ''}): "
            "refusing to create digestd's there; check database.url"
        )
    if state.revision is not None:
        check_known(engine, state.revision)
    return state
