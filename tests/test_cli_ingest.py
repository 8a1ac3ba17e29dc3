"""`digestd ingest` as scripts and people use it: the JSON contract, exit status, progress bar."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

JSON_KEYS = {"path", "status", "papers", "new", "error", "skipped"}
#: tqdm's counter for three dumps: "1/3 [00:00<00:00, 4.99dump/s]"
BAR = re.compile(r"\b[0-3]/3 \[.*dump")


def _run(tmp_path: Path, *args: str, stderr: int | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "digestd.toml"
    if not config.exists():
        (tmp_path / "var").mkdir()
        config.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\n')
    return subprocess.run(
        [sys.executable, "-m", "digestd", "ingest", *args, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True, cwd=tmp_path, timeout=120,
    )


@pytest.fixture
def dumps(tmp_path: Path, seed_files: list[Path]) -> Path:
    """Two good seeds and a binary file in one directory."""
    directory = tmp_path / "dumps"
    directory.mkdir()
    for seed in seed_files[:2]:
        shutil.copy(seed, directory / seed.name)
    (directory / "garbage.txt").write_bytes(bytes(range(256)) * 8)
    return directory


def test_a_bad_file_inside_a_named_directory_does_not_fail_the_command(
    tmp_path: Path, dumps: Path
) -> None:
    result = _run(tmp_path, str(dumps), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"dumps", "papers_total"}
    assert all(set(d) == JSON_KEYS for d in report["dumps"])
    by_name = {Path(d["path"]).name: d for d in report["dumps"]}
    assert by_name["garbage.txt"]["status"] == "failed"
    assert by_name["garbage.txt"]["error"] and "\n" not in by_name["garbage.txt"]["error"]
    assert [by_name[p.name]["new"] for p in sorted(dumps.glob("0*.txt"))] == [52, 33]
    assert report["papers_total"] == 85

    again = json.loads(_run(tmp_path, str(dumps), "--json").stdout)
    statuses = {Path(d["path"]).name: d["status"] for d in again["dumps"]}
    assert statuses["000_cadd2dacefb539c0.txt"] == "unchanged"
    assert statuses["001_8ab0521fd636093c.txt"] == "unchanged"


def test_a_bad_file_named_on_the_command_line_fails_it(tmp_path: Path, dumps: Path) -> None:
    good = sorted(dumps.glob("0*.txt"))[0]
    result = _run(tmp_path, str(good), str(dumps / "garbage.txt"), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)  # the report is printed all the same
    assert [d["status"] for d in report["dumps"]] == ["ingested", "failed"]
    assert report["papers_total"] == 52
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"digestd: ingest failed: {dumps / 'garbage.txt'}: "
    )


def test_a_missing_path_fails_the_command(tmp_path: Path) -> None:
    result = _run(tmp_path, str(tmp_path / "nowhere"))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"digestd: ingest failed: {tmp_path / 'nowhere'}: ")
    assert "No such file or directory" in last


def _ingest_on_a_terminal(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run with stderr on a pseudo-terminal, as in an interactive shell; return what it showed."""
    leader, follower = pty.openpty()
    # A terminal has a size; tqdm draws nothing on a zero-column one.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        result = _run(tmp_path, *args, stderr=follower)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed and everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    return result, shown.decode("utf-8", "replace")


def test_a_progress_bar_on_a_terminal_only(tmp_path: Path, dumps: Path) -> None:
    result, shown = _ingest_on_a_terminal(tmp_path, str(dumps))
    assert result.returncode == 0
    assert BAR.search(shown), shown  # tqdm's counter, in dumps
    assert "85 papers stored" in result.stdout

    # --json on a terminal: no bar (scripts parse stdout, and their logs hold stderr)
    (tmp_path / "var" / "digestd.db").unlink()
    result, shown = _ingest_on_a_terminal(tmp_path, str(dumps), "--json")
    assert result.returncode == 0
    assert not BAR.search(shown)
    assert json.loads(result.stdout)["papers_total"] == 85

    # stderr not a terminal (a pipe, a journal): no bar
    piped = _run(tmp_path, str(dumps))
    assert not BAR.search(piped.stderr)
