"""The delivery queue through failures: outages, greylisting, refusals of digestd, expiry,
leases and order, against an aiosmtpd server on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digestd import cli
from digestd.config import (
    Config,
    DeliveryConfig,
)
from digestd.delivery import TransportHealth, plan_digests, send_pending, sender
from digestd.delivery.replies import refusal_key, refuses_sender
from digestd.errors import StoreError
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import feed_titles, free_port, relay_config, smtp_server

BACKOFF = 60.0
# Retries are checked half a backoff late: a run's clock moves on by the time the run took,
# which is seconds on a loaded machine, so `BACKOFF + 1` would be a race.


class Relay:
    """An SMTP server whose RCPT replies are set per address (default: accept)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: address -> reply to RCPT TO
        self.replies: dict[str, str] = {}
        #: reply to every RCPT TO, when set
        self.everyone: str | None = None
        self.received: list[tuple[str, str]] = []  # (recipient, Message-ID)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        reply = self.everyone or self.replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        content = envelope.content.decode("utf-8", "replace")
        message_id = next(
            (line.split(":", 1)[1].strip() for line in content.splitlines()
             if line.lower().startswith("message-id:")), "",
        )
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append((rcpt, message_id))
        return "250 Message accepted"

    def recipients(self) -> list[str]:
        return [r for r, _ in self.received]


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    with smtp_server(Relay()) as served:
        yield served


def _config(tmp_path: Path, port: int, **delivery: float) -> Config:
    settings: dict[str, float] = {
        "retry_backoff": BACKOFF, "max_attempts": 5, "pause_after_failures": 2,
    }
    settings.update(delivery)
    return relay_config(tmp_path, port, DeliveryConfig(**settings))  # type: ignore[arg-type]


@pytest.fixture
def runtime(store: Store, tmp_path: Path, relay: tuple[Relay, int]) -> Runtime:
    return Runtime.open(_config(tmp_path, relay[1]), store=store)


def _subscribe(runtime: Runtime, *addresses: str) -> list[int]:
    ids = []
    for address in addresses:
        record, _ = add_subscriber(runtime.store, address, ["widgets"], cadence="immediate")
        ids.append(record.id)
    return ids


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _status(runtime: Runtime) -> dict[str, tuple[str, int]]:
    emails = {s.id: s.email for s in runtime.store.subscribers()}
    return {emails[d.subscriber_id]: (d.status, d.attempts) for d in runtime.store.deliveries()}


# Replies, classified ---------------------------------------------------------------------------


def test_replies_about_digestd_are_told_from_replies_about_the_recipient() -> None:
    assert refuses_sender(554, "5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied")
    assert refuses_sender(554, "5.7.1 <a@example.net>: Relay access denied")
    assert refuses_sender(530, "5.7.0 Must issue a STARTTLS command first")
    assert refuses_sender(550, "5.7.1 Authentication required")
    assert not refuses_sender(550, "5.1.1 <a@example.net>: Recipient address rejected")
    assert not refuses_sender(550, "5.7.1 Message rejected as spam")
    assert not refuses_sender(450, "4.7.1 Client host rejected: try later")
    # the same words for two recipients, their addresses taken out
    assert refusal_key("550 5.7.0 <a@x.org> policy", "a@x.org") == refusal_key(
        "550 5.7.0 <b@y.org> policy", "b@y.org"
    )
    assert refusal_key("550 5.1.1 <a@x.org>: no such user", "a@x.org") is None


# Outages, greylisting, refusals ----------------------------------------------------------------


