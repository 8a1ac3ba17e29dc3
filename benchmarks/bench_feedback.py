"""Benchmark re-ranking digests with per-reader feedback models, for many readers.

Run ``python benchmarks/bench_feedback.py`` (``--subscribers 100000`` is the default;
``--help`` for the options). What is timed, per reader, is what sending a digest adds for a
reader with a model:

1. ``load``: the stored model (int32 indexes + float32 weights, as the database holds them)
   turned back into a ReaderModel;
2. ``score``: the model applied to the TF-IDF rows of the reader's due papers (the rows are
   computed once per distinct selection and shared, as the sender does);
3. ``plan``: the fair per-topic plan with the model's boost (digestd.ranking.fair).

Models are real: ``--distinct`` readers are trained from random ratings (10 up, 10 down) of
seed papers, and the 100 000 readers cycle through them (scoring cost depends on a model's
size, not on whose it is). Training is timed separately on those readers, and reading a model
from SQLite on ``--stored`` of them. Memory is the process's peak RSS, and the stored size is
the sum of the models' bytes. Papers are the 444 seed papers; a digest selects ``--due`` of
them across three topics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digestd.feedback.model import ReaderModel, Vectoriser, paper_text, train
from digestd.parse import decode_dump, parse_dump
from digestd.ranking.fair import plan_sections
from digestd.store import PaperMatch, PaperRecord, SelectedPaper, Store, StoredModel

SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"
TOPICS = ["llm-inference", "reasoning", "agents"]


def seed_papers() -> list[tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        for p in parse_dump(decode_dump(path.read_bytes())).papers:
            seen.setdefault(p.title, (p.title, p.abstract))
    return list(seen.values())


def selection(texts: list[tuple[str, str]], due: int, rng: random.Random) -> list[SelectedPaper]:
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    chosen = rng.sample(range(len(texts)), min(due, len(texts)))
    items = []
    for n, i in enumerate(chosen):
        title, abstract = texts[i]
        record = PaperRecord(
            id=i + 1, key=f"k{i}", slug=f"p{i}", title=title, abstract=abstract,
            authors_count=None, organization_id=None, organization=None, published=None,
            upvotes=rng.choice([None, 0, 3, 12]), links=(), batch_id=1,
            first_seen_at=now - dt.timedelta(seconds=n), updated_at=now,
        )
        topic = TOPICS[n % len(TOPICS)]
        items.append(SelectedPaper(record, (PaperMatch(topic, 1.0, (), (), rng.random()),)))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=200, help="models actually trained")
    parser.add_argument("--stored", type=int, default=2000, help="models read back from SQLite")
    parser.add_argument("--due", type=int, default=300, help="papers due in each digest")
    parser.add_argument("--max-papers", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(1)
    texts = seed_papers()
    vectoriser = Vectoriser([paper_text(t, a) for t, a in texts])
    rows = vectoriser.transform([paper_text(t, a) for t, a in texts])

    started = time.perf_counter()
    blobs = []
    for _ in range(args.distinct):
        picks = rng.sample(range(len(texts)), 20 + 40)
        model = train(rows[picks[:10]], rows[picks[10:20]], rows[picks[20:]])
        blobs.append((*model.to_bytes(), model.intercept, model.ratings))
    train_ms = (time.perf_counter() - started) * 1000 / args.distinct
    sizes = [len(i) + len(w) for i, w, _, _ in blobs]

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        read_ms = _time_reads(store, blobs, min(args.stored, args.subscribers))
        store.dispose()

    selected = selection(texts, args.due, rng)
    vectors = vectoriser.transform([paper_text(s.paper.title, s.paper.abstract) for s in selected])
    load = score = plan = 0.0
    for n in range(args.subscribers):
        indexes, weights, intercept, ratings = blobs[n % len(blobs)]
        t0 = time.perf_counter()
        model = ReaderModel.from_bytes(indexes, weights, intercept, ratings)
        t1 = time.perf_counter()
        scores = model.scores(vectors)
        centre, spread = float(sorted(scores)[len(scores) // 2]), float(scores.std()) or 1.0
        boost = {
            item.paper.id: (float(s) - centre) / spread
            for item, s in zip(selected, scores, strict=True)
        }
        t2 = time.perf_counter()
        plan_sections(selected, TOPICS, args.max_papers, boost=lambda i, b=boost: b[i.paper.id])
        t3 = time.perf_counter()
        load += t1 - t0
        score += t2 - t1
        plan += t3 - t2
    n = args.subscribers
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = load + score + plan
    print(f"{n} readers, {args.due} due papers each, {len(blobs)} distinct trained models")
    print(f"model size: median {sorted(sizes)[len(sizes) // 2] / 1024:.1f} kB, "
          f"max {max(sizes) / 1024:.1f} kB -> {sum(sizes) / len(sizes) * n / 2**30:.2f} GiB "
          f"stored for {n} readers")
    print(f"train (20 ratings + 40 background): {train_ms:.1f} ms per reader")
    print(f"read a model from SQLite: {read_ms:.2f} ms per reader")
    print(f"per reader: load {load / n * 1e3:.3f} ms, score {score / n * 1e3:.3f} ms, "
          f"plan {plan / n * 1e3:.3f} ms, total {total / n * 1e3:.3f} ms")
    print(f"all {n} readers: {total:.1f} s (+ {read_ms * n / 1000:.1f} s reading models)")
    print(f"peak RSS: {peak:.0f} MB")
    return 0


def _time_reads(store: Store, blobs: list[tuple[bytes, bytes, float, int]], count: int) -> float:
    """Store `count` models and read each back once; ms per read."""
    from digestd.store.models import Subscriber

    now = dt.datetime.now(dt.UTC)
    with store.write() as session:
        for n in range(count):
            session.add(
                Subscriber(
                    email=f"r{n}@example.org", email_key=f"r{n}@example.org",
                    link_salt=f"s{n}", status="active", cadence="daily", timezone="UTC",
                )
            )
    with store.read() as session:
        ids = [s.id for s in session.query(Subscriber).order_by(Subscriber.id)]
    for n, subscriber_id in enumerate(ids):
        indexes, weights, intercept, ratings = blobs[n % len(blobs)]
        store.save_model(StoredModel(subscriber_id, indexes, weights, intercept, ratings, now))
    started = time.perf_counter()
    for subscriber_id in ids:
        store.feedback_model(subscriber_id)
    return (time.perf_counter() - started) * 1000 / max(1, len(ids))


if __name__ == "__main__":
    raise SystemExit(main())
