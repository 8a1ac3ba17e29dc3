"""Catch-up after downtime, against the database (SQLite, and PostgreSQL when configured).

Driven through the functions the daemon's dispatch job calls (`plan_digests`, `send_pending`)
with an explicit `now`: "the daemon was down over 08:00" means nothing ran at 08:00, and "a
restart" means a new process (a new store and runtime) on the same database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import mailbox
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, TopicConfig
from digestd.delivery import plan_digests, send_pending
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store import subscribers as subscriber_store
from digestd.subscribers import add_subscriber

from support import feed_titles

ZONE = "Europe/Berlin"
TOPICS = (
    TopicConfig("widgets", "Widgets", "widget*"),
    TopicConfig("gadgets", "Gadgets", "gadget*"),
)


def _config(tmp_path: Path) -> Config:
    return dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://digest.example.org"),
        mail=MailConfig(transport="maildir", from_address="Digests <digests@example.org>"),
        topics=TOPICS,
    )


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Iterator[Runtime]:
    yield Runtime.open(_config(tmp_path), store=store)


def _restart(runtime: Runtime, database_url: str) -> Runtime:
    """A new process on the same database: nothing carried over in memory."""
    return Runtime.open(runtime.config, store=Store.open(database_url))


def _dispatch(runtime: Runtime, now: dt.datetime) -> tuple[int, int]:
    """What the daemon's dispatch job does at `now`: (digests planned, messages sent)."""
    planned = plan_digests(runtime, now)
    sent = send_pending(runtime, now)
    assert (sent.failed, sent.retrying, planned.errors) == (0, 0, 0)
    return planned.planned, sent.sent


def _outbox(runtime: Runtime) -> list[EmailMessage]:
    if not runtime.config.outbox_dir.exists():
        return []
    box = mailbox.Maildir(runtime.config.outbox_dir, factory=None, create=False)
    messages = [
        email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in box
    ]
    return sorted(messages, key=lambda m: m["Date"].datetime)  # type: ignore[misc]


def _eight_local(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(8), tzinfo=ZoneInfo(ZONE)).astimezone(dt.UTC)


def _first_day(subscribed: dt.datetime) -> dt.date:
    """The local day of the first 08:00 after subscribing (today's, if it is still to come)."""
    day = subscribed.astimezone(ZoneInfo(ZONE)).date()
    return day if _eight_local(day) > subscribed else day + dt.timedelta(days=1)


def test_a_slot_missed_while_down_is_sent_once_on_the_next_start(
    runtime: Runtime, database_url: str
) -> None:
    daily, _ = add_subscriber(
        runtime.store, "daily@example.org", ["widgets"], cadence="daily", timezone=ZONE
    )
    quiet, _ = add_subscriber(
        runtime.store, "quiet@example.org", ["gadgets"], cadence="daily", timezone=ZONE
    )
    feed_titles(runtime, ["Sparse Widgets", "Widget Routing"])

    first_day = _first_day(daily.created_at)
    slot = _eight_local(first_day)
    next_day_slot = _eight_local(first_day + dt.timedelta(days=1))

    # Before the slot nothing is due, papers or not.
    assert _dispatch(runtime, slot - dt.timedelta(minutes=1)) == (0, 0)

    # Down from before 08:00 until 13:00: nothing ran at the slot. The first run after it
    # sends one digest with both papers.
    assert _dispatch(runtime, slot + dt.timedelta(hours=5)) == (1, 1)
    (message,) = _outbox(runtime)
    assert message["To"].addresses[0].addr_spec == "daily@example.org"
    assert message["Subject"].startswith("2 new papers: ")

    # The same run again, and a restart at the same moment and later that day: nothing.
    assert _dispatch(runtime, slot + dt.timedelta(hours=5)) == (0, 0)
    runtime.close()
    runtime = _restart(runtime, database_url)
    assert _dispatch(runtime, slot + dt.timedelta(hours=5)) == (0, 0)
    assert _dispatch(runtime, next_day_slot - dt.timedelta(seconds=1)) == (0, 0)
    assert len(_outbox(runtime)) == 1

    # New papers; the next day's slot brings exactly one more digest, with only those.
    feed_titles(runtime, ["Widgets Revisited"])
    assert _dispatch(runtime, next_day_slot - dt.timedelta(seconds=1)) == (0, 0)
    assert _dispatch(runtime, next_day_slot) == (1, 1)
    assert _dispatch(runtime, next_day_slot + dt.timedelta(minutes=1)) == (0, 0)
    first, second = _outbox(runtime)
    assert second["Subject"] == "1 new paper: Widgets Revisited"

    # The subscriber whose topics matched nothing got no e-mail, and their slots were
    # recorded as handled, so a later run does not look again.
    recipients = {m["To"].addresses[0].addr_spec for m in (first, second)}
    assert recipients == {"daily@example.org"}
    after = runtime.store.subscriber_by_id(quiet.id)
    assert after is not None and after.last_slot_at == next_day_slot
    assert runtime.store.deliveries(subscriber_id=quiet.id) == []
    runtime.close()


