"""The delivery queue with Debian's Postfix as the relay (a private instance on loopback that
relays only to an aiosmtpd next hop): an outage, greylisting and a relay refusing digestd."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time
from pathlib import Path

import pytest
from mta import Postfix

from digestd.config import (
    Config,
    DeliveryConfig,
)
from digestd.delivery import TransportHealth, plan_digests, send_pending
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import feed_titles, relay_config, smtp_server

pytestmark = pytest.mark.slow

BACKOFF = 0.5
MAX_ATTEMPTS = 2
GREY = "grey@example.org"


def _config(tmp_path: Path, port: int) -> Config:
    return relay_config(tmp_path, port, DeliveryConfig(
        retry_backoff=BACKOFF, max_attempts=MAX_ATTEMPTS, pause_after_failures=2
    ))


def _send_until(runtime: Runtime, health: TransportHealth, done, seconds: float):  # type: ignore[no-untyped-def]
    """send_pending as the daemon runs it (again once the backoff is over) until `done`."""
    deadline = time.monotonic() + seconds
    reports = []
    while time.monotonic() < deadline:
        reports.append(send_pending(runtime, dt.datetime.now(dt.UTC), health=health))
        if done(reports[-1]):
            return reports
        time.sleep(0.2)
    raise AssertionError(f"not done after {seconds}s: {[str(r) for r in reports]}")


def test_the_queue_through_a_postfix_outage_greylisting_and_a_refusal(tmp_path: Path) -> None:
    """On SQLite only: the ledger's backends are covered by test_queue.py; this is the relay."""
    Postfix.skip_unless_available()
    store = Store.open(f"sqlite:///{tmp_path / 'digestd.db'}")
    readers = [f"reader{i}@example.org" for i in range(6)]
    with (
        smtp_server() as (inbox, hop),
        Postfix(relay_port=hop, recipient_replies={GREY: "450 4.7.1 Greylisted"}) as mta,
    ):
        runtime = Runtime.open(_config(tmp_path, mta.port), store=store)
        ids = [
            add_subscriber(store, a, ["widgets"], cadence="immediate")[0].id
            for a in [GREY, *readers]
        ]
        feed_titles(runtime, ["Sparse Widgets"])
        assert plan_digests(runtime, dt.datetime.now(dt.UTC)).planned == 7

        # The relay is stopped for longer than max_attempts x backoff (several times over).
        mta.stop()
        health = TransportHealth()
        outage_end = time.monotonic() + 3 * MAX_ATTEMPTS * BACKOFF
        tries = 0
        while time.monotonic() < outage_end:
            report = send_pending(runtime, dt.datetime.now(dt.UTC), health=health)
            tries += report.deferred > 0  # tried, found down, gave everything back
            assert report.sent == report.failed == 0
            time.sleep(0.1)
        assert tries >= 3
        assert {(d.status, d.attempts) for d in store.deliveries()} == {("pending", 0)}

        # Back: everybody but the greylisted recipient goes out in the first run after the
        # backoff; the 450 holds up nobody else.
        mta.start()
        reports = _send_until(runtime, health, lambda r: r.sent, 10)
        assert (reports[-1].sent, reports[-1].retrying, reports[-1].failed) == (6, 1, 0)
        mta.wait_until_empty()
        assert sorted(r for rcpts, _ in inbox.received for r in rcpts) == readers

        # The greylisting ends: its digest goes too, and each digest went exactly once.
        mta.reconfigure(relay_port=hop)
        _send_until(runtime, health, lambda r: r.sent, 10)
        mta.wait_until_empty()
        ids_seen = [
            email.message_from_bytes(content, policy=email.policy.default)["Message-ID"]
            for _, content in inbox.received
        ]
        assert len(ids_seen) == len(set(ids_seen)) == 7
        assert sorted(r for rcpts, _ in inbox.received for r in rcpts) == sorted(
            [GREY, *readers]
        )
        assert {d.status for d in store.deliveries()} == {"sent"}

        # A relay that wants a login answers every RCPT "554 5.7.1 Client host rejected":
        # run after run (more than pause_after_failures), nobody is charged or paused.
        mta.reconfigure(relay_port=hop, refuse="client")
        feed_titles(runtime, ["Dense Widgets"])
        plan_digests(runtime, dt.datetime.now(dt.UTC))
        refused = []
        end = time.monotonic() + 5 * BACKOFF
        while time.monotonic() < end:
            report = send_pending(runtime, dt.datetime.now(dt.UTC), health=health)
            assert report.failed == report.paused == report.sent == 0
            if report.deferred:
                refused.append(report.transport_down)
            time.sleep(0.1)
        assert len(refused) >= 3
        assert all("554 5.7.1" in r and "Client host rejected" in r for r in refused)
        for subscriber_id in ids:
            record = store.subscriber_by_id(subscriber_id)
            assert record is not None
            assert (record.status, record.bounce_count) == ("active", 0)
        assert {(d.status, d.attempts) for d in store.deliveries(status="pending")} == {
            ("pending", 0)
        }
        assert len(inbox.received) == 7
    store.dispose()
