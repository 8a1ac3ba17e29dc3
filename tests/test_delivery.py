"""The delivery ledger against real servers: an aiosmtpd server on loopback, and the database
on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import mailbox
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from digestd import cli
from digestd.config import (
    Config,
    DeliveryConfig,
    HttpConfig,
    MailConfig,
    PathsConfig,
    SmtpConfig,
    TopicConfig,
)
from digestd.config_load import load_config
from digestd.delivery import plan_digests, send_pending, sender
from digestd.delivery.smtp import SmtpTransport
from digestd.digest import render as render_module
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber

from support import feed_titles, free_port, smtp_server

TOPICS = (
    TopicConfig("widgets", "Widgets", "widget*"),
    TopicConfig("gadgets", "Gadgets", "gadget*"),
)
BASE_URL = "https://digest.example.org"
BACKOFF = 60.0
# Retries are checked half a backoff late: a run's clock moves on by the time the run took,
# which is seconds on a loaded machine, so `BACKOFF + 1` would be a race.


# An SMTP server on loopback ------------------------------------------------------------------


class Sink:
    """Stores what it accepts; can answer 4xx a few times, refuse with 5xx, or hang up."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()
        #: answer DATA with 451 this many times before accepting
        self.temporary_failures = 0
        #: answer RCPT TO with this (e.g. "550 ...") instead of accepting
        self.refuse_rcpt: str | None = None
        #: hang up instead of answering the DATA of this (1-based) message
        self.drop_at: int | None = None
        self.data_commands = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            self.data_commands += 1
            if self.drop_at is not None and self.data_commands == self.drop_at:
                server.transport.close()
                return "421 gone"
            if self.temporary_failures > 0:
                self.temporary_failures -= 1
                return "451 4.3.0 Try again later"
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(content, policy=email.policy.default)  # type: ignore[misc]
            for _, content in self.messages
        ]

    def recipients(self) -> list[str]:
        return sorted(r for rcpts, _ in self.messages for r in rcpts)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    with smtp_server(Sink()) as served:
        yield served


# A runtime with two topics and a way to feed it papers ----------------------------------------


def _config(tmp_path: Path, *, port: int | None = None, **delivery: float) -> Config:
    settings: dict[str, float] = {
        "retry_backoff": BACKOFF, "max_attempts": 3, "pause_after_failures": 2,
    }
    settings.update(delivery)
    return dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url=BASE_URL),
        mail=MailConfig(
            transport="smtp" if port else "maildir",
            from_address="Digests <digests@example.org>",
            list_id="digest.example.org",
        ),
        smtp=SmtpConfig(host="127.0.0.1", port=port or 25, timeout=5),
        delivery=DeliveryConfig(**settings),  # type: ignore[arg-type]
        topics=TOPICS,
    )


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    return Runtime.open(_config(tmp_path), store=store)


def _use_smtp(runtime: Runtime, port: int) -> None:
    runtime.config = _config(runtime.config.paths.data_dir.parent, port=port)


def _subscribe(runtime: Runtime, address: str, topics=("widgets",), **kwargs):  # type: ignore[no-untyped-def]
    record, _ = add_subscriber(
        runtime.store, address, list(topics), cadence=kwargs.pop("cadence", "immediate"), **kwargs
    )
    return record


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _deliver(runtime: Runtime, now: dt.datetime | None = None, **kwargs):  # type: ignore[no-untyped-def]
    now = now or _now()
    plan_digests(runtime, now)
    return send_pending(runtime, now, **kwargs)


# Tests -------------------------------------------------------------------------------------