def test_downtime_over_several_slots_sends_one_digest(runtime: Runtime, database_url: str) -> None:
    daily, _ = add_subscriber(
        runtime.store, "daily@example.org", ["widgets"], cadence="daily", timezone=ZONE
    )
    first_day = _first_day(daily.created_at)
    feed_titles(runtime, ["Sparse Widgets"])
    feed_titles(runtime, ["Widget Routing"])

    # Down for three days' slots; the first run afterwards sends one digest, not three.
    back = _eight_local(first_day + dt.timedelta(days=2)) + dt.timedelta(hours=2)
    assert _dispatch(runtime, back) == (1, 1)
    (message,) = _outbox(runtime)
    assert message["Subject"].startswith("2 new papers: ")
    runtime.close()

    runtime = _restart(runtime, database_url)
    assert _dispatch(runtime, back + dt.timedelta(hours=1)) == (0, 0)
    (row,) = runtime.store.deliveries(subscriber_id=daily.id)
    assert row.status == "sent"
    after = runtime.store.subscriber_by_id(daily.id)
    assert after is not None
    assert after.last_slot_at == _eight_local(first_day + dt.timedelta(days=2))
    runtime.close()


def test_a_planned_digest_interrupted_before_sending_is_sent_after_restart(
    runtime: Runtime, database_url: str
) -> None:
    """Down between planning and sending: the row waits in the ledger and goes out once."""
    daily, _ = add_subscriber(
        runtime.store, "daily@example.org", ["widgets"], cadence="daily", timezone=ZONE
    )
    feed_titles(runtime, ["Sparse Widgets"])
    slot = _eight_local(_first_day(daily.created_at))
    assert plan_digests(runtime, slot).planned == 1  # ... and the process died here
    runtime.close()

    runtime = _restart(runtime, database_url)
    assert _dispatch(runtime, slot + dt.timedelta(minutes=3)) == (0, 1)
    assert _dispatch(runtime, slot + dt.timedelta(minutes=4)) == (0, 0)
    assert len(_outbox(runtime)) == 1
    runtime.close()


@pytest.mark.parametrize(
    ("subscribed_local", "first_slot"),
    [
        # before that day's 08:00: the first slot is the same day
        (dt.datetime(2026, 3, 28, 3, 0), dt.datetime(2026, 3, 28, 7, 0, tzinfo=dt.UTC)),
        # after it, on the eve of the spring change: 08:00 CEST the next day is 06:00 UTC
        (dt.datetime(2026, 3, 28, 14, 0), dt.datetime(2026, 3, 29, 6, 0, tzinfo=dt.UTC)),
        # late on the eve of the autumn change: 08:00 CET is 07:00 UTC again
        (dt.datetime(2026, 10, 24, 23, 30), dt.datetime(2026, 10, 25, 7, 0, tzinfo=dt.UTC)),
    ],
)
def test_the_first_slot_after_subscribing_is_caught_up_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, subscribed_local: dt.datetime,
    first_slot: dt.datetime,
) -> None:
    subscribed = subscribed_local.replace(tzinfo=ZoneInfo(ZONE)).astimezone(dt.UTC)
    with monkeypatch.context() as clock:
        # the store stamps created_at with its own clock; subscribe at a chosen moment
        clock.setattr(subscriber_store, "utcnow", lambda: subscribed)
        daily, _ = add_subscriber(
            runtime.store, "daily@example.org", ["widgets"], cadence="daily", timezone=ZONE
        )
    assert daily.created_at == subscribed
    feed_titles(runtime, ["Sparse Widgets"])
    assert _dispatch(runtime, first_slot - dt.timedelta(seconds=1)) == (0, 0)
    assert _dispatch(runtime, first_slot + dt.timedelta(hours=5)) == (1, 1)  # down at 08:00
    assert _dispatch(runtime, first_slot + dt.timedelta(hours=5)) == (0, 0)
    after = runtime.store.subscriber_by_id(daily.id)
    assert after is not None and after.last_slot_at == first_slot
