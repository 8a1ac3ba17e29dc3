"""Logging: key=value lines on stderr, timestamps only when journald does not add its own."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from digestd.log import setup_logging, under_journald

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("apscheduler", "apscheduler.executors", "sqlalchemy", "alembic", "uvicorn.access")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def stderr_file(tmp_path: Path) -> Iterator[TextIO]:
    with open(tmp_path / "stderr.log", "w+", encoding="utf-8") as fh:
        yield fh


def _as_stderr(fh: TextIO, monkeypatch: pytest.MonkeyPatch) -> None:
    # In the test body: pytest's capture sets sys.stderr anew when the call phase starts.
    monkeypatch.setattr(sys, "stderr", fh)


def _journal_stream(fh: TextIO) -> str:
    stat = os.fstat(fh.fileno())
    return f"{stat.st_dev}:{stat.st_ino}"


def _emit(fh: TextIO) -> str:
    logging.getLogger("digestd.ingest").info(
        "dump ingested dump=%s papers=%d new=%d", "a.txt", 3, 2
    )
    fh.flush()
    fh.seek(0)
    return fh.read()


def test_under_journald_the_lines_carry_no_timestamp(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(stderr_file))
    assert under_journald()
    setup_logging("INFO")
    # <6>: syslog's "info", which journald takes as the entry's priority
    assert _emit(stderr_file) == (
        "<6>level=INFO logger=digestd.ingest dump ingested dump=a.txt papers=3 new=2\n"
    )


def test_elsewhere_the_lines_start_with_a_timestamp(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not under_journald()
    setup_logging("INFO")
    line = _emit(stderr_file)
    assert TIMESTAMP.match(line), line
    assert TIMESTAMP.sub("", line) == (
        "level=INFO logger=digestd.ingest dump ingested dump=a.txt papers=3 new=2\n"
    )


@pytest.mark.parametrize("value", ["1:2", "garbage", "12:", ":"])
def test_journal_stream_of_another_stream_or_garbage_keeps_timestamps(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    # Started by a unit but with stderr redirected (digestd ... 2>file): not the journal.
    monkeypatch.setenv("JOURNAL_STREAM", value)
    assert not under_journald()
    setup_logging("INFO")
    assert TIMESTAMP.match(_emit(stderr_file))


def test_levels_and_third_party_chatter(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    setup_logging("WARNING")
    logging.getLogger("digestd").info("not shown")
    logging.getLogger("digestd").warning("shown key=1")
    assert logging.getLogger("sqlalchemy").level == logging.WARNING
    # job failures are logged by the daemon itself, once
    assert logging.getLogger("apscheduler.executors").level == logging.CRITICAL
    stderr_file.flush()
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert len(lines) == 1 and lines[0].endswith("level=WARNING logger=digestd shown key=1")


def test_setting_up_twice_does_not_double_lines(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    setup_logging("INFO")
    setup_logging("INFO")
    assert _emit(stderr_file).count("dump ingested") == 1


def test_a_process_started_with_its_stderr_as_journal_stream(tmp_path: Path) -> None:
    """As systemd starts it: JOURNAL_STREAM names the stream stderr is connected to."""
    log_path = tmp_path / "journal.log"
    code = (
        "import logging; from digestd.log import setup_logging; setup_logging('INFO'); "
        "logging.getLogger('digestd.daemon').info('started http=%s', '127.0.0.1:8080')"
    )
    with open(log_path, "w") as fh:
        env = dict(os.environ, JOURNAL_STREAM=_journal_stream(fh))
        subprocess.run([sys.executable, "-c", code], stderr=fh, env=env, check=True, timeout=60)
    assert log_path.read_text() == (
        "<6>level=INFO logger=digestd.daemon started http=127.0.0.1:8080\n"
    )


def test_lines_follow_stderr_when_it_is_swapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set up while stderr was one stream, then that stream closed (a test's capture, a
    progress bar): lines go to the stderr of the moment, not into the closed one."""
    first = open(tmp_path / "first.log", "w+", encoding="utf-8")  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging("INFO")
    first.close()
    with open(tmp_path / "second.log", "w+", encoding="utf-8") as second:
        monkeypatch.setattr(sys, "stderr", second)
        assert "dump ingested" in _emit(second)


def test_json_lines_parse_one_by_one(stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_stderr(stderr_file, monkeypatch)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging("DEBUG", "json")
    log = logging.getLogger("digestd.ingest")
    log.info("ingested dump=%s layout=%s papers=%d new=%d", "/seeds/a.txt", "card", 52, 52)
    log.warning("failed dump=%s error=%r", "/seeds/b.bin", "binary file: 'x'\nsecond line")
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        log.exception("feed build failed")
    log.debug("no fields at all")
    stderr_file.flush()
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one whole object
    assert len(records) == 4
    first, second, third, fourth = records
    assert first["level"] == "INFO" and first["logger"] == "digestd.ingest"
    assert first["msg"] == "ingested"
    assert (first["dump"], first["layout"], first["papers"]) == ("/seeds/a.txt", "card", "52")
    assert dt.datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert second["level"] == "WARNING"
    assert second["error"] == "binary file: 'x'\nsecond line"
    assert third["level"] == "ERROR" and "No space left on device" in third["exc"]
    assert fourth == {**fourth, "level": "DEBUG", "msg": "no fields at all"}


def test_json_under_journald_has_priority_and_no_timestamp(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(stderr_file))
    setup_logging("INFO", "json")
    logging.getLogger("digestd.daemon").warning("leadership lost error=%r", "gone")
    logging.getLogger("digestd.daemon").error("job failed job=%s", "dispatch")
    stderr_file.flush()
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert [line[:3] for line in lines] == ["<4>", "<3>"]
    records = [json.loads(line[3:]) for line in lines]
    assert "ts" not in records[0] and records[0]["error"] == "gone"


def test_every_line_of_a_traceback_carries_the_priority(
    stderr_file: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """journald reads each line as an entry: a traceback's lines must be errors too, or
    `journalctl -p err` would show only its first line."""
    _as_stderr(stderr_file, monkeypatch)
    monkeypatch.setenv("JOURNAL_STREAM", _journal_stream(stderr_file))
    setup_logging("INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("digestd").exception("job failed job=%s", "scan")
    stderr_file.flush()
    stderr_file.seek(0)
    lines = stderr_file.read().splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)


def test_priority_prefixes_are_syslogs_numbers() -> None:
    """The prefixes follow sd-daemon(3): syslog's own priority numbers."""
    import syslog

    from digestd.log import SYSLOG_PRIORITY

    assert SYSLOG_PRIORITY[logging.ERROR] == syslog.LOG_ERR
    assert SYSLOG_PRIORITY[logging.WARNING] == syslog.LOG_WARNING
    assert SYSLOG_PRIORITY[logging.INFO] == syslog.LOG_INFO
    assert SYSLOG_PRIORITY[logging.DEBUG] == syslog.LOG_DEBUG
