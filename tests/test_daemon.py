"""The daemon in-process: job settings, a failing job, reload, the watchdog, signals, stopping
between dumps, and a start-up that cannot listen. The subprocess view is test_daemon_e2e.py."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

import digestd.daemon as daemon_module
import digestd.ingest as ingest_module
import digestd.jobs as jobs_module
from digestd import cli
from digestd.config_load import load_config
from digestd.daemon import MISFIRE_GRACE, Daemon
from digestd.errors import DigestdError
from digestd.subscribers import add_subscriber

from support import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]

TOPICS = """
[[topics]]
slug = "kv-cache"
name = "KV cache"
query = '"kv cache" OR kv-cache'
"""


class Notifications:
    """The systemd end of sd_notify: a datagram socket recording every state it receives."""

    def __init__(self, path: Path):
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setblocking(False)
        self.states: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                data = self.socket.recv(4096)
            except BlockingIOError:
                return self.states
            self.states.extend(data.decode().splitlines())

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notifications]:
    notifications = Notifications(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    yield notifications
    notifications.close()


def _write_config(path: Path, tmp_path: Path, *, port: int, extra: str = "",
                  scan_interval: float = 60, templates: Path | None = None) -> None:
    templates_dir = f'templates_dir = "{templates}"\n' if templates else ""
    path.write_text(
        f'[paths]\nseeds_dir = "{tmp_path / "seeds"}"\ndata_dir = "{tmp_path / "var"}"\n'
        + templates_dir
        + f'[http]\naddress = "127.0.0.1:{port}"\n'
        f"[ingest]\nscan_interval = {scan_interval}\nsettle_seconds = 0\n"
        + TOPICS + extra
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "var").mkdir()
    (tmp_path / "seeds").mkdir()
    path = tmp_path / "digestd.toml"
    _write_config(path, tmp_path, port=free_port())
    return path


@pytest.fixture
def daemon(config_path: Path, notify: Notifications) -> Iterator[Daemon]:
    instance = Daemon(load_config(config_path), config_path=str(config_path))
    yield instance
    instance.shutdown()


def test_jobs_coalesce_never_overlap_and_tolerate_misfires(
    daemon: Daemon, notify: Notifications
) -> None:
    daemon.start()
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"scan", "dispatch", "retry", "housekeeping", "bounces"}
    for job in jobs.values():
        assert job.coalesce is True, job.id
        assert job.max_instances == 1, job.id
        assert job.misfire_grace_time == MISFIRE_GRACE > 0, job.id
    assert jobs["scan"].trigger.interval.total_seconds() == 60
    wait_for(lambda: "READY=1" in notify.poll(), 5, "READY=1")
    daemon.shutdown()
    assert "STOPPING=1" in notify.poll()
    assert not daemon.scheduler.running


def test_a_job_that_raises_is_logged_with_its_cause_and_the_daemon_goes_on(
    config_path: Path, tmp_path: Path, notify: Notifications, seed_files: list[Path],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    _write_config(config_path, tmp_path, port=free_port(), scan_interval=0.2)
    shutil.copy(seed_files[0], tmp_path / "seeds")
    real = jobs_module.ingest_and_publish
    calls = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        # Stands for anything a scan can hit (a vanished mount, a bug): the first scan raises.
        calls.append(1)
        if len(calls) == 1:
            raise OSError("seeds volume went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "ingest_and_publish", fails_once)
    caplog.set_level(logging.INFO)
    daemon = Daemon(load_config(config_path), config_path=str(config_path))
    try:
        daemon.start()
        # The next scan runs on schedule and ingests the dump.
        wait_for(lambda: daemon.runtime.store.count_papers() > 0, 10, "the second scan")
        assert daemon.scheduler.running
        failures = [r for r in caplog.records if r.getMessage().startswith("job failed")]
        assert len(failures) == 1
        (failure,) = failures
        assert failure.levelno == logging.ERROR
        assert failure.getMessage() == "job failed job=scan error='seeds volume went away'"
        assert failure.exc_info is not None and isinstance(failure.exc_info[1], OSError)
        assert "STATUS=scan failed: seeds volume went away" in notify.poll()
        wait_for(lambda: any(s.startswith("STATUS=scan: 1 dumps ingested") for s in notify.poll()),
              5, "the scan's STATUS line")
    finally:
        daemon.shutdown()


def test_reload_applies_a_good_config_and_refuses_a_broken_one(
    daemon: Daemon, config_path: Path, tmp_path: Path, notify: Notifications,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    daemon.start()
    port = daemon.config.http_host_port[1]
    running = daemon.runtime

    # An unknown key: refused with the key named, the old configuration kept.
    _write_config(config_path, tmp_path, port=port, extra="[feeds]\nnonsense = 1\n")
    daemon.reload()
    assert daemon.runtime is running
    assert any(
        "reload refused" in r.getMessage() and "nonsense" in r.getMessage()
        for r in caplog.records
    )
    # A topic query that does not parse: refused before anything is written to the database.
    broken_topic = '[[topics]]\nslug = "bad"\nname = "Bad"\nquery = "(unclosed"\n'
    _write_config(config_path, tmp_path, port=port, extra=broken_topic)
    daemon.reload()
    assert daemon.runtime is running
    assert "bad" not in {t.slug for t in daemon.runtime.store.topics()}

    # A template that does not parse: refused, naming the file and line.
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    digest_html = templates / "email" / "digest.html"
    digest_html.write_text(digest_html.read_text() + "\n{% if %}\n")
    broken_lines = digest_html.read_text().count("\n")
    _write_config(config_path, tmp_path, port=port, templates=templates)
    daemon.reload()
    assert daemon.runtime is running
    # (jobs log from their own threads meanwhile: look at every record, not the last)
    assert any(
        f"template {digest_html} line {broken_lines}" in r.getMessage() for r in caplog.records
    )

    # A good one, through the main loop as SIGHUP drives it: new topic, new scan interval.
    new_topic = '[[topics]]\nslug = "agents"\nname = "Agents"\nquery = "agent*"\n'
    _write_config(config_path, tmp_path, port=port, extra=new_topic, scan_interval=30)
    daemon.request_reload()
    notify.poll()
    notify.states.clear()
    daemon.tick(watchdog=False)
    assert daemon.runtime is not running
    assert {t.slug for t in daemon.runtime.store.topics()} == {"kv-cache", "agents"}
    assert daemon.server.config.app.state.runtime is daemon.runtime
    assert daemon.scheduler.get_job("scan").trigger.interval.total_seconds() == 30
    states = notify.poll()
    assert states.index("RELOADING=1") < states.index("READY=1")
    assert "STATUS=configuration reloaded" in states


def test_the_watchdog_is_pinged_only_while_the_database_answers(
    daemon: Daemon, notify: Notifications, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    daemon.tick(watchdog=True)
    assert notify.poll().count("WATCHDOG=1") == 1

    monkeypatch.setattr(daemon.runtime.store, "ping", lambda: False)
    daemon.tick(watchdog=True)
    daemon.tick(watchdog=True)
    assert notify.poll().count("WATCHDOG=1") == 1
    assert "STATUS=database not answering" in notify.states
    # said once, not on every tick
    assert sum("database not answering" in r.getMessage() for r in caplog.records) == 1

    monkeypatch.undo()
    daemon.tick(watchdog=True)
    assert notify.poll().count("WATCHDOG=1") == 2
    # without a watchdog configured there is nothing to ping
    daemon.tick(watchdog=False)
    assert notify.poll().count("WATCHDOG=1") == 2


def test_watchdog_interval_follows_systemd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert daemon_module.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert daemon_module.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert daemon_module.watchdog_interval() is None


def test_signals_reload_and_stop_the_main_loop(
    daemon: Daemon, notify: Notifications, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop runs in the main thread, as under `digestd run`; an operator thread signals."""
    caplog.set_level(logging.INFO)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    problems: list[str] = []

    def operator() -> None:
        try:
            wait_for(lambda: "READY=1" in notify.poll(), 10, "READY=1")
            os.kill(os.getpid(), signal.SIGHUP)
            wait_for(lambda: "STATUS=configuration reloaded" in notify.poll(), 10, "the reload")
        except AssertionError as exc:
            problems.append(str(exc))
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # always, so the loop below returns

    daemon.install_signal_handlers()
    helper = threading.Thread(target=operator, daemon=True)
    helper.start()
    try:
        assert daemon.serve_forever() == 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    helper.join(5)
    assert problems == []
    states = notify.poll()
    assert states.index("RELOADING=1") < states.index("STOPPING=1")
    logged = [r.getMessage() for r in caplog.records]
    assert "signal=SIGHUP" in logged and "signal=SIGINT" in logged
    assert not daemon.scheduler.running


