"""Explicit migrations: read-only commands create and migrate nothing and say why in one line;
`digestd migrate` creates, upgrades and goes back; foreign and newer databases are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from digestd import cli
from digestd.store import Store
from digestd.store.schema import head_revision, revisions

from support import backend_database

READ_ONLY = [["status"], ["papers"], ["subscribers", "list"], ["topics", "test", "kv"]]


def _config(tmp_path: Path, url: str, *, auto: bool = True) -> list[str]:
    data = tmp_path / "var"
    data.mkdir(exist_ok=True)
    path = tmp_path / "digestd.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{data}"\nseeds_dir = "{data}"\n'
        f"[database]\nurl = '{url}'\nauto_migrate = {str(auto).lower()}\n"
    )
    return ["--config", str(path)]


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return inspect(connection).get_table_names()
    finally:
        engine.dispose()


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "level=" not in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_read_only_commands_create_nothing_and_migrate_creates(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with backend_database(backend, tmp_path / "var" / "digestd.db") as url:
        common = _config(tmp_path, url)
        for argv in READ_ONLY:
            assert cli.main([*argv, *common]) == 1, argv
            assert _error(capsys).startswith("digestd: no digestd database at "), argv
        if backend == "sqlite":
            assert not (tmp_path / "var" / "digestd.db").exists()
        assert _tables(url) == []  # an empty PostgreSQL schema stays empty

        assert cli.main(["migrate", *common]) == 0
        assert f"migrated from nothing to {head_revision()}" in capsys.readouterr().out
        assert cli.main(["status", "--json", *common]) == 0
        assert json.loads(capsys.readouterr().out)["papers"] == 0
        assert cli.main(["migrate", *common]) == 0
        assert f"already at {head_revision()}" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrate_back_and_forth_keeps_subscribers(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with backend_database(backend, tmp_path / "var" / "digestd.db") as url:
        common = _config(tmp_path, url)
        assert cli.main(["subscribers", "add", "ada@example.org", "--topic", "kv-cache",
                         *common]) == 0
        capsys.readouterr()
        first = revisions()[0]
        assert cli.main(["migrate", "--to", revisions()[-2], *common]) == 0
        assert f"to {revisions()[-2]}" in capsys.readouterr().out
        # behind the code: read-only commands name the way forward, and change nothing
        assert cli.main(["subscribers", "list", *common]) == 1
        assert "run digestd migrate" in _error(capsys)
        assert cli.main(["migrate", *common]) == 0
        capsys.readouterr()
        assert cli.main(["subscribers", "list", "--json", *common]) == 0
        assert [s["email"] for s in json.loads(capsys.readouterr().out)] == ["ada@example.org"]
        assert cli.main(["migrate", "--to", "nonsense", *common]) == 1
        assert "unknown revision 'nonsense'" in _error(capsys)
        assert first in revisions()


def test_a_database_newer_than_the_code_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'digestd.db'}"
    common = _config(tmp_path, url)
    assert cli.main(["migrate", *common]) == 0
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    engine.dispose()
    for argv in (["status"], ["subscribers", "add", "a@example.org", "--topic", "kv-cache"],
                 ["migrate"]):
        assert cli.main([*argv, *common]) == 1
        line = _error(capsys)
        assert "revision 0999_future" in line and "newer digestd" in line, line


def test_someone_elses_database_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'other.db'}"
    common = _config(tmp_path, url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert cli.main(["migrate", *common]) == 1
    assert "holds tables that are not digestd's (invoices)" in _error(capsys)
    assert cli.main(["subscribers", "add", "a@example.org", "--topic", "kv-cache", *common]) == 1
    assert "not digestd's" in _error(capsys)
    assert _tables(url) == ["invoices"]


def test_auto_migrate_off_leaves_it_to_digestd_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'digestd.db'}"
    common = _config(tmp_path, url, auto=False)
    assert cli.main(["subscribers", "add", "a@example.org", "--topic", "kv-cache", *common]) == 1
    assert "no digestd database at" in _error(capsys)
    assert cli.main(["migrate", *common]) == 0
    assert cli.main(["subscribers", "add", "a@example.org", "--topic", "kv-cache", *common]) == 0


def test_sqlite_directories_are_not_made_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'digestd.db'}"
    common = _config(tmp_path, url)
    assert cli.main(["migrate", *common]) == 1
    assert "directory of the SQLite database" in _error(capsys)
    assert not (tmp_path / "typo").exists()


def test_postgres_urls_are_accepted_and_passwords_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgres://digestd:s3cret-pw@127.0.0.1:1/digestd"  # nothing listens on port 1
    monkeypatch.setenv("DIGESTD_DATABASE_URL", url)
    common = _config(tmp_path, "")
    assert cli.main(["config", *common]) == 0
    shown = capsys.readouterr().out
    assert "s3cret-pw" not in shown and "digestd:***@127.0.0.1:1" in shown
    for argv in (["status"], ["migrate"]):
        assert cli.main([*argv, *common]) == 1
        line = _error(capsys)
        assert "s3cret-pw" not in line and "127.0.0.1:1" in line, line
    store = Store.open(url, migrate=False)
    assert store.engine.dialect.name == "postgresql"
    store.dispose()