def test_messages_arrive_complete_over_one_connection(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    ada = _subscribe(runtime, "ada@example.org", ["widgets", "gadgets"], name="Ada Lovelace")
    _subscribe(runtime, "bob@example.org", ["gadgets"])
    _subscribe(runtime, "cy@example.org", ["widgets"])
    feed_titles(runtime, ["Widget Gadget Fusion", "Sparse Widgets", "Gadgets at Scale"])

    transport = SmtpTransport(runtime.config.smtp)
    report = _deliver(runtime, transport=transport)
    transport.close()
    assert (report.sent, report.failed, report.retrying) == (3, 0, 0)
    assert transport.connections == 1
    assert server.recipients() == ["ada@example.org", "bob@example.org", "cy@example.org"]

    by_to = {m["To"].addresses[0].addr_spec: m for m in server.parsed()}
    msg = by_to["ada@example.org"]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["From"].addresses[0].addr_spec == "digests@example.org"
    assert msg["To"].addresses[0].display_name == "Ada Lovelace"
    assert msg["Subject"].startswith("3 new papers: ")
    assert msg["Date"] is not None
    assert msg["List-Id"] == "digestd <digest.example.org>"
    assert msg["List-Unsubscribe"] == f"<{BASE_URL}/unsubscribe/{ada.token}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Widget Gadget Fusion" in text and "Widget Gadget Fusion" in html
    assert '<span class="hl"' in html
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    assert row.message_id == msg["Message-ID"]
    assert by_to["bob@example.org"]["Subject"].startswith("2 new papers: ")


def test_hostile_titles_are_escaped_and_add_no_header(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, [
        "<script>alert(1)</script> ]]> Widgets",
        "Widgets\rBcc: evil@example.com",
    ])
    assert _deliver(runtime).sent == 1
    assert server.recipients() == ["ada@example.org"]
    (raw,) = [content for _, content in server.messages]
    assert b"\nBcc:" not in raw and b"\rBcc:" not in raw
    (msg,) = server.parsed()
    assert msg["Bcc"] is None
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt;" in html


def test_a_4xx_is_retried_after_the_backoff(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    ada = _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    server.temporary_failures = 1
    now = _now()

    report = _deliver(runtime, now)
    assert (report.sent, report.retrying, report.failed) == (0, 1, 0)
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at is not None and row.next_attempt_at > now + dt.timedelta(seconds=59)
    assert "451" in (row.last_error or "")

    assert send_pending(runtime, now + dt.timedelta(seconds=10)).sent == 0  # not yet
    later = send_pending(runtime, now + dt.timedelta(seconds=BACKOFF * 1.5))
    assert later.sent == 1
    assert server.recipients() == ["ada@example.org"]
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    assert row.status == "sent" and row.attempts == 2
    assert runtime.store.subscriber_by_id(ada.id).bounce_count == 0  # type: ignore[union-attr]


def test_temporary_failures_give_up_after_max_attempts(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    ada = _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    server.temporary_failures = 99
    now = _now()
    _deliver(runtime, now)
    send_pending(runtime, now + dt.timedelta(seconds=BACKOFF * 1.5))
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    # the second retry waits twice as long
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > now + dt.timedelta(seconds=3 * BACKOFF)
    final = send_pending(runtime, now + dt.timedelta(seconds=4 * BACKOFF))
    assert final.failed == 1
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    assert (row.status, row.attempts) == ("failed", 3)
    subscriber = runtime.store.subscriber_by_id(ada.id)
    assert subscriber is not None and subscriber.status == "active"
    assert subscriber.bounce_count == 0  # not the recipient's fault
    assert server.messages == []


def test_a_5xx_fails_at_once_and_pauses_after_the_limit(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    ada = _subscribe(runtime, "ada@example.org")
    server.refuse_rcpt = "550 5.1.1 No such user"
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()

    report = _deliver(runtime, now)
    assert (report.sent, report.failed, report.paused) == (0, 1, 0)
    (row,) = runtime.store.deliveries(subscriber_id=ada.id)
    assert row.status == "failed" and "550" in (row.last_error or "")
    assert row.next_attempt_at is None
    after = runtime.store.subscriber_by_id(ada.id)
    assert after is not None and (after.status, after.bounce_count) == ("active", 1)
    # not retried, however long we wait
    assert send_pending(runtime, now + dt.timedelta(days=1)).failed == 0

    feed_titles(runtime, ["Dense Widgets"])
    report = _deliver(runtime, now)
    assert (report.failed, report.paused) == (1, 1)
    after = runtime.store.subscriber_by_id(ada.id)
    assert after is not None and (after.status, after.bounce_count) == ("paused", 2)

    # a paused subscriber gets no more digests planned
    server.refuse_rcpt = None
    feed_titles(runtime, ["Tiny Widgets"])
    assert plan_digests(runtime, _now()).planned == 0
    assert server.messages == []


def test_an_accepted_message_clears_the_bounce_count(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    ada = _subscribe(runtime, "ada@example.org")
    server.refuse_rcpt = "550 5.2.2 Mailbox full"
    feed_titles(runtime, ["Sparse Widgets"])
    _deliver(runtime)
    assert runtime.store.subscriber_by_id(ada.id).bounce_count == 1  # type: ignore[union-attr]
    server.refuse_rcpt = None
    feed_titles(runtime, ["Dense Widgets"])
    assert _deliver(runtime).sent == 1
    assert runtime.store.subscriber_by_id(ada.id).bounce_count == 0  # type: ignore[union-attr]


def test_a_dropped_connection_loses_nothing(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    addresses = [f"reader{i}@example.org" for i in range(6)]
    for address in addresses:
        _subscribe(runtime, address)
    feed_titles(runtime, ["Sparse Widgets"])
    server.drop_at = 3
    now = _now()

    transport = SmtpTransport(runtime.config.smtp)
    report = _deliver(runtime, now, transport=transport)
    transport.close()
    # The dropped message is tried once more on a fresh connection, and nobody is charged.
    assert (report.sent, report.retrying, report.failed, report.deferred) == (6, 0, 0, 0)
    assert transport.connections == 2
    assert server.recipients() == sorted(addresses)
    assert runtime.store.delivery_counts() == {"sent": 6}
    assert {r.attempts for r in runtime.store.deliveries()} == {1}


def test_a_server_that_is_down_stops_the_run_and_keeps_the_rest(runtime: Runtime) -> None:
    _use_smtp(runtime, free_port())  # nothing listens there
    for i in range(8):
        _subscribe(runtime, f"reader{i}@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    report = _deliver(runtime, now)
    assert (report.sent, report.retrying, report.failed, report.deferred) == (0, 0, 0, 8)
    assert "Connection refused" in report.transport_down
    rows = runtime.store.deliveries()
    # Nobody is charged for an outage: every row waits out the transport's backoff.
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    wait = dt.timedelta(seconds=BACKOFF)
    assert all(r.next_attempt_at and r.next_attempt_at >= now + wait for r in rows)
    assert send_pending(runtime, now + wait / 2).sent == 0  # left alone meanwhile


def test_sending_twice_sends_nothing_the_second_time(runtime: Runtime) -> None:
    """The default transport: the Maildir outbox."""
    _subscribe(runtime, "ada@example.org")
    _subscribe(runtime, "bob@example.org", ["gadgets"], cadence="daily")
    feed_titles(runtime, ["Sparse Widgets", "Gadget Garden"])
    now = _now()
    first = _deliver(runtime, now)
    assert first.sent == 1  # bob's daily slot has not come yet
    second = _deliver(runtime, now)
    assert (second.sent, second.failed) == (0, 0)
    outbox = mailbox.Maildir(runtime.config.outbox_dir, create=False)
    (message,) = list(outbox)
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "1 new paper: Sparse Widgets"

    # bob's first slot: the next 08:00 UTC (today's when the suite runs before 08:00)
    tomorrow = now.replace(hour=8, minute=0, second=0, microsecond=0)
    if tomorrow <= now:
        tomorrow += dt.timedelta(days=1)
    assert _deliver(runtime, tomorrow - dt.timedelta(minutes=1)).sent == 0
    assert _deliver(runtime, tomorrow).sent == 1
    assert _deliver(runtime, tomorrow + dt.timedelta(hours=1)).sent == 0
    assert len(list(mailbox.Maildir(runtime.config.outbox_dir, create=False))) == 2


def test_a_due_subscriber_with_nothing_new_gets_no_mail(runtime: Runtime) -> None:
    bob = _subscribe(runtime, "bob@example.org", ["gadgets"], cadence="daily")
    feed_titles(runtime, ["Sparse Widgets"])
    slot = (_now() + dt.timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    report = plan_digests(runtime, slot)
    assert (report.planned, report.nothing_new) == (0, 1)
    after = runtime.store.subscriber_by_id(bob.id)
    assert after is not None and after.last_slot_at == slot
    assert runtime.store.deliveries() == []


def test_unconfirmed_and_unsubscribed_subscribers_get_nothing(runtime: Runtime, sink) -> None:
    server, port = sink
    _use_smtp(runtime, port)
    _subscribe(runtime, "pending@example.org", status="pending")
    gone = _subscribe(runtime, "gone@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    assert plan_digests(runtime, now).planned == 1  # only gone@, who is still active
    runtime.store.set_subscriber_status(gone.id, "unsubscribed")
    report = send_pending(runtime, now)
    assert report.sent == 0
    (row,) = runtime.store.deliveries()
    assert row.status == "failed" and row.last_error == "not sent: subscriber is unsubscribed"
    assert server.messages == []


def test_a_dead_senders_claim_is_taken_over_when_its_lease_ends(runtime: Runtime) -> None:
    _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan_digests(runtime, now)
    (claimed,) = runtime.store.claim_deliveries(now, lease=dt.timedelta(minutes=1), limit=10)
    # ... and the process that claimed it dies here
    assert send_pending(runtime, now).sent == 0
    assert send_pending(runtime, now + dt.timedelta(minutes=2)).sent == 1
    (row,) = runtime.store.deliveries()
    # The claim alone counted no attempt: only the one the transport answered.
    assert row.id == claimed.delivery.id and row.status == "sent" and row.attempts == 1


def test_two_senders_send_each_message_exactly_once(
    database_url: str, tmp_path: Path, sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port = sink
    monkeypatch.setattr(sender, "CLAIM_BATCH", 3)  # many small claims: the senders interleave
    config = _config(tmp_path, port=port)
    stores = [Store.open(database_url) for _ in range(2)]
    runtimes = [Runtime.open(config, store=s) for s in stores]
    addresses = [f"reader{i:02d}@example.org" for i in range(24)]
    for address in addresses:
        _subscribe(runtimes[0], address)
    feed_titles(runtimes[0], ["Sparse Widgets", "Dense Widgets"])
    now = _now()
    errors: list[BaseException] = []
    reports: list[object] = []
    barrier = threading.Barrier(2)

    def run(job, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            reports.append(job(runtime, now))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for job in (plan_digests, send_pending):
        threads = [threading.Thread(target=run, args=(job, r)) for r in runtimes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    try:
        assert errors == []
        plans, sends = reports[:2], reports[2:]
        assert sum(p.planned for p in plans) == 24  # type: ignore[attr-defined]
        assert sum(r.sent for r in sends) == 24  # type: ignore[attr-defined]
        assert server.recipients() == addresses
        assert stores[0].delivery_counts() == {"sent": 24}
        assert len(stores[0].deliveries()) == 24
    finally:
        for store in stores:
            store.dispose()


def test_premailer_runs_once_per_run_and_jinja_once_per_shared_body(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = render_module.inline_css
    monkeypatch.setattr(render_module, "inline_css", lambda html: calls.append(html) or real(html))
    for i in range(10):
        _subscribe(runtime, f"reader{i}@example.org", ["widgets", "gadgets"], timezone="UTC")
    _subscribe(runtime, "other@example.org", ["gadgets"])
    feed_titles(runtime, ["Sparse Widgets", "Gadget Garden"])
    report = _deliver(runtime)
    assert report.sent == 11
    # two distinct bodies rendered; premailer ran once, on the template
    assert report.renders == 2 and len(calls) == 1


def test_dry_run_writes_nothing(runtime: Runtime) -> None:
    _subscribe(runtime, "ada@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    plan = plan_digests(runtime, now, dry_run=True)
    assert [(d.email, d.papers) for d in plan.digests] == [("ada@example.org", 1)]
    assert runtime.store.deliveries() == []
    plan_digests(runtime, now)
    sent = send_pending(runtime, now, dry_run=True)
    assert [(p.email, p.papers) for p in sent.pending] == [("ada@example.org", 1)]
    assert runtime.store.delivery_counts() == {"pending": 1}
    assert not runtime.config.outbox_dir.exists()


# The command line ----------------------------------------------------------------------------


def test_cli_digest_preview_and_send(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "digestd.toml"
    config_file.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[http]\nbase_url = "{BASE_URL}"\n'
        '[[topics]]\nslug = "widgets"\nname = "Widgets"\nquery = "widget*"\n'
    )
    (tmp_path / "var").mkdir()
    common = ["--config", str(config_file)]
    assert cli.main(["subscribers", "add", "ada@example.org", "--topic", "widgets",
                     "--cadence", "immediate", *common]) == 0
    capsys.readouterr()

    assert cli.main(["digest", "preview", "ada@example.org", *common]) == 0
    assert "nothing due for ada@example.org" in capsys.readouterr().out
    assert cli.main(["digest", "preview", "nobody@example.org", *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no subscriber" in err

    runtime = Runtime.open(load_config(config_file))
    feed_titles(runtime, ["Sparse Widgets"])
    runtime.close()

    out_file = tmp_path / "preview.eml"
    assert cli.main(["digest", "preview", "ada@example.org", "--format", "eml",
                     "--output", str(out_file), *common]) == 0
    preview = email.message_from_bytes(out_file.read_bytes(), policy=email.policy.default)
    assert preview["Subject"] == "1 new paper: Sparse Widgets"
    assert cli.main(["digest", "preview", "ada@example.org", "--format", "text", *common]) == 0
    assert "Sparse Widgets" in capsys.readouterr().out

    assert cli.main(["digest", "send", "--dry-run", *common]) == 0
    out = capsys.readouterr().out
    assert "would send ada@example.org: 1 papers" in out
    assert not (tmp_path / "var" / "outbox").exists()

    assert cli.main(["digest", "send", *common]) == 0
    assert "1 sent via maildir" in capsys.readouterr().out
    assert len(list(mailbox.Maildir(tmp_path / "var" / "outbox", create=False))) == 1
    assert cli.main(["digest", "send", *common]) == 0
    assert "0 sent" in capsys.readouterr().out


def test_a_stop_request_sends_no_more_and_gives_the_claim_back(runtime: Runtime) -> None:
    """A daemon told to stop finishes the message in hand, not the rest of its claim."""
    for name in ("ada", "bob", "cy", "dee"):
        _subscribe(runtime, f"{name}@example.org")
    feed_titles(runtime, ["Sparse Widgets"])
    now = _now()
    outbox = runtime.config.outbox_dir

    def delivered() -> int:
        return len(list(mailbox.Maildir(outbox, create=False))) if outbox.exists() else 0

    # Stop once two messages are out: asked before each message, as the daemon's flag is.
    first = _deliver(runtime, now, should_stop=lambda: delivered() >= 2)
    assert (first.sent, first.deferred) == (2, 2)
    rows = runtime.store.deliveries()
    assert sorted(r.status for r in rows) == ["pending", "pending", "sent", "sent"]
    # Given back, not left to a lease: the next run (at the same moment) sends the rest.
    second = send_pending(runtime, now)
    assert second.sent == 2
    assert delivered() == 4
    assert sorted({m["To"] for m in mailbox.Maildir(outbox, create=False)}) == [
        f"{name}@example.org" for name in ("ada", "bob", "cy", "dee")
    ]