def test_a_storm_of_signals_never_wedges_the_daemon(tmp_path: Path) -> None:
    """Hundreds of SIGHUPs against a loop turning every 10 ms, then SIGTERM: it must stop.

    The handlers take no lock (a handler calling Event.set() while the main thread is inside
    that Event's wait() or clear() would wait on itself forever); that window is too narrow
    to hit on demand, so this guards the handling as a whole rather than that one race."""
    (tmp_path / "var").mkdir()
    (tmp_path / "seeds").mkdir()
    config = tmp_path / "digestd.toml"
    _write_config(config, tmp_path, port=free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGESTD_", "NOTIFY_"))}
    env.update(DIGESTD_CONFIG=str(config), WATCHDOG_USEC="20000", WATCHDOG_PID="")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "digestd", "run"], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    try:
        wait_for(lambda: "started" in log_path.read_text(), 30, "the daemon to start")
        for _ in range(300):
            process.send_signal(signal.SIGHUP)
            time.sleep(0.002)
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            pytest.fail("the daemon did not stop after SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log_path.read_text()
    assert "reloaded" in text and "stopped" in text


def test_a_stop_during_a_scan_ends_it_after_the_current_dump(
    daemon: Daemon, config_path: Path, seed_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for seed in seed_files[:3]:
        shutil.copy(seed, daemon.config.paths.seeds_dir)
    real = ingest_module.ingest_file

    def then_sigterm(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        daemon.stopping.set()  # what SIGTERM leads to, arriving while this dump was ingested
        return result

    monkeypatch.setattr(ingest_module, "ingest_file", then_sigterm)
    daemon.scan()
    dumps = daemon.runtime.store.list_dumps(limit=10)
    assert [(Path(d.path).name, d.status) for d in dumps] == [(seed_files[0].name, "ingested")]


# uvicorn ends its thread with SystemExit when it cannot bind; that is how the daemon learns it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_port_in_use_fails_start_up_without_ready(
    config_path: Path, tmp_path: Path, notify: Notifications
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _write_config(config_path, tmp_path, port=taken.getsockname()[1])
        daemon = Daemon(load_config(config_path), config_path=str(config_path))
        with pytest.raises(DigestdError, match=f"127.0.0.1:{taken.getsockname()[1]}"):
            daemon.serve_forever()
    states = notify.poll()
    assert "READY=1" not in states
    assert "STOPPING=1" in states


def test_a_batch_brings_dispatch_forward_through_the_main_loop(
    daemon: Daemon, seed_files: list[Path]
) -> None:
    finished: list[str] = []
    daemon.scheduler.add_listener(
        lambda event: finished.append(event.job_id), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
    )
    daemon.start()

    def next_run(job_id: str) -> float:
        at = daemon.scheduler.get_job(job_id).next_run_time
        return at.timestamp() - time.time() if at else 0.0

    # Once the start-up runs are over (not merely submitted), both jobs are a minute away.
    wait_for(lambda: {"scan", "dispatch"} <= set(finished), 10, "start-up runs")
    assert next_run("scan") > 30 and next_run("dispatch") > 30
    shutil.copy(seed_files[0], daemon.config.paths.seeds_dir)
    daemon.scan()
    assert "dispatch" in daemon._run_at
    assert next_run("dispatch") > 30  # the job did not touch the scheduler itself
    daemon.tick(watchdog=False)
    assert daemon._run_at == {}
    # brought forward to now: it runs at once and is then a minute away again
    wait_for(lambda: next_run("dispatch") > 30 and daemon.last_status["message"].startswith(
        "dispatch"), 10, "dispatch to run")


def test_stopping_while_a_job_finishes_does_not_deadlock(
    daemon: Daemon, seed_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """APScheduler's shutdown holds its job-store lock while it waits for running jobs; a job
    that then touched the scheduler (to bring dispatch forward) hung the stop for good."""
    shutil.copy(seed_files[0], daemon.config.paths.seeds_dir)
    real = jobs_module.ingest_and_publish
    ingested, release = threading.Event(), threading.Event()

    def slow_scan(*args: Any, **kwargs: Any) -> Any:
        report = real(*args, **kwargs)
        ingested.set()
        release.wait(10)  # finish only once the stop is under way
        return report

    monkeypatch.setattr(jobs_module, "ingest_and_publish", slow_scan)
    daemon.start()
    assert ingested.wait(10)
    stopper = threading.Thread(target=daemon.shutdown)
    stopper.start()
    wait_for(lambda: not daemon.scheduler.running, 5, "the stop to begin")
    time.sleep(0.2)  # now inside scheduler.shutdown(wait=True), holding its locks
    release.set()
    stopper.join(15)
    assert not stopper.is_alive(), "shutdown deadlocked"
    assert daemon.runtime.store.count_papers() > 0


def test_status_shows_what_was_ingested_counts_and_next_runs(
    daemon: Daemon, config_path: Path, seed_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_subscriber(daemon.runtime.store, "ada@example.org", ["kv-cache"], cadence="daily")
    shutil.copy(seed_files[0], daemon.config.paths.seeds_dir)
    daemon.start()
    wait_for(lambda: daemon.runtime.store.count_papers() > 0, 10, "the first scan")
    wait_for(lambda: daemon.last_status.get("message"), 10, "a STATUS message")
    daemon.tick(watchdog=False)
    common = ["--config", str(config_path)]

    assert cli.main(["status", *common]) == 0
    out = capsys.readouterr().out
    papers = daemon.runtime.store.count_papers()
    assert f"papers:      {papers}\n" in out
    assert "subscribers: 1 active" in out
    dump = (daemon.config.paths.seeds_dir / seed_files[0].name).absolute()
    assert f"ingested  {dump}: 52 new of 52" in out
    assert f"daemon (pid {os.getpid()}" in out
    for job in ("scan", "dispatch", "retry", "housekeeping"):
        assert re.search(rf"^  {job} +\d{{4}}-\d\d-\d\dT", out, re.M), (job, out)
    assert "last action: " in out

    assert cli.main(["status", "--json", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["papers"] == papers and summary["daemon"]["running"] is True
    assert summary["last_dumps"][0]["status"] == "ingested"

    # Stopped cleanly: not running. Killed outright: its last file names a dead process.
    daemon.shutdown()
    assert cli.main(["status", *common]) == 0
    assert "daemon: not running" in capsys.readouterr().out
    status_file = daemon.config.paths.data_dir / "daemon-status.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = json.loads(status_file.read_text())
    stale.update(pid=int(dead.stdout), jobs={"scan": "2026-01-01T00:00:00+00:00"})
    status_file.write_text(json.dumps(stale))
    assert cli.main(["status", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["daemon"]["running"] is False


def test_a_wake_up_for_a_running_job_waits_until_it_finishes(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch landing during a dispatch: the dispatch asked for runs right after, instead of
    being skipped as an overlap and waiting a whole interval."""
    started, release = threading.Event(), threading.Event()
    calls: list[float] = []

    def slow_dispatch() -> None:
        calls.append(time.monotonic())
        started.set()
        release.wait(10)

    monkeypatch.setattr(daemon, "dispatch", slow_dispatch)
    daemon.start()
    assert started.wait(5)  # the start-up dispatch, still running
    daemon._run_soon("dispatch", 0.0)
    daemon.wake.clear()
    daemon.tick(watchdog=False)
    assert "dispatch" in daemon._run_at  # kept while the job runs
    release.set()
    wait_for(daemon.wake.is_set, 5, "the finished job to wake the main loop")
    daemon.tick(watchdog=False)
    assert daemon._run_at == {}
    wait_for(lambda: len(calls) == 2, 5, "the second dispatch")


def test_sd_notify_never_blocks_on_a_receiver_that_does_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full notify queue (about 10 datagrams) once hung the daemon in sendto, SIGTERM and
    all. Messages that do not fit are dropped with a warning instead."""
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(tmp_path / "deaf.sock"))
    notifier = daemon_module.SystemdNotifier(str(tmp_path / "deaf.sock"))
    try:
        def flood() -> None:
            for _ in range(2000):
                notifier.notify("WATCHDOG=1")
            notifier.notify("STOPPING=1")

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        sender.join(5)
        assert not sender.is_alive(), "sd_notify blocked"
        assert any("sd_notify failed states=" in r.getMessage() for r in caplog.records)
        assert deaf.recv(100) == b"WATCHDOG=1"  # what fitted was delivered
    finally:
        notifier.close()
        deaf.close()


def test_watchdog_pings_are_spaced_however_often_the_loop_wakes(
    daemon: Daemon, notify: Notifications
) -> None:
    for _ in range(5):
        daemon.tick(watchdog=True, ping_every=60)
    assert notify.poll().count("WATCHDOG=1") == 1


def test_the_status_file_is_rewritten_only_when_it_changes_and_health_follows_the_loop(
    daemon: Daemon,
) -> None:
    daemon.start()
    daemon.tick(watchdog=False)
    status_file = daemon.config.paths.data_dir / "daemon-status.json"
    written = status_file.stat()
    for _ in range(3):
        daemon.tick(watchdog=False)
    # os.replace gives every rewrite a new inode: still the same file, nothing was written
    assert status_file.stat().st_ino == written.st_ino
    assert status_file.stat().st_mtime_ns == written.st_mtime_ns
    daemon._status("something happened")
    daemon.tick(watchdog=False)
    assert status_file.stat().st_ino != written.st_ino
    assert json.loads(status_file.read_text())["last"]["message"] == "something happened"
    assert daemon.health() == ("leader", "ok")
    daemon.shutdown()
    assert daemon.health()[1] == "stopped"
