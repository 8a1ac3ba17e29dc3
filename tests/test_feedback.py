"""Feedback: ratings, the per-reader model, the CLI, and what a reader's ratings change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from digestd.config import Config, FeedbackConfig, HttpConfig, PathsConfig
from digestd.delivery.ledger import preview_digest
from digestd.digest.select import ALSO_LIKE
from digestd.feedback import Feedback, parse_rating
from digestd.feedback.model import ReaderModel, Vectoriser, train
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber, find_subscriber

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "samples" / "seeds").glob("*.txt"))
LABELS = REPO / "tests" / "data" / "relevance" / "labels.jsonl"
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _runtime(tmp_path: Path, **feedback: object) -> Runtime:
    config = dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url="https://digest.example.org"),
        feedback=FeedbackConfig(**feedback),  # type: ignore[arg-type]
    )
    return Runtime.open(config, store=Store.open(f"sqlite:///{tmp_path / 'digestd.db'}"))


def test_model_learns_a_direction_and_round_trips_through_bytes() -> None:
    corpus = [
        "kv cache eviction for long context", "speculative decoding with draft models",
        "diffusion models for image synthesis", "video diffusion generation",
        "kv cache quantization", "text to image diffusion",
    ]
    vectoriser = Vectoriser(corpus)
    model = train(
        vectoriser.transform(corpus[0:1] + corpus[4:5]),
        vectoriser.transform(corpus[2:4]),
        vectoriser.transform(corpus[1:2]),
    )
    scores = model.scores(vectoriser.transform(["compressing the kv cache", "image diffusion"]))
    assert scores[0] > 0 > scores[1]
    indexes, weights = model.to_bytes()
    again = ReaderModel.from_bytes(indexes, weights, model.intercept, model.ratings)
    assert list(again.indexes) == list(model.indexes) and len(indexes) == 4 * len(model.indexes)
    assert again.scores(vectoriser.transform(["kv cache"]))[0] == pytest.approx(
        model.scores(vectoriser.transform(["kv cache"]))[0], rel=1e-5
    )


def test_parse_rating() -> None:
    assert [parse_rating(w) for w in ("up", "More", "down", "less", "clear")] == [1, 1, -1, -1, 0]
    with pytest.raises(ValueError):
        parse_rating("sideways")


def test_ratings_are_per_reader_and_retrain_their_model_only(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, min_ratings=2)
    try:
        store = runtime.store
        ingest_paths(store, SEEDS[:2], classify=runtime.classify)
        ada, _ = add_subscriber(store, "ada@example.org", ["llm-inference"])
        bob, _ = add_subscriber(store, "bob@example.org", ["llm-inference"])
        papers = store.papers(limit=3)
        feedback = Feedback(store, runtime.config.feedback)
        assert feedback.rate(ada.id, papers[0].id, 1)
        assert store.feedback_model(ada.id) is None  # one rating: under min_ratings
        assert not feedback.rate(ada.id, papers[0].id, 1)  # the same again changes nothing
        assert feedback.rate(ada.id, papers[1].id, -1)
        assert store.feedback_model(ada.id) is not None
        assert store.feedback_model(bob.id) is None and store.ratings(bob.id) == []
        assert [r.value for r in store.ratings(ada.id)] == [-1, 1]
        assert feedback.rate(ada.id, papers[1].id, 0)  # clear: back under min_ratings
        assert store.feedback_model(ada.id) is None
        assert [r.paper_id for r in store.ratings(ada.id)] == [papers[0].id]
    finally:
        runtime.close()


@pytest.mark.slow  # eight CLI processes, each loading scikit-learn
def test_cli_feedback_by_slug_and_key(tmp_path: Path) -> None:
    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "digestd", *args, "--config", str(config)],
            capture_output=True, text=True, cwd=tmp_path,
        )

    assert cli("ingest", str(SEEDS[0])).returncode == 0
    assert cli("subscribers", "add", "ada@example.org", "--topic", "agents").returncode == 0
    papers = json.loads(cli("papers", "--json", "--limit", "2").stdout)
    up = cli("feedback", "ada@example.org", papers[0]["slug"], "up")
    assert up.returncode == 0, up.stderr
    assert "more like this" in up.stdout
    down = cli("feedback", "ada@example.org", papers[1]["key"], "down", "--list")
    assert down.returncode == 0, down.stderr
    listed = json.loads(down.stdout[down.stdout.index("[") :])
    assert {(r["paper"], r["rating"]) for r in listed} == {
        (papers[0]["slug"], 1), (papers[1]["slug"], -1)
    }
    cleared = cli("feedback", "ada@example.org", papers[0]["slug"], "clear", "--list")
    assert json.loads(cleared.stdout[cleared.stdout.index("[") :])[0]["rating"] == -1
    assert cli("feedback", "ada@example.org", "no-such-paper", "up").returncode == 2
    assert cli("feedback", "ada@example.org", papers[0]["slug"], "sideways").returncode == 2


def _labels() -> dict[str, set[str]]:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines()]
    return {row["key"]: set(row["topics"]) for row in rows}


@pytest.mark.slow  # ingests all five seed dumps and trains twenty times
def test_a_reader_who_rates_ten_up_and_ten_down_gets_more_of_what_they_like(
    tmp_path: Path,
) -> None:
    """The reader follows LLM inference but wants its KV-cache and speculative-decoding papers.

    They rate 10 such papers up and 10 other inference papers down among the first four dumps
    (the labels of tests/data/relevance say which is which); the fifth dump then arrives. The
    measure: the next preview's LLM-inference section, in order, read down to its first 10
    labelled papers (for unlabelled ones nobody knows what the reader wants); the share of
    those that are KV-cache or speculative-decoding papers, with the reader's model against
    the same preview with feedback switched off.
    """
    labels = _labels()

    def wanted(key: str) -> bool:
        return bool(labels.get(key, set()) & {"kv-cache", "speculative-decoding"})

    runtime = _runtime(tmp_path, also_like=2)
    plain = dataclasses.replace(
        runtime.config, feedback=FeedbackConfig(enabled=False)
    )
    try:
        store = runtime.store
        ingest_paths(store, SEEDS[:4], classify=runtime.classify)
        reader, _ = add_subscriber(store, "ada@example.org", ["llm-inference"])
        seen = store.papers(topic="llm-inference")
        ups = [p for p in seen if wanted(p.key)][:10]
        downs = [
            p for p in seen
            if "llm-inference" in labels.get(p.key, set()) and not wanted(p.key)
        ][:10]
        assert len(ups) == len(downs) == 10
        feedback = Feedback(store, runtime.config.feedback)
        for paper in ups:
            feedback.rate(reader.id, paper.id, 1)
        for paper in downs:
            feedback.rate(reader.id, paper.id, -1)
        ingest_paths(store, SEEDS[4:], classify=runtime.classify)
        reader = find_subscriber(store, "ada@example.org") or reader
        after = preview_digest(runtime, reader, NOW)
        runtime.config = plain
        before = preview_digest(runtime, reader, NOW)
    finally:
        runtime.close()
    assert before is not None and after is not None

    def top10(composed) -> list[str]:  # type: ignore[no-untyped-def]
        [section] = [s for s in composed.digest.sections if s.slug == "llm-inference"]
        keys = {p.id: p.key for p in store_papers}
        labelled = [keys[p.id] for p in section.papers if keys[p.id] in labels]
        assert len(labelled) >= 10
        return labelled[:10]

    store_papers = Store.open(f"sqlite:///{tmp_path / 'digestd.db'}").papers()
    share_before = sum(map(wanted, top10(before))) / 10
    share_after = sum(map(wanted, top10(after))) / 10
    print(f"share of wanted papers in the top 10: {share_before:.1f} -> {share_after:.1f}")

    def first10(composed) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
        [section] = [s for s in composed.digest.sections if s.slug == "llm-inference"]
        keys = {p.id: p.key for p in store_papers}
        return [(keys[p.id], p.title) for p in section.papers[:10]]

    for name, composed in (("without", before), ("with", after)):
        rows = first10(composed)
        print(f"{name} model, first 10 (unlabelled as unwanted):",
              sum(wanted(k) for k, _ in rows) / 10)
        for key, title in rows:
            print("   ", "+" if wanted(key) else "?" if key not in labels else "-", title[:70])
    assert share_after >= share_before + 0.2, (share_before, share_after)
    # the model also offers papers from outside the topic, each saying why
    extra = [s for s in after.digest.sections if s.slug == ALSO_LIKE]
    if extra:
        assert all(p.close_to in {u.title for u in ups} for p in extra[0].papers)
        assert "Close to:" in after.text
