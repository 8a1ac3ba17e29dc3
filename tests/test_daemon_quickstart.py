"""The README's quick start: `make run` (quickstart, then the daemon on the embedded defaults)
ingests the samples, serves the feeds and mails the demo subscriber a digest."""

from __future__ import annotations

import email
import email.policy
import mailbox
import threading
from pathlib import Path

import feedparser
import httpx
import pytest

from digestd import quickstart
from digestd.config_load import load_config
from digestd.daemon import Daemon

from support import free_port, wait_for


def _outbox(path: Path) -> list[email.message.EmailMessage]:
    try:
        return [
            email.message_from_bytes(m.as_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for m in mailbox.Maildir(path, factory=None, create=False)
        ]
    except (FileNotFoundError, mailbox.NoSuchMailboxError):  # not there yet, or half made
        return []


def test_the_quick_start_works_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed_files: list[Path]
) -> None:
    # A fresh checkout's working directory, on the built-in defaults; only the port is ours.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGESTD_HTTP_ADDRESS", f"127.0.0.1:{free_port()}")
    done = quickstart.prepare(None)
    assert any("sample dumps" in line for line in done)
    assert any(quickstart.DEMO_ADDRESS in line for line in done)
    # the five text dumps, then one dump of each structured source
    copied = sorted(p.name for p in (tmp_path / "seeds").iterdir())
    assert copied[:5] == [p.name for p in seed_files]
    assert [Path(name).suffix for name in copied[5:]] == [".json", ".atom", ".rss"]
    assert quickstart.prepare(None) == []  # safe to run again

    config = load_config(None)
    assert config.source is None  # no configuration file: the embedded defaults
    daemon = Daemon(config)
    loop = threading.Thread(target=daemon.serve_forever, name="daemon")
    loop.start()
    try:
        outbox = tmp_path / "var" / "outbox"
        (digest,) = wait_for(lambda: _outbox(outbox), 30, "the demo digest in var/outbox")
        assert digest["To"].addresses[0].addr_spec == quickstart.DEMO_ADDRESS
        assert "new papers" in digest["Subject"]
        assert daemon.runtime.store.count_papers() == 444  # the structured samples add ids
        wait_for(
            lambda: sum(bool(p.arxiv_id) for p in daemon.runtime.store.papers()) == 5, 30,
            "the arXiv ids of the structured samples",
        )

        base = config.base_url
        index = httpx.get(f"{base}/", timeout=5)
        assert index.status_code == 200
        feed = feedparser.parse(httpx.get(f"{base}/feeds/all.atom", timeout=5).content)
        assert len(feed.entries) > 0
        assert (tmp_path / "var" / "feeds").is_dir()
    finally:
        daemon.request_stop()
        loop.join(30)
    assert not loop.is_alive()

    # `make run` again resumes where it stopped: its first scan and dispatch find nothing
    # new and send no second digest.
    again = Daemon(load_config(None))
    try:
        again.scan()
        again.dispatch()
        assert again.last_status["message"].startswith("dispatch: planned=0")
        assert len(_outbox(tmp_path / "var" / "outbox")) == 1
    finally:
        again.shutdown()
