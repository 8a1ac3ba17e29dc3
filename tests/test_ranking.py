"""Fair ranking: per-topic percentiles, a share of the digest for every followed topic."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig
from digestd.delivery.ledger import preview_digest
from digestd.ingest import IngestSettings, ingest_paths
from digestd.ranking import Percentiles, TopicNormaliser
from digestd.ranking.fair import plan_sections
from digestd.runtime import Runtime
from digestd.store import PaperMatch, PaperRecord, SelectedPaper, Store
from digestd.subscribers import add_subscriber

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def test_percentile_is_the_mid_rank_among_the_topics_scores() -> None:
    p = Percentiles([1, 1, 2, 3, 7])
    assert p(7) == pytest.approx(0.9)  # 4 below, 1 equal: (4 + 5) / 10
    assert p(1) == pytest.approx(0.2)  # ties count half: (0 + 2) / 10
    assert p(100) == 1.0 and p(0) == 0.0
    assert Percentiles([])(3) == 0.5


def test_a_long_query_and_a_short_one_become_comparable() -> None:
    # reasoning's raw scores run high, training's low; each one's best is near the top
    normalise = TopicNormaliser({"reasoning": [5, 6, 7, 7, 9, 12, 15], "training": [1, 1, 1, 2, 3]})
    assert normalise("training", 3) > normalise("reasoning", 9)
    assert normalise("unknown", 3) == 0.5


def _paper(paper_id: int, upvotes: int | None = None) -> PaperRecord:
    return PaperRecord(
        id=paper_id, key=f"k{paper_id}", slug=f"p{paper_id}", title=f"Paper {paper_id}",
        abstract="", authors_count=None, organization_id=None, organization=None,
        published=None, upvotes=upvotes, links=(), batch_id=1,
        first_seen_at=NOW - dt.timedelta(minutes=paper_id), updated_at=NOW,
    )


def _item(paper_id: int, *matches: tuple[str, float], upvotes: int | None = None) -> SelectedPaper:
    return SelectedPaper(
        _paper(paper_id, upvotes),
        tuple(PaperMatch(slug, norm * 10, (), (), norm) for slug, norm in matches),
    )


def test_every_topic_gets_its_share_best_first() -> None:
    # "a" has 20 papers that all beat "b"'s and "c"'s; "c" has only 2
    selected = [_item(i, ("a", 0.99 - i / 100)) for i in range(20)]
    selected += [_item(100 + i, ("b", 0.5 - i / 100)) for i in range(10)]
    selected += [_item(200 + i, ("c", 0.4 - i / 100)) for i in range(2)]
    sections = plan_sections(selected, ["a", "b", "c"], 12)
    sizes = {s.slug: len(s.papers) for s in sections}
    assert sizes == {"a": 5, "b": 5, "c": 2}  # c's unused slots go to the others
    for section in sections:
        norms = [item.matches[0].normalised for item in section.papers]
        assert norms == sorted(norms, reverse=True)
    assert [s.slug for s in sections] == ["a", "b", "c"]  # in the order of their best paper
    assert {s.slug: s.more for s in sections} == {"a": 15, "b": 5, "c": 0}


def test_a_paper_in_two_topics_is_shown_once_and_counted_once() -> None:
    both = _item(1, ("a", 0.9), ("b", 0.95))
    selected = [both, _item(2, ("a", 0.8)), _item(3, ("b", 0.7)), _item(4, ("b", 0.1))]
    sections = plan_sections(selected, ["a", "b"], 3)
    shown = [item.paper.id for s in sections for item in s.papers]
    assert sorted(shown) == [1, 2, 3] and len(shown) == len(set(shown))
    # "a" picked first (configuration order) and took its best, the shared paper
    assert [item.paper.id for item in sections[0].papers] == [1, 2]
    assert sum(s.more for s in sections) == 1


def test_upvotes_only_break_ties() -> None:
    selected = [
        _item(1, ("a", 0.5), upvotes=500),
        _item(2, ("a", 0.9), upvotes=0),
        _item(3, ("a", 0.5), upvotes=7),
    ]
    [section] = plan_sections(selected, ["a"], 3)
    assert [item.paper.id for item in section.papers] == [2, 1, 3]


def test_a_boost_reorders_within_a_topic_but_keeps_the_shares() -> None:
    selected = [_item(i, ("a", 0.9 - i / 100)) for i in range(5)]
    selected += [_item(10 + i, ("b", 0.5)) for i in range(5)]
    sections = plan_sections(
        selected, ["a", "b"], 4, boost=lambda item: 1.0 if item.paper.id == 4 else 0.0
    )
    by_slug = {s.slug: [item.paper.id for item in s.papers] for s in sections}
    assert by_slug["a"] == [4, 0] and len(by_slug["b"]) == 2


def test_llm_inference_reasoning_agents_reader_sees_all_three(tmp_path: Path, seed_files) -> None:
    """The issue's reader over the five seed dumps: 30 papers, at least 5 of each topic."""
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://digest.example.org"),
        mail=MailConfig(transport="maildir", from_address="Digests <digests@example.org>"),
    )
    store = Store.open(f"sqlite:///{tmp_path / 'digestd.db'}")
    runtime = Runtime.open(config, store=store)
    try:
        topics = ["llm-inference", "reasoning", "agents"]
        subscriber, _ = add_subscriber(store, "ada@example.org", topics)
        ingest_paths(store, list(seed_files), IngestSettings(), classify=runtime.classify)
        due = store.due_papers(subscriber, through_batch=store.latest_batch_id())
        composed = preview_digest(runtime, subscriber, NOW)
    finally:
        runtime.close()
    assert composed is not None
    digest = composed.digest
    assert len(due) > 100 and digest.total == len(due)
    assert digest.shown == 30
    sizes = {s.slug: len(s.papers) for s in digest.sections}
    assert set(sizes) == {"llm-inference", "reasoning", "agents"}
    assert min(sizes.values()) >= 5, sizes
    normalised = {
        item.paper.id: {m.slug: m.normalised for m in item.matches} for item in due
    }
    for section in digest.sections:
        norms = [normalised[paper.id][section.slug] for paper in section.papers]
        assert norms == sorted(norms, reverse=True), section.slug
    assert sum(s.more for s in digest.sections) == digest.more
    text = composed.text
    for section in digest.sections:
        if section.more:
            # the rest of the section is on this reader's web view of the digest
            assert (
                f"… and {section.more} more on {section.name}:\n"
                f"  https://digest.example.org/digests/{subscriber.token}/"
                f"{subscriber.since_batch_id}-{store.latest_batch_id()}"
                f"?topic={section.slug}#topic-{section.slug}"
            ) in text
