"""Planning in chunks: one transaction per chunk, exactly once, races left to the other planner."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from digestd.config import Config, PathsConfig, TopicConfig
from digestd.delivery import ledger, plan_digests
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store.plan_rows import PlannedRow
from digestd.subscribers import add_subscriber

from support import feed_titles

TOPICS = [TopicConfig(slug="widgets", name="Widgets", query="widget*")]


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    config = Config(
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        topics=TOPICS,
    )
    return Runtime.open(config, store=store)


def test_chunks_plan_every_subscriber_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "PLAN_CHUNK", 3)  # several chunks and a partial last one
    ids = [
        add_subscriber(runtime.store, f"r{n}@example.org", ["widgets"], cadence="immediate")[0].id
        for n in range(8)
    ]
    feed_titles(runtime, ["Sparse Widgets", "Dense Widgets"])
    now = dt.datetime.now(dt.UTC)
    report = plan_digests(runtime, now)
    assert (report.planned, report.raced, report.errors) == (8, 0, 0)
    rows = runtime.store.deliveries()
    assert sorted(r.subscriber_id for r in rows) == sorted(ids)
    assert {len(r.paper_ids) for r in rows} == {2}
    assert plan_digests(runtime, now).planned == 0  # advanced past those papers


def test_a_subscriber_planned_elsewhere_is_left_out(runtime: Runtime) -> None:
    ada, _ = add_subscriber(runtime.store, "ada@example.org", ["widgets"], cadence="immediate")
    bob, _ = add_subscriber(runtime.store, "bob@example.org", ["widgets"], cadence="immediate")
    feed_titles(runtime, ["Sparse Widgets"])
    latest = runtime.store.latest_batch_id()
    now = dt.datetime.now(dt.UTC)
    # another process planned ada first: her since_batch_id already moved on
    assert runtime.store.plan_deliveries(
        [PlannedRow(ada.id, 0, latest, [1], None)], now=now
    ) != {}
    planned = runtime.store.plan_deliveries(
        [PlannedRow(ada.id, 0, latest, [1], None), PlannedRow(bob.id, 0, latest, [1], now)],
        now=now,
    )
    assert list(planned) == [bob.id]
    assert {r.subscriber_id for r in runtime.store.deliveries()} == {ada.id, bob.id}
    assert len(runtime.store.deliveries()) == 2
    bob_now = runtime.store.subscriber_by_id(bob.id)
    assert bob_now is not None and bob_now.since_batch_id == latest
    assert bob_now.last_slot_at is not None


def test_set_wise_reads_agree_with_the_per_subscriber_ones(
    store: Store, tmp_path: Path, seed_files: list[Path]
) -> None:
    import random

    from digestd.ingest import ingest_paths
    from digestd.topics import STARTER_TOPICS

    runtime = Runtime.open(
        Config(paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var")),
        store=store,
    )
    ingest_paths(store, seed_files[:3], classify=runtime.classify)
    middle = store.latest_batch_id()
    ingest_paths(store, seed_files[3:], classify=runtime.classify)
    latest = store.latest_batch_id()
    rng = random.Random(5)
    slugs = [t.slug for t in STARTER_TOPICS]
    for number in range(30):
        add_subscriber(store, f"r{number}@example.org", rng.sample(slugs, rng.randint(1, 4)),
                       cadence="immediate")
    planned = store.plan_subscribers()
    full = store.subscribers(status="active")
    assert [(p.id, p.email, p.topics, p.since_batch_id, p.created_at) for p in planned] == [
        (s.id, s.email, s.topics, s.since_batch_id, s.created_at) for s in full
    ]
    compared = 0
    for subscriber in full:
        for since in (0, middle):
            moved = dataclasses.replace(subscriber, since_batch_id=since)
            expected = [item.paper.id for item in store.due_papers(moved, through_batch=latest)]
            assert store.due_paper_ids(
                subscriber.topics, since_batch=since, through_batch=latest
            ) == expected
            compared += len(expected)
    assert compared > 500
