"""Faults of the machine, not of the input: a full disk during ingest fails the command (so cron
and timers see it) and is retried later; a feed build the file system refuses is one log line."""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from digestd.config import Config, PathsConfig
from digestd.pipeline import publish_feeds
from digestd.runtime import Runtime
from digestd.store import Store

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "samples" / "seeds").glob("*.txt"))


def _digestd(
    tmp: Path, *args: str, file_limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGESTD_", "JOURNAL_"))}
    env.update(DIGESTD_DATA_DIR=str(tmp / "var"), DIGESTD_SEEDS_DIR=str(tmp / "seeds"))

    def limit_file_size() -> None:
        # RLIMIT_FSIZE: a write past it fails with EFBIG (Python ignores SIGXFSZ), which
        # SQLite reports as a full disk: the file system refusing, not the dump's content
        assert file_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        [sys.executable, "-m", "digestd", *args], env=env, cwd=tmp, capture_output=True,
        text=True, timeout=120, preexec_fn=limit_file_size if file_limit else None,
    )


@pytest.mark.slow
def test_a_full_disk_fails_ingest_and_the_dump_is_retried_later(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "seeds").mkdir()
    first = _digestd(tmp_path, "ingest", str(SEEDS[0]))
    assert first.returncode == 0, first.stderr
    spool = tmp_path / "spool"
    spool.mkdir()
    big = spool / SEEDS[4].name  # the largest seed: hundreds of papers to write
    big.write_bytes(SEEDS[4].read_bytes())
    database = tmp_path / "var" / "digestd.db"
    limit = max(database.stat().st_size, 64 * 1024) + 16 * 1024

    # the dump is found inside a named directory: a content failure there would not fail the
    # command, a full disk must
    full = _digestd(tmp_path, "ingest", "--json", str(spool), file_limit=limit)
    assert full.returncode == 1, full.stdout + full.stderr
    cause = [line for line in full.stderr.splitlines() if line.startswith("digestd: ")]
    assert len(cause) == 1 and str(big) in cause[0]
    assert "full" in cause[0] or "I/O" in cause[0], cause[0]
    assert "Traceback" not in full.stderr

    # room again: the next run ingests it (nothing half-stored, nothing marked failed)
    again = _digestd(tmp_path, "ingest", "--json", str(spool))
    assert again.returncode == 0, again.stderr
    assert '"status": "ingested"' in again.stdout


def test_a_feed_build_the_file_system_refuses_is_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(
        Config(), paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var")
    )
    (tmp_path / "var").mkdir()
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp_path / 'var' / 'd.db'}"))
    # where the feeds directory should be, a file: every write below it fails
    config.feeds_dir.write_text("not a directory")
    caplog.set_level(logging.INFO)
    try:
        assert publish_feeds(runtime) is False
    finally:
        runtime.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("feed build failed path=")
    assert errors[0].exc_info is None  # no traceback for the machine's fault


def test_read_only_commands_work_on_a_read_only_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As an operator who may read but not write the service's database: SQLite opened with
    mode=ro refuses every write, as a file or a mount without write permission does."""
    from digestd import cli

    for name in [n for n in os.environ if n.startswith("DIGESTD_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "var"
    data.mkdir()
    monkeypatch.setenv("DIGESTD_DATA_DIR", str(data))
    assert cli.main(["ingest", str(SEEDS[0]), str(SEEDS[1])]) == 0
    capsys.readouterr()
    monkeypatch.setenv(
        "DIGESTD_DATABASE_URL", f"sqlite:///file:{data / 'digestd.db'}?mode=ro&uri=true"
    )
    before = (data / "digestd.db").read_bytes()
    for command in (["status"], ["papers", "--limit", "3"], ["topics", "list"],
                    ["topics", "test", "diffusion"], ["subscribers", "list", "--json"]):
        assert cli.main(command) == 0, command
        out, err = capsys.readouterr()
        assert out and "Traceback" not in err, command
    # writing is refused with the database's own words, and a non-zero exit
    assert cli.main(["ingest", str(SEEDS[2])]) == 1
    assert "readonly database" in capsys.readouterr().err
    assert (data / "digestd.db").read_bytes() == before
