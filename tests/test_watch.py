"""The seeds watcher: real inotify events on a temporary directory."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from digestd.config_load import load_config
from digestd.daemon import Daemon
from digestd.watch import SeedsWatcher

from support import free_port, wait_for


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


def _daemon_config(tmp_path: Path, *, watch: bool) -> Path:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "var").mkdir()
    path = tmp_path / "digestd.toml"
    # An hour between scans: only the watcher can bring a dump in during the test.
    path.write_text(
        f'[paths]\nseeds_dir = "{tmp_path / "seeds"}"\ndata_dir = "{tmp_path / "var"}"\n'
        f'[http]\naddress = "127.0.0.1:{free_port()}"\n'
        f"[ingest]\nscan_interval = 3600\nsettle_seconds = 0.3\nwatch = {str(watch).lower()}\n"
    )
    return path


def _start_up_scan_done(daemon: Daemon) -> bool:
    """The scan at start-up has finished and the next one is an hour away: from here on only
    the watcher can bring a dump in."""
    if not daemon.scheduler.running:
        return False
    job = daemon.scheduler.get_job("scan")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    with daemon._lock:
        busy = "scan" in daemon._busy
    return job is not None and job.next_run_time is not None and job.next_run_time > later \
        and not busy


@contextmanager
def _running(config_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(load_config(config_path), config_path=str(config_path))
    loop = threading.Thread(target=daemon.serve_forever, name="daemon")
    loop.start()
    try:
        wait_for(lambda: _start_up_scan_done(daemon), 10, "the start-up scan")
        yield daemon
    finally:
        daemon.request_stop()
        loop.join(30)
        assert not loop.is_alive()


def test_the_daemon_ingests_a_dropped_dump_without_waiting_for_the_interval(
    tmp_path: Path, seed_files: list[Path]
) -> None:
    with _running(_daemon_config(tmp_path, watch=True)) as daemon:
        # As a careful copier does: write under a partial name, then rename into place.
        partial = tmp_path / "seeds" / f"{seed_files[0].name}.part"
        shutil.copy(seed_files[0], partial)
        os.replace(partial, tmp_path / "seeds" / seed_files[0].name)
        wait_for(lambda: daemon.runtime.store.count_papers() == 52, 10, "the dropped dump")


def test_without_watching_the_dump_waits_for_the_next_scan(
    tmp_path: Path, seed_files: list[Path]
) -> None:
    with _running(_daemon_config(tmp_path, watch=False)) as daemon:
        shutil.copy(seed_files[0], tmp_path / "seeds")
        time.sleep(2)
        assert daemon.runtime.store.count_papers() == 0


def test_a_slow_copy_is_ingested_once_whole(tmp_path: Path, seed_files: list[Path]) -> None:
    """Each write wakes the watcher; none of them may bring a half-written dump in."""
    data = seed_files[1].read_bytes()
    with _running(_daemon_config(tmp_path, watch=True)) as daemon:
        target = tmp_path / "seeds" / seed_files[1].name
        with open(target, "wb") as out:
            step = len(data) // 5 + 1
            for start in range(0, len(data), step):
                out.write(data[start : start + step])
                out.flush()
                time.sleep(0.2)
        wait_for(lambda: daemon.runtime.store.count_papers() == 47, 10, "the whole dump")
        time.sleep(1)
        (dump,) = daemon.runtime.store.list_dumps()
        assert (dump.status, dump.papers_count, dump.new_count) == ("ingested", 47, 47)
