"""The seeds watcher: real inotify events on a temporary directory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digestd.watch import SeedsWatcher


class Wakes:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def expect(self, timeout: float = 5.0) -> None:
        assert self.event.wait(timeout), "no wake-up"
        self.event.clear()

    def expect_none(self, quiet: float = 0.5) -> None:
        assert not self.event.wait(quiet), "woken by a file that is no dump"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Wakes]]:
    wakes = Wakes()
    watcher = SeedsWatcher(tmp_path, wakes)
    assert watcher.start()
    try:
        yield tmp_path, wakes
    finally:
        watcher.stop()


def test_a_new_dump_wakes_the_scan(watched: tuple[Path, Wakes]) -> None:
    directory, wakes = watched
    (directory / "005_new.txt").write_text("new\n")
    wakes.expect()


def test_hidden_and_partial_files_do_not(watched: tuple[Path, Wakes]) -> None:
    directory, wakes = watched
    (directory / ".hidden.txt").write_text("x")
    (directory / "dump.txt.part").write_text("x")
    (directory / "dump.tmp").write_text("x")
    wakes.expect_none()


def test_a_finished_download_renamed_into_place_wakes_it(watched: tuple[Path, Wakes]) -> None:
    directory, wakes = watched
    partial = directory / "006.txt.part"
    partial.write_text("still coming")
    wakes.expect_none()
    os.replace(partial, directory / "006.txt")
    wakes.expect()


def test_subdirectories_are_not_dumps(watched: tuple[Path, Wakes]) -> None:
    directory, wakes = watched
    (directory / "archive").mkdir()
    wakes.expect_none()


def test_a_missing_directory_is_reported_not_raised(tmp_path: Path) -> None:
    watcher = SeedsWatcher(tmp_path / "missing", lambda: None)
    started = time.monotonic()
    assert watcher.start() is False
    watcher.stop()
    assert time.monotonic() - started < 5
