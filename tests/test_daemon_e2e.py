"""End to end: `digestd run` as a subprocess, a real SMTP server, HTTP, sd_notify and signals."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from digestd.parse import decode_dump, paper_key, parse_dump

from support import SmtpInbox, free_port, smtp_server, wait_for

TOPICS = """
[[topics]]
slug = "kv-cache"
name = "KV cache"
query = '"kv cache" OR "key-value cache" OR kv-cache'

[[topics]]
slug = "cooking"
name = "Quantum cooking"
query = '"quantum cooking"'
"""


NEW_TOPIC = """
[[topics]]
slug = "agents"
name = "Agents"
query = "agent*"
"""


class Notifications:
    """The systemd side of sd_notify: a datagram socket read all the time, like PID 1 does
    (its queue holds only about ten datagrams), recording every state."""

    def __init__(self, path: Path):
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.1)
        self.states: list[str] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, name="notify", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.socket.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            with self.lock:
                self.states.extend(data.decode().splitlines())

    def poll(self) -> list[str]:
        with self.lock:
            return list(self.states)

    def clear(self) -> None:
        with self.lock:
            self.states.clear()

    def seen(self, state: str) -> bool:
        return state in self.poll()

    def close(self) -> None:
        self.closed.set()
        self.reader.join(2)
        self.socket.close()


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpInbox, int]]:
    with smtp_server() as (inbox, port):
        yield inbox, port


def test_daemon_end_to_end(tmp_path: Path, smtp_sink, seed_files) -> None:
    sink, smtp_port = smtp_sink
    http_port = free_port()
    seeds, data = tmp_path / "seeds", tmp_path / "var"
    seeds.mkdir()
    config = tmp_path / "digestd.toml"
    config.write_text(
        f'[paths]\nseeds_dir = "{seeds}"\ndata_dir = "{tmp_path / "var"}"\n'
        f'[http]\naddress = "127.0.0.1:{http_port}"\nbase_url = "https://papers.example.org"\n'
        # Polling only: a scan then meets the slow copy half-written and must leave it for
        # later (tests/test_watch.py covers the inotify wake-up).
        "[ingest]\nscan_interval = 1\nsettle_seconds = 1\nwatch = false\n"
        '[mail]\ntransport = "smtp"\nfrom_address = "Digests <digests@example.org>"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        + TOPICS
    )
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTD_")}
    env.update(DIGESTD_CONFIG=str(config), PYTHONUNBUFFERED="1")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "digestd", *args], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )

    for address, topic, cadence in [
        ("kv@example.org", "kv-cache", "immediate"),
        ("kv2@example.org", "kv-cache", "immediate"),
        ("cook@example.org", "cooking", "immediate"),
        ("daily@example.org", "kv-cache", "daily"),
    ]:
        added = cli("subscribers", "add", address, "--topic", topic, "--cadence", cadence)
        assert added.returncode == 0, added.stderr

    notify = Notifications(tmp_path / "notify.sock")
    # PYTHONFAULTHANDLER: a daemon that hangs dumps its threads on SIGABRT (see finally)
    env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000", PYTHONFAULTHANDLER="1")
    log_path = tmp_path / "daemon.log"

    def start() -> subprocess.Popen[bytes]:
        env["WATCHDOG_PID"] = ""
        return subprocess.Popen(
            [sys.executable, "-m", "digestd", "run"], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"),
        )

    daemon = start()
    try:
        wait_for(lambda: notify.seen("READY=1"), 30, "READY=1")
        base = f"http://127.0.0.1:{http_port}"
        wait_for(lambda: _get(f"{base}/healthz") == 200, 10, "/healthz")

        # A slow copy: written in pieces, each refreshing the mtime, under the final name.
        sample = seed_files[4].read_bytes()
        target = seeds / seed_files[4].name
        with open(target, "wb") as fh:
            for start_at in range(0, len(sample), len(sample) // 4 + 1):
                fh.write(sample[start_at : start_at + len(sample) // 4 + 1])
                fh.flush()
                time.sleep(0.4)
        keys = {paper_key(p.title) for p in parse_dump(decode_dump(sample)).papers}
        expected = len(keys)

        papers = wait_for(lambda: _papers_when(cli, expected), 30, f"{expected} papers")
        # Stored once each, and nothing from a half-written file (a cut title would be extra).
        assert len(papers) == expected
        assert {paper_key(p["title"]) for p in papers} == keys
        # The scan saw the file while it was being written and left it for later.
        assert any(s.startswith("STATUS=scan: 0 dumps ingested") and "1 deferred" in s
                   for s in notify.poll())
        feed = wait_for(lambda: _feed_entries(f"{base}/feeds/all.atom"), 15, "the feed")
        assert feed > 0

        wait_for(lambda: len(sink.received) >= 2, 20, "the immediate digests")
        time.sleep(2)  # room for a wrong second message to show up
        recipients = [rcpt for rcpts, _ in sink.received for rcpt in rcpts]
        # one message each, to the matching immediate subscribers only
        assert sorted(recipients) == ["kv2@example.org", "kv@example.org"]
        message = email.message_from_bytes(sink.received[0][1], policy=email.policy.default)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "new paper" in message["Subject"]

        assert wait_for(lambda: notify.seen("WATCHDOG=1"), 10, "WATCHDOG=1")
        # STATUS= says what it did last
        assert any(s.startswith("STATUS=dispatch: planned=") for s in notify.poll())

        # SIGHUP with a broken configuration is refused; the daemon keeps serving.
        good = config.read_text()
        config.write_text(good + "\n[http]\nnonsense = 1\n")
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in log_path.read_text(), 30, "reload refused")
        assert daemon.poll() is None
        # A good one with a new topic: applied without a restart.
        config.write_text(good + NEW_TOPIC)
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in log_path.read_text(), 30, "reloaded")
        assert _get(f"{base}/healthz") == 200
        topics = json.loads(cli("topics", "list", "--json").stdout)
        assert "agents" in {t["slug"] for t in topics}
        assert daemon.poll() is None

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert notify.seen("STOPPING=1")

        # Restart: everything is already done; no second e-mail.
        notify.clear()
        daemon = start()
        wait_for(lambda: notify.seen("READY=1"), 30, "READY=1 after restart")
        time.sleep(3)
        assert len(sink.received) == 2
        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        summary = json.loads(status.stdout)
        assert summary["papers"] == expected
        assert set(summary["daemon"]["jobs"]) >= {"scan", "dispatch", "retry", "housekeeping"}
        assert summary["deliveries"] == {"sent": 2}
        # Ctrl-C stops it as cleanly as SIGTERM.
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0
        assert notify.seen("STOPPING=1")
        assert len(sink.received) == 2
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGABRT)  # where it hangs, into the log printed below
            try:
                daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        notify.close()
        print(log_path.read_text() if log_path.exists() else "")


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _papers_when(cli, expected: int):  # type: ignore[no-untyped-def]
    result = cli("papers", "--json")
    if result.returncode != 0:
        return None
    papers = json.loads(result.stdout)
    return papers if len(papers) >= expected else None


def _feed_entries(url: str) -> int:
    import feedparser

    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return 0
    if response.status_code != 200:
        return 0
    return len(feedparser.parse(response.content).entries)
