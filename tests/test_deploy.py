"""Deploying it: `digestd run` as a subprocess checked with `digestd healthcheck`, its JSON log
read line by line, base_url and http.address changed on SIGHUP; pages under a path prefix."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "samples" / "seeds").glob("*.txt"))


def _config(tmp: Path, port: int, base_url: str, extra: str = "") -> str:
    return (
        f'[paths]\nseeds_dir = "{tmp / "seeds"}"\ndata_dir = "{tmp / "var"}"\n'
        f'[http]\naddress = "127.0.0.1:{port}"\nbase_url = "{base_url}"\n'
        '[log]\nformat = "json"\naccess_log = true\n'
        "[metrics]\nenabled = true\n" + extra
    )


def _records(path: Path) -> list[dict[str, object]]:
    # every line of the daemon's stderr is one JSON object
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_daemon_healthcheck_json_log_and_sighup(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "seeds").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "seeds" / SEEDS[0].name).write_bytes(SEEDS[0].read_bytes())
    config = tmp_path / "digestd.toml"
    config.write_text(_config(tmp_path, port, "https://old.example.org/digest"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGESTD_", "JOURNAL_"))}
    env.update(DIGESTD_CONFIG=str(config), PYTHONUNBUFFERED="1")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "digestd", *args], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )

    assert cli("healthcheck", "--timeout", "2").returncode == 1  # nothing listens yet
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "digestd", "run"], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
    feed = tmp_path / "var" / "feeds" / "all.atom"
    try:
        wait_for(lambda: cli("healthcheck").returncode == 0, 30, "a healthy daemon")
        check = cli("healthcheck")
        # the signing key exists before any page was viewed: made at start-up
        with sqlite3.connect(tmp_path / "var" / "digestd.db") as db:
            keys = db.execute("SELECT count(*) FROM site_keys WHERE name = 'web'").fetchone()
        assert keys == (1,)
        assert check.stdout.startswith("healthy: ok / database: ok / role: leader")
        wait_for(lambda: feed.is_file() and "old.example.org" in feed.read_text()
                 and "<entry>" in feed.read_text(), 30, "feeds for the old base_url")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.text.splitlines() == ["ok", "database: ok", "role: leader", "scheduler: ok"]
        # the proxy may pass the prefix on: the same page answers there
        assert httpx.get(f"http://127.0.0.1:{port}/digest/healthz", timeout=10).status_code == 200

        # A new base_url on SIGHUP: the feeds already written are rebuilt with it.
        config.write_text(_config(tmp_path, port, "https://new.example.org/papers"))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "new.example.org/papers/papers/" in feed.read_text(), 30,
                 "feeds rebuilt for the new base_url")
        assert "old.example.org" not in feed.read_text()

        # A new http.address is refused with the reason; the old one keeps serving.
        other = free_port()
        config.write_text(_config(tmp_path, other, "https://new.example.org/papers"))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "http.address changed" in log_path.read_text(), 30, "the refusal")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    records = _records(log_path)
    assert {"ts", "level", "logger", "msg", "message"} <= set(records[0])
    started = next(r for r in records if r["msg"] == "started")
    assert started["http"] == f"127.0.0.1:{port}" and started["leader"] == "true"
    refused = next(r for r in records if r["msg"].startswith("reload refused"))
    assert refused["level"] == "ERROR" and f"127.0.0.1:{other}" in str(refused["error"])
    access = [r for r in records if r["logger"] == "digestd.access"]
    assert any({"path": "/healthz", "status": "200"}.items() <= r.items() for r in access)
    assert any(r["msg"] == "base_url changed; rebuilding feeds" for r in records)
    # stopped: the health check says so
    assert cli("healthcheck", "--timeout", "2").returncode == 1


@pytest.mark.slow
def test_log_level_from_the_configuration_and_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "digestd.toml"
    (tmp_path / "var").mkdir()
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\n[log]\nlevel = "WARNING"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGESTD_", "JOURNAL_"))}
    env["DIGESTD_CONFIG"] = str(config)

    def ingest(seed: Path, *options: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "digestd", "ingest", str(seed), *options], env=env,
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "level=INFO" not in ingest(SEEDS[0])  # log.level = WARNING
    assert "level=INFO" in ingest(SEEDS[1], "--log-level", "info")  # the command line wins


@pytest.mark.parametrize("level", ["verbose", "loud"])
def test_a_bad_log_level_is_a_usage_error_without_traceback(level: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "digestd", "--log-level", level, "status"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "invalid level" in done.stderr


def test_status_into_a_closed_pipe_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTD_")}
    env["DIGESTD_DATA_DIR"] = str(tmp_path / "var")
    subprocess.run(
        [sys.executable, "-m", "digestd", "ingest", *map(str, SEEDS)], env=env, cwd=tmp_path,
        capture_output=True, timeout=120, check=True,
    )
    # `digestd papers | head -1`: the reader leaves after one line
    done = subprocess.run(
        f"{sys.executable} -m digestd papers 2>{tmp_path / 'err'} | head -1", shell=True,
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in (tmp_path / "err").read_text()
    assert not re.search(r"BrokenPipe|Exception ignored", (tmp_path / "err").read_text())
