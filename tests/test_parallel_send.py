"""smtp.connections: one run sends over several connections at once, each digest once."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from digestd.config import Config, MailConfig, PathsConfig, SmtpConfig, TopicConfig
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.pace import Pacer
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import feed_titles, free_port

TOPICS = [TopicConfig(slug="widgets", name="Widgets", query="widget*")]


class SlowInbox:
    """Takes a while over each message, like a relay that scans mail; notes each connection."""

    def __init__(self) -> None:
        self.recipients: list[str] = []
        self.peers: set[tuple[str, int]] = set()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.sleep(0.02)
        self.peers.add(session.peer)
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.mark.parametrize("connections", [3])
def test_every_digest_once_over_several_connections(
    store: Store, tmp_path: Path, connections: int
) -> None:
    from aiosmtpd.controller import Controller

    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = Config(
            paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
            mail=MailConfig(transport="smtp", from_address="digestd <digestd@example.org>"),
            smtp=SmtpConfig(host="127.0.0.1", port=port, timeout=10, connections=connections),
            topics=TOPICS,
        )
        runtime = Runtime.open(config, store=store)
        addresses = [f"r{n}@example.org" for n in range(80)]
        for address in addresses:
            add_subscriber(store, address, ["widgets"], cadence="immediate")
        feed_titles(runtime, ["Sparse Widgets"])
        now = dt.datetime.now(dt.UTC)
        assert plan_digests(runtime, now).planned == 80
        report = send_pending(runtime, now)
        assert (report.sent, report.failed, report.deferred) == (80, 0, 0)
        assert sorted(inbox.recipients) == sorted(addresses)  # each exactly once
        assert len(inbox.peers) == connections  # claims of 25: every connection had work
        assert {d.status for d in store.deliveries()} == {"sent"}
        assert send_pending(runtime, now).sent == 0
    finally:
        controller.stop()


def test_connections_share_one_rate_limit() -> None:
    import threading

    pacer = Pacer(rate=50)
    stamps: list[float] = []

    def send_five() -> None:
        for _ in range(5):
            pacer.wait()
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=send_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    # 20 sends at 50 per second: at least 19 gaps of 20 ms in all, whatever the threads did
    assert stamps[-1] - stamps[0] >= 19 / 50 - 0.01


def test_the_setting_is_checked(tmp_path: Path) -> None:
    from digestd.config_load import load_config
    from digestd.errors import ConfigError

    path = tmp_path / "digestd.toml"
    path.write_text("[smtp]\nconnections = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"smtp\.connections"):
        load_config(path, environ={}, check_dirs=False)
