"""The labelled relevance fixture and benchmarks/relevance.py over it."""

from __future__ import annotations

import sys
from pathlib import Path

from digestd.topics import STARTER_TOPICS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import relevance


def test_every_label_is_a_seed_paper_and_every_starter_topic_has_positives() -> None:
    labelled = relevance.load_labels()
    assert len(labelled) >= 150
    assert len({p.key for p in labelled}) == len(labelled)
    slugs = {t.slug for t in STARTER_TOPICS}
    for paper in labelled:
        assert paper.topics <= slugs and paper.abstract
    for slug in slugs:
        assert sum(slug in p.topics for p in labelled) >= 5, slug


def test_counts_are_what_precision_and_recall_are_made_of() -> None:
    counts = relevance.Counts(tp=6, fp=2, fn=4)
    assert (counts.precision, counts.recall) == (0.75, 0.6)
    assert round(counts.f1, 4) == round(2 * 0.75 * 0.6 / 1.35, 4)
    assert relevance.Counts().f1 == 0.0


def test_shipped_topics_keep_their_measured_quality() -> None:
    """A guard against a starter-topic edit that quietly makes them worse (README figures)."""
    result = relevance.evaluate(list(STARTER_TOPICS), relevance.load_labels())
    assert result["all"]["micro"].f1 >= 0.85
    for slug, counts in result["all"].items():
        assert counts.f1 >= 0.7, (slug, counts)
    before = relevance.evaluate(
        relevance.load_topics(relevance.ROOT / "benchmarks/data/starter_topics_v1.toml"),
        relevance.load_labels(),
    )
    assert before["all"]["micro"].f1 < result["all"]["micro"].f1
