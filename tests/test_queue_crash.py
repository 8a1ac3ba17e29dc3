"""Kill the sender at random moments, many times, against a server that answers 451 now and
then: afterwards every digest is sent, none failed because of the crashes, in order per
subscriber, and there is at most one duplicate per kill. (benchmarks/crash_duplicates.py
measures the duplicate rate per kill over many more kills.)"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest
from crashloop import Sink, kill_loop

from digestd.config import (
    Config,
    DeliveryConfig,
)
from digestd.delivery import plan_digests
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import backend_database, feed_titles, free_port, relay_config

pytestmark = pytest.mark.slow

SUBSCRIBERS = 25
KILLS = 6


def crash_config(tmp_path: Path, port: int) -> Config:
    # max_attempts high enough that 451s alone never fail a digest: a failure here could
    # only come from crashes being charged.
    return relay_config(
        tmp_path, port, DeliveryConfig(retry_backoff=1, max_attempts=20), timeout=1
    )


def plan_two_digests_each(runtime: Runtime, count: int) -> None:
    for i in range(count):
        add_subscriber(runtime.store, f"r{i:03d}@example.org", ["widgets"], cadence="immediate")
    for titles in (["Sparse Widgets"], ["Dense Widgets"]):
        feed_titles(runtime, titles)
        assert plan_digests(runtime, dt.datetime.now(dt.UTC)).planned == count


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killing_the_sender_loses_nothing_and_duplicates_at_most_once_per_kill(
    backend: str, tmp_path: Path
) -> None:
    port = free_port()
    with backend_database(backend, tmp_path / "digestd.db") as url:
        config = crash_config(tmp_path, port)
        store = Store.open(url)
        runtime = Runtime.open(config, store=store)
        plan_two_digests_each(runtime, SUBSCRIBERS)
        store.dispose()  # the forked senders open their own connections
        sink = Sink(port, tmp_path / "accepted.log", every=7)
        try:
            result = kill_loop(url, config, sink, kills=KILLS, seed=12)
        finally:
            sink.close()
        store = Store.open(url, migrate=False)
        try:
            rows = store.deliveries()
            assert {r.status for r in rows} == {"sent"}, [(r.status, r.last_error) for r in rows]
            sent_ids = {r.message_id for r in rows}
            accepted_ids = [mid for _, mid in result.accepted]
            assert set(accepted_ids) == sent_ids and len(sent_ids) == 2 * SUBSCRIBERS
            assert result.effective_kills >= KILLS // 2, "most kills must land mid-send"
            assert result.duplicates <= result.kills
            # In order per subscriber: each one's older digest arrived first.
            first_seen: dict[str, list[str]] = defaultdict(list)
            for rcpt, mid in result.accepted:
                if mid not in first_seen[rcpt]:
                    first_seen[rcpt].append(mid)
            by_id = {r.message_id: r.id for r in rows}
            for rcpt, mids in first_seen.items():
                assert [by_id[m] for m in mids] == sorted(by_id[m] for m in mids), rcpt
            print(
                f"{backend}: {result.kills} kills ({result.effective_kills} mid-send), "
                f"{result.duplicates} duplicates"
            )
        finally:
            store.dispose()
