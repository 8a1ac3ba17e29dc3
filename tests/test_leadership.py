"""Several daemons on one PostgreSQL database: one leads (an advisory lock), the once-only jobs
run there alone, and a follower takes over when the leader stops or loses its connection.
Plus the SQLite case, where every daemon leads."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import digestd.daemon as daemon_module
from digestd import cli
from digestd.config_load import load_config
from digestd.daemon import LEADER_JOBS, Daemon
from digestd.store import Leadership, Store, open_leadership
from digestd.subscribers import add_subscriber

from support import POSTGRES_ENV, free_port, postgres_schema, wait_for

TOPICS = """
[[topics]]
slug = "agents"
name = "Agents"
query = "agent*"
"""


class Running:
    """A daemon's main loop in a thread of its own, as `digestd run` drives it, and what its
    once-only jobs did."""

    def __init__(self, root: Path, database_url: str):
        (root / "var").mkdir(parents=True)
        (root / "seeds").mkdir()
        self.config_path = root / "digestd.toml"
        self.config_path.write_text(
            f'[paths]\nseeds_dir = "{root / "seeds"}"\ndata_dir = "{root / "var"}"\n'
            f'[database]\nurl = "{database_url}"\n'
            f'[http]\naddress = "127.0.0.1:{free_port()}"\n'
            "[ingest]\nscan_interval = 60\nsettle_seconds = 0\n" + TOPICS
        )
        self.daemon = Daemon(load_config(self.config_path), config_path=str(self.config_path))
        self.runs: dict[str, int] = dict.fromkeys(LEADER_JOBS, 0)
        for job_id in LEADER_JOBS:
            self._count(job_id, getattr(self.daemon, job_id))
        self.thread = threading.Thread(target=self.daemon.serve_forever, daemon=True)

    def _count(self, job_id: str, real: Callable[[], None]) -> None:
        def counted() -> None:
            self.runs[job_id] += 1
            real()

        setattr(self.daemon, job_id, counted)  # _schedule binds the instance's attribute

    def start(self) -> Running:
        self.thread.start()
        status = self.daemon.config.paths.data_dir / daemon_module.STATUS_FILE
        wait_for(status.exists, 10, "the daemon to start")  # written once start-up is done
        return self

    def stop(self) -> None:
        self.daemon.request_stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the daemon did not stop"

    @property
    def leader(self) -> bool:
        return self.daemon.is_leader

    def paused(self) -> set[str]:
        return {j for j in LEADER_JOBS if self.daemon.scheduler.get_job(j).next_run_time is None}

    def status_file(self) -> dict[str, object]:
        path = self.daemon.config.paths.data_dir / daemon_module.STATUS_FILE
        return dict(json.loads(path.read_text()))


@pytest.fixture(autouse=True)
def quick_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The main loop's pace is also the takeover time; 2 s in service, a tenth here.
    monkeypatch.setattr(daemon_module, "TICK_SECONDS", 0.1)


@pytest.fixture
def two_daemons(tmp_path: Path, postgres_schema_url: str) -> Iterator[tuple[Running, Running]]:
    """Two daemons on one schema; the first started leads (the second starts once it does)."""
    first = Running(tmp_path / "a", postgres_schema_url).start()
    second = Running(tmp_path / "b", postgres_schema_url)
    try:
        assert first.leader
        yield first, second.start()
    finally:
        for running in (first, second):
            if running.thread.is_alive():
                running.stop()
            else:
                running.daemon.shutdown()


def _one_leader(daemons: tuple[Running, ...]) -> Running | None:
    leaders = [d for d in daemons if d.leader]
    return leaders[0] if len(leaders) == 1 else None


def _advisory_holders(key: int) -> list[int]:
    """Backend pids holding `key` as PostgreSQL itself reports it."""
    engine = create_engine(os.environ[POSTGRES_ENV])
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(
                # A one-bigint key is shown split: its high half as classid, its low as objid.
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = :key"
            ), {"key": key}).scalars())
    finally:
        engine.dispose()


def test_one_leader_runs_the_once_only_jobs_and_a_follower_takes_over_when_it_stops(
    two_daemons: tuple[Running, Running], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    leader, follower = two_daemons
    caplog.set_level(logging.INFO)
    wait_for(lambda: follower.status_file().get("leader") is False, 5, "its status file")
    assert not follower.leader and leader.leader
    # The lock is on the server, held by the leader's own session, once for the database.
    key = leader.daemon.leadership.key
    assert key is not None and key == follower.daemon.leadership.key
    assert _advisory_holders(key) == [leader.daemon.leadership.backend_pid]
    # Only the leader's once-only jobs ran (at start-up); the follower's wait paused.
    wait_for(lambda: all(leader.runs.values()), 5, "the leader's start-up runs")
    assert follower.runs == dict.fromkeys(LEADER_JOBS, 0)
    assert follower.paused() == set(LEADER_JOBS) and leader.paused() == set()
    assert leader.status_file()["leader"] is True

    # A batch ingested by the follower: the leader dispatches it, the follower does not.
    before = leader.runs["dispatch"]
    follower.daemon._run_soon("dispatch", 0.0)
    wait_for(lambda: leader.runs["dispatch"] > before, 5, "the nudged leader to dispatch")
    assert follower.runs["dispatch"] == 0

    # The leader stops: its session ends, the follower leads within a few ticks and runs the
    # once-only jobs at once.
    leader.stop()
    assert not leader.leader
    wait_for(lambda: follower.leader, 3, "the follower to take over")
    wait_for(lambda: all(follower.runs.values()), 5, "the new leader's runs")
    assert follower.paused() == set()
    wait_for(lambda: follower.status_file().get("leader") is True, 3, "the new status file")
    logged = [r.getMessage() for r in caplog.records]
    assert "leadership released" in logged
    assert "leadership acquired jobs=dispatch,retry,housekeeping,bounces" in logged
    # (last: the command sets up logging of its own)
    assert cli.main(["status", "--config", str(follower.config_path)]) == 0
    assert "  leader:       true\n" in capsys.readouterr().out


def test_a_leader_whose_connection_is_killed_stops_leading_and_the_other_takes_over(
    two_daemons: tuple[Running, Running], caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    leader, follower = two_daemons
    caplog.set_level(logging.INFO)
    wait_for(lambda: all(leader.runs.values()), 5, "the leader's start-up runs")
    admin = create_engine(os.environ[POSTGRES_ENV])
    try:
        with admin.begin() as connection:
            assert connection.execute(
                text("SELECT pg_terminate_backend(:pid)"),
                {"pid": leader.daemon.leadership.backend_pid},
            ).scalar()
    finally:
        admin.dispose()
    wait_for(lambda: not leader.leader, 3, "the old leader to notice")
    wait_for(lambda: _one_leader((leader, follower)) is follower, 3, "the follower to take over")
    assert leader.paused() == set(LEADER_JOBS) and follower.paused() == set()
    lost = [r for r in caplog.records if r.getMessage().startswith("leadership lost")]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert "terminating connection" in lost[0].getMessage()
    wait_for(lambda: all(follower.runs.values()), 5, "the new leader's runs")
    # The old leader runs no once-only job any more, even one asked for.
    runs = dict(leader.runs)
    leader.daemon._run_soon("dispatch", 0.0)
    wait_for(lambda: leader.status_file().get("leader") is False, 3, "its status file")
    assert leader.runs == runs
    assert cli.main(["status", "--config", str(leader.config_path)]) == 0
    assert "  leader:       false (another instance dispatches" in capsys.readouterr().out


def test_two_daemons_send_each_immediate_subscriber_one_digest(
    two_daemons: tuple[Running, Running], seed_files: list[Path], postgres_schema_url: str,
) -> None:
    leader, follower = two_daemons
    emails = [f"reader{i}@example.org" for i in range(3)]
    for email in emails:
        add_subscriber(leader.daemon.runtime.store, email, ["agents"], cadence="immediate")
    # Into the follower's seeds: it ingests, and the leader plans and sends.
    staged = follower.daemon.config.paths.data_dir / "incoming.txt"
    shutil.copy(seed_files[0], staged)
    os.replace(staged, follower.daemon.config.paths.seeds_dir / seed_files[0].name)

    def sent() -> list[Path]:
        return [p for d in (leader, follower)
                for p in (d.daemon.config.outbox_dir / "new").glob("*")]

    wait_for(lambda: len(sent()) >= len(emails), 8, "the digests")
    # Another dispatch asked of each: nothing goes out twice.
    before = leader.runs["dispatch"]
    for running in (leader, follower):
        running.daemon._run_soon("dispatch", 0.0)
    wait_for(lambda: leader.runs["dispatch"] >= before + 1, 3, "another dispatch")
    wait_for(lambda: leader.daemon.last_status["message"].startswith("dispatch"), 3, "it to end")
    recipients = sorted(
        address
        for path in sent()
        for _, address in getaddresses(message_from_bytes(path.read_bytes()).get_all("To", []))
    )
    assert recipients == emails
    assert follower.runs["dispatch"] == 0
    assert all(p.is_relative_to(leader.daemon.config.outbox_dir) for p in sent())
    store = Store.open(postgres_schema_url, migrate=False)
    try:
        assert store.delivery_counts() == {"sent": len(emails)}
    finally:
        store.dispose()


def test_on_sqlite_every_daemon_leads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    daemons = [Running(tmp_path / name, url) for name in ("a", "b")]
    try:
        for running in daemons:
            running.start()
        for running in daemons:
            assert running.leader and running.paused() == set()
            assert type(running.daemon.leadership) is Leadership
            wait_for(lambda r=running: r.status_file().get("leader") is True, 3, "status file")
    finally:
        for running in daemons:
            running.stop()
    store = Store.open(url, migrate=False)
    try:
        leadership = open_leadership(store)
        assert leadership.try_acquire() and leadership.held
        leadership.release()
        assert leadership.held  # one file on one machine: nothing to hand over
    finally:
        store.dispose()


def test_deployments_in_separate_schemas_of_one_database_each_have_a_leader(
    postgres_schema_url: str,
) -> None:
    """Advisory lock keys are database-wide; the key includes the schema so that they do not
    take each other's leadership (the suite's parallel tests rely on it too)."""
    with postgres_schema() as other_url:
        stores = [Store.open(url) for url in (postgres_schema_url, postgres_schema_url, other_url)]
        leaderships = [open_leadership(store) for store in stores]
        try:
            assert [lead.try_acquire() for lead in leaderships] == [True, False, True]
            assert leaderships[0].key == leaderships[1].key != leaderships[2].key
        finally:
            for lead, store in zip(leaderships, stores, strict=True):
                lead.release()
                store.dispose()
