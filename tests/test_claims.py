"""Claims read in bulk and the take that rides on mark_sent, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digestd.config import Config, PathsConfig, TopicConfig
from digestd.delivery import plan_digests
from digestd.runtime import Runtime
from digestd.store import Store, StoredModel
from digestd.store.models import Delivery
from digestd.subscribers import add_subscriber

from support import feed_titles

TOPICS = [
    TopicConfig(slug="widgets", name="Widgets", query="widget*"),
    TopicConfig(slug="gadgets", name="Gadgets", query="gadget*"),
]
LEASE = dt.timedelta(seconds=10)


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    config = Config(
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        topics=TOPICS,
    )
    return Runtime.open(config, store=store)


def _planned(runtime: Runtime, count: int) -> list[int]:
    ids = []
    for n in range(count):
        topics = ["gadgets", "widgets"] if n % 2 else ["widgets"]
        record, _ = add_subscriber(
            runtime.store, f"r{n}@example.org", topics, cadence="immediate", name=f"Reader {n}",
            rising=n == 2,  # every field of the record travels with the claim, this one too
        )
        ids.append(record.id)
    feed_titles(runtime, ["Sparse Widgets", "Gadget Widgets"])
    plan_digests(runtime, dt.datetime.now(dt.UTC))
    return ids


def test_a_claim_carries_the_same_subscriber_records_as_one_by_one(runtime: Runtime) -> None:
    store = runtime.store
    ids = _planned(runtime, 5)
    now = dt.datetime.now(dt.UTC)
    store.record_bounce(ids[1], error="550 no such user", pause_after=5, now=now)
    store.record_bounce(ids[3], error="452 mailbox full", pause_after=5, now=now,
                        severity="soft")
    claimed = store.claim_deliveries(now, lease=LEASE, limit=10, claimer="run")
    assert [c.subscriber.id for c in claimed] == ids
    for item in claimed:
        assert item.subscriber == store.subscriber_by_id(item.subscriber.id)
        assert item.subscriber.token  # the link key travelled with the claim
        assert item.delivery.status == "sending"
        assert item.delivery.claimed_until == now + LEASE
    assert claimed[1].subscriber.bounce_count == 1
    assert claimed[1].subscriber.topics == ("widgets", "gadgets")  # configuration order
    assert claimed[2].subscriber.rising


def test_mark_sent_takes_the_next_row_only_while_the_claim_is_ours(runtime: Runtime) -> None:
    store = runtime.store
    _planned(runtime, 3)
    now = dt.datetime.now(dt.UTC)
    first, second, third = store.claim_deliveries(now, lease=LEASE, limit=10, claimer="run")
    later = now + dt.timedelta(minutes=5)
    assert store.take_claimed(first.delivery.id, claimer="run", until=later)
    took = store.mark_sent(
        first.delivery.id, message_id="<a@x>", now=now,
        take_next=(second.delivery.id, "run", later),
    )
    assert took is True
    rows = {d.id: d for d in store.deliveries()}
    assert rows[first.delivery.id].status == "sent"
    assert rows[first.delivery.id].attempts == 1
    assert rows[second.delivery.id].claimed_until == later
    # someone else's claimer name takes nothing, and the row it asked for keeps its lease
    took = store.mark_sent(
        second.delivery.id, message_id="<b@x>", now=now,
        take_next=(third.delivery.id, "other", later),
    )
    assert took is False
    rows = {d.id: d for d in store.deliveries()}
    assert rows[second.delivery.id].status == "sent"
    assert rows[third.delivery.id].claimed_until == now + LEASE
    assert store.mark_sent(third.delivery.id, message_id="<c@x>", now=now) is None
    assert store.delivery_counts() == {"sent": 3}


def test_mark_sent_clears_the_bounce_count_only_when_asked(runtime: Runtime) -> None:
    store = runtime.store
    ids = _planned(runtime, 2)
    now = dt.datetime.now(dt.UTC)
    for subscriber_id in ids:
        store.record_bounce(subscriber_id, error="550 no such user", pause_after=5, now=now)
    first, second = store.claim_deliveries(now, lease=LEASE, limit=10, claimer="run")
    store.mark_sent(first.delivery.id, message_id="<a@x>", now=now, clear_bounces=False)
    store.mark_sent(second.delivery.id, message_id="<b@x>", now=now)
    counts = [store.subscriber_by_id(i).bounce_count for i in ids]  # type: ignore[union-attr]
    assert counts == [1, 0]
    assert store.delivery_counts() == {"sent": 2}


def test_the_held_connection_goes_back_to_the_pool_taking_transactions(
    runtime: Runtime,
) -> None:
    """On PostgreSQL the ledger's connection is put in autocommit while a run holds it; the
    sessions that get it next must still commit or roll back as a whole."""
    store = runtime.store
    _planned(runtime, 2)
    now = dt.datetime.now(dt.UTC)
    first, second = store.claim_deliveries(now, lease=LEASE, limit=10, claimer="run")
    with store.holding_ledger():
        store.take_claimed(first.delivery.id, claimer="run", until=now + LEASE)
        store.mark_sent(first.delivery.id, message_id="<a@x>", now=now)
    store.mark_sent(second.delivery.id, message_id="<b@x>", now=now)  # one from the pool
    pooled = [store.engine.raw_connection() for _ in range(store.engine.pool.checkedin())]
    try:
        assert pooled
        for connection in pooled:
            assert not getattr(connection.driver_connection, "autocommit", False)
    finally:
        for connection in pooled:
            connection.close()
    with pytest.raises(RuntimeError), store.write() as session:
        session.execute(Delivery.__table__.update().values(status="pending"))
        raise RuntimeError("half-way")
    assert store.delivery_counts() == {"sent": 2}


def test_a_claim_says_which_subscribers_have_a_feedback_model(runtime: Runtime) -> None:
    store = runtime.store
    ids = _planned(runtime, 3)
    store.save_model(StoredModel(ids[1], b"\0", b"\0", 0.1, 12, dt.datetime.now(dt.UTC)))
    claimed = store.claim_deliveries(dt.datetime.now(dt.UTC), lease=LEASE, limit=10)
    assert [(c.subscriber.id, c.has_model) for c in claimed] == [
        (ids[0], False), (ids[1], True), (ids[2], False),
    ]