def test_an_outage_longer_than_all_retries_loses_nothing(
    store: Store, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    down = free_port()  # nothing listens there: connection refused
    runtime = Runtime.open(_config(tmp_path, down, max_attempts=2), store=store)
    _subscribe(runtime, *[f"r{i}@example.org" for i in range(30)])
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    health = TransportHealth()
    # Ten tries over hours of outage (far past max_attempts x backoff): nobody is charged.
    for _ in range(10):
        report = send_pending(runtime, now, health=health)
        assert report.sent == 0 and report.failed == 0
        now = health.down_until + dt.timedelta(seconds=1)  # type: ignore[operator]
    assert health.failures == 10
    assert set(_status(runtime).values()) == {("pending", 0)}
    runtime.config = _config(tmp_path, port, max_attempts=2)  # the relay is back
    report = send_pending(runtime, now, health=health)
    assert report.sent == 30 and health.failures == 0
    assert sorted(server.recipients()) == sorted(f"r{i}@example.org" for i in range(30))
    assert set(_status(runtime).values()) == {("sent", 1)}


def test_a_greylisted_recipient_does_not_hold_up_the_others(
    runtime: Runtime, relay: tuple[Relay, int]
) -> None:
    server, _ = relay
    addresses = [f"r{i}@example.org" for i in range(8)]
    server.replies = {a: "450 4.7.1 Greylisted, try again later" for a in addresses[:4]}
    _subscribe(runtime, *addresses)
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    report = send_pending(runtime, now)
    # Four greylisted in a row used to stop the run: now the rest go out in the same run.
    assert (report.sent, report.retrying, report.transport_down) == (4, 4, "")
    assert sorted(server.recipients()) == addresses[4:]
    server.replies = {}
    assert send_pending(runtime, now + dt.timedelta(seconds=BACKOFF / 2)).sent == 0
    assert send_pending(runtime, now + dt.timedelta(seconds=BACKOFF * 1.5)).sent == 4
    status = _status(runtime)
    assert all(status[a] == ("sent", 2) for a in addresses[:4])


def test_a_relay_refusing_digestd_pauses_nobody(runtime: Runtime, relay: tuple[Relay, int]) -> None:
    server, _ = relay
    server.everyone = "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    ids = _subscribe(runtime, *[f"r{i}@example.org" for i in range(6)])
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    health = TransportHealth()
    for _ in range(4):  # more runs than pause_after_failures
        report = send_pending(runtime, now, health=health)
        assert (report.sent, report.failed, report.paused) == (0, 0, 0)
        assert "Client host rejected" in report.transport_down
        now = health.down_until + dt.timedelta(seconds=1)  # type: ignore[operator]
    for subscriber_id in ids:
        record = runtime.store.subscriber_by_id(subscriber_id)
        assert record is not None and (record.status, record.bounce_count) == ("active", 0)
    assert set(_status(runtime).values()) == {("pending", 0)}
    server.everyone = None
    assert send_pending(runtime, now, health=health).sent == 6


def test_the_same_refusal_for_many_recipients_in_a_row_charges_nobody(
    runtime: Runtime, relay: tuple[Relay, int]
) -> None:
    server, _ = relay
    server.everyone = "550 5.7.0 Policy rejection: sender domain not allowed"
    ids = _subscribe(runtime, *[f"r{i}@example.org" for i in range(sender.SAME_REFUSAL_LIMIT + 3)])
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    report = send_pending(runtime, now)
    assert report.failed == 0 and "in a row" in report.transport_down
    assert all(runtime.store.subscriber_by_id(i).bounce_count == 0 for i in ids)  # type: ignore[union-attr]
    assert set(_status(runtime).values()) == {("pending", 0)}


def test_many_unknown_users_are_each_charged(runtime: Runtime, relay: tuple[Relay, int]) -> None:
    """x.1.x replies are about the address: a dead domain's subscribers bounce, even many."""
    server, _ = relay
    server.everyone = "550 5.1.1 No such user"
    count = sender.SAME_REFUSAL_LIMIT + 2
    ids = _subscribe(runtime, *[f"r{i}@example.org" for i in range(count)])
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    report = send_pending(runtime, now)
    assert (report.failed, report.transport_down) == (count, "")
    record = runtime.store.subscriber_by_id(ids[0])
    assert record is not None and record.bounce_count == 1
    assert record.last_error is not None and "5.1.1" in record.last_error


# Order, expiry, leases -------------------------------------------------------------------------


def test_digests_reach_a_subscriber_in_order(runtime: Runtime, relay: tuple[Relay, int]) -> None:
    server, _ = relay
    server.replies = {"ada@example.org": "451 4.3.0 Mailbox busy"}
    _subscribe(runtime, "ada@example.org", "bob@example.org")
    now = _now()
    feed_titles(runtime, ["Sparse Widgets"])
    plan_digests(runtime, now)
    send_pending(runtime, now)
    feed_titles(runtime, ["Dense Widgets"])
    plan_digests(runtime, now)
    # ada's second digest waits for her first, which is backing off.
    report = send_pending(runtime, now)
    assert report.sent == 1 and server.recipients() == ["bob@example.org"] * 2
    server.replies = {}
    later = now + dt.timedelta(seconds=BACKOFF * 1.5)
    assert send_pending(runtime, later).sent == 2
    received = [mid for r, mid in server.received if r == "ada@example.org"]
    ada_id = runtime.store.subscribers()[0].id
    planned = [d.message_id for d in runtime.store.deliveries(subscriber_id=ada_id)]
    assert len(received) == 2 and received == planned  # the older digest first


def test_a_digest_queued_too_long_expires_and_can_be_retried(
    runtime: Runtime, relay: tuple[Relay, int], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, port = relay
    config = _config(tmp_path, free_port(), max_queue_hours=24)
    runtime.config = config
    _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    assert send_pending(runtime, now).transport_down
    report = send_pending(runtime, now + dt.timedelta(hours=25))
    assert report.expired == 1
    (row,) = runtime.store.deliveries()
    assert row.status == "expired" and "Connection refused" in (row.last_error or "")
    count = runtime.store.retry_deliveries(["expired"], now=now + dt.timedelta(hours=25))
    assert count == 1
    runtime.config = _config(tmp_path, port, max_queue_hours=24)
    assert send_pending(runtime, now + dt.timedelta(hours=25)).sent == 1
    assert server.recipients() == ["ada@example.org"]


def test_a_dead_senders_claims_come_back_within_seconds(
    runtime: Runtime, relay: tuple[Relay, int]
) -> None:
    server, _ = relay
    _subscribe(runtime, *[f"r{i}@example.org" for i in range(5)])
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    claimed = runtime.store.claim_deliveries(
        now, lease=dt.timedelta(seconds=sender.CLAIM_LEASE), limit=10, claimer="dead"
    )
    in_hand = claimed[0].delivery.id
    lease = sender.send_lease(runtime.config.smtp.timeout)
    assert runtime.store.take_claimed(in_hand, claimer="dead", until=now + lease)
    # ... and the process dies. Its waiting claims come back after CLAIM_LEASE seconds,
    assert send_pending(runtime, now + dt.timedelta(seconds=1)).sent == 0
    soon = now + dt.timedelta(seconds=sender.CLAIM_LEASE + 1)
    assert send_pending(runtime, soon).sent == 4
    # the message it had in hand (perhaps accepted already) only after its send lease.
    assert send_pending(runtime, now + lease + dt.timedelta(seconds=1)).sent == 1
    assert len(server.received) == 5
    assert all(d.attempts == 1 for d in runtime.store.deliveries())  # the claim charged none


def test_a_run_skips_a_row_another_run_took_over(runtime: Runtime) -> None:
    _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    (claimed,) = runtime.store.claim_deliveries(
        now, lease=dt.timedelta(seconds=1), limit=1, claimer="slow"
    )
    later = now + dt.timedelta(seconds=2)
    (again,) = runtime.store.claim_deliveries(
        later, lease=dt.timedelta(seconds=15), limit=1, claimer="fast"
    )
    assert again.delivery.id == claimed.delivery.id
    assert not runtime.store.take_claimed(claimed.delivery.id, claimer="slow", until=later)
    assert runtime.store.take_claimed(claimed.delivery.id, claimer="fast", until=later)


def test_an_accepted_message_the_ledger_cannot_record_is_not_resent_before_its_lease(
    runtime: Runtime, relay: tuple[Relay, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = relay
    _subscribe(runtime, "ada@example.org", "bob@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    real = type(runtime.store).mark_sent

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise StoreError("the database is away")

    monkeypatch.setattr(type(runtime.store), "mark_sent", broken)
    monkeypatch.setattr(sender.time, "sleep", lambda seconds: None)
    with pytest.raises(StoreError):
        send_pending(runtime, now)
    assert server.recipients() == ["ada@example.org"]
    monkeypatch.setattr(type(runtime.store), "mark_sent", real)
    assert _status(runtime) == {
        "ada@example.org": ("sending", 0), "bob@example.org": ("pending", 0),
    }
    # bob's untried claim is back at once; ada's accepted message waits out its lease.
    assert send_pending(runtime, now + dt.timedelta(seconds=1)).sent == 1
    assert server.recipients() == ["ada@example.org", "bob@example.org"]
    lease = sender.send_lease(runtime.config.smtp.timeout)
    assert send_pending(runtime, now + lease - dt.timedelta(seconds=2)).sent == 0
    # After it the digest goes again (the documented duplicate), with the same Message-ID.
    assert send_pending(runtime, now + lease + dt.timedelta(seconds=1)).sent == 1
    first, _, again = server.received
    assert first == again


# Bounces and operators -------------------------------------------------------------------------


def test_record_bounce_pauses_with_a_reason(runtime: Runtime) -> None:
    store = runtime.store
    (ada_id,) = _subscribe(runtime, "ada@example.org")
    first = store.record_bounce(ada_id, error="550 5.1.1 no such user", pause_after=2)
    assert first is not None and (first.status, first.bounce_count) == ("active", 1)
    second = store.record_bounce(ada_id, error="550 5.2.1 mailbox disabled", pause_after=2)
    assert second is not None and second.status == "paused"
    assert second.pause_reason == (
        "bounce score 2 of 2 (2 bounces, each within 7 days of the one before); "
        "the last: 550 5.2.1 mailbox disabled"
    )
    assert second.as_json()["bounces"] == 2
    assert second.as_json()["last_error"] == "550 5.2.1 mailbox disabled"
    resumed = store.resume_subscriber(ada_id)
    assert resumed is not None and resumed.pause_reason is None and resumed.bounce_count == 0


def test_cli_deliveries_list_retry_and_the_send_summary(
    tmp_path: Path, relay: tuple[Relay, int], capsys: pytest.CaptureFixture[str]
) -> None:
    server, port = relay
    down = free_port()
    config_file = tmp_path / "digestd.toml"

    def write_config(smtp_port: int) -> None:
        config_file.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "var"}"\n'
            '[http]\nbase_url = "https://digest.example.org"\n'
            '[mail]\ntransport = "smtp"\nfrom_address = "digests@example.org"\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntimeout = 5\n'
            '[delivery]\nretry_backoff = 0.2\n'
            '[[topics]]\nslug = "widgets"\nname = "Widgets"\nquery = "widget*"\n'
        )

    write_config(down)
    (tmp_path / "var").mkdir()
    common = ["--config", str(config_file)]
    for name in ("ada", "bob", "cy"):
        assert cli.main(["subscribers", "add", f"{name}@example.org", "--topic", "widgets",
                         "--cadence", "immediate", *common]) == 0
    server.replies = {"cy@example.org": "550 5.1.1 No such user"}
    from digestd.config_load import load_config

    runtime = Runtime.open(load_config(config_file))
    feed_titles(runtime, ["Sparse Widgets"])
    runtime.close()
    capsys.readouterr()

    # The relay is down: every row not sent is counted, not only those claimed.
    assert cli.main(["digest", "send", *common]) == 1
    out, err = capsys.readouterr()
    assert "0 sent" in out and "3 still queued" in out
    assert "3 digests not sent" in err and "transport is down" in err

    assert cli.main(["deliveries", "list", "--json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["subscriber"] for d in listed} == {f"{n}@example.org" for n in ("ada", "bob", "cy")}
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in listed)
    assert all("Connection refused" in d["last_error"] and d["next_attempt"] for d in listed)

    write_config(port)
    time.sleep(0.3)  # the transport's backoff (delivery.retry_backoff) is over
    assert cli.main(["digest", "send", *common]) == 1
    out, err = capsys.readouterr()
    assert "2 sent" in out and "1 failed" in out and "0 still queued" in out
    assert "1 digests not sent" in err
    assert sorted(server.recipients()) == ["ada@example.org", "bob@example.org"]

    assert cli.main(["deliveries", "list", "--status", "failed", *common]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "cy@example.org" in line and "550 5.1.1 No such user" in line

    assert cli.main(["deliveries", "retry", "--failed", "--since", "1h", *common]) == 0
    assert capsys.readouterr().out.startswith("1 failed deliveries queued again")
    assert cli.main(["deliveries", "retry", "--since", "yesterday", *common]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    assert cli.main(["digest", "send", *common]) == 1
    capsys.readouterr()
    assert cli.main(["subscribers", "list", "--json", *common]) == 0
    cy = next(s for s in json.loads(capsys.readouterr().out) if s["email"] == "cy@example.org")
    assert cy["bounces"] == 2 and "5.1.1" in cy["last_error"] and cy["pause_reason"] is None
