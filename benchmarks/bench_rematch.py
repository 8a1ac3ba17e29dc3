"""Matching with the full-text index, next to matching every paper, on 50,000 stored papers.

    .venv/bin/python benchmarks/bench_rematch.py [--papers 50000] [--database URL]

Stores ``--papers`` synthetic papers (bench_match's generator: seed titles and sentences) in
a fresh SQLite database (or the PostgreSQL database named by --database), with the 20 topics
of bench_match, then measures CPU and wall time of:

- bulk matching, every paper against every topic: the previous loop (each paper tokenised and
  matched against all 20 topics, the garbage collector on) and `rematch_topics` of every topic,
  first cutting each paper's words (and keeping them), then again from the kept words;
- building the full-text index of every paper (done once, by the first narrowed re-match);
- re-matching after one topic's query changed (``--changed``, a selective and a broad topic by
  default): the previous way (every paper matched against every topic, one topic's matches
  kept) and `rematch_topics` with only that topic, on its candidate papers.

Both ways' match sets and scores are compared row by row; the script stops if they differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_match import DEFAULT_SEEDS, EXTRA_TOPICS, read_seeds, synthetic_papers

from digestd.store import Store
from digestd.store.models import Batch, Dump, Paper, PaperTopic, Topic
from digestd.topics import STARTER_TOPICS, compile_query, compile_topics, match_paper


def fill(store: Store, papers: list[tuple[str, str]]) -> None:
    with store.write() as session:
        dump = Dump(path="bench", status="ingested")
        session.add(dump)
        session.flush()
        batch = Batch(dump_id=dump.id, new_count=len(papers))
        session.add(batch)
        session.flush()
        session.execute(
            insert(Paper),
            [
                {"key": f"k{i}", "title_key": f"k{i}", "slug": f"s{i}", "title": t, "abstract": a,
                 "links": [],
                 "batch_id": batch.id}
                for i, (t, a) in enumerate(papers)
            ],
        )


def rows(store: Store, slugs: set[str] | None = None) -> list[tuple[object, ...]]:
    """Every stored match, with its highlights as shown: re-matching stores none since they
    are made when a match is read (paper_matches); older code stored them."""
    with store.read() as session:
        query = select(
            PaperTopic.paper_id, Topic.slug, PaperTopic.score, PaperTopic.terms,
            PaperTopic.highlights,
        ).join(Topic, Topic.id == PaperTopic.topic_id)
        if slugs is not None:
            query = query.where(Topic.slug.in_(slugs))
        found = session.execute(query).all()
    missing = {row.paper_id for row in found if row.highlights is None}
    shown = store.paper_matches(missing) if missing else {}
    made = {(paper_id, m.slug): m.highlights for paper_id, matches in shown.items()
            for m in matches}
    return sorted(
        (p, s, repr(score), tuple(t), tuple(made[p, s] if h is None else h))
        for p, s, score, t, h in found
    )


def timed(label: str, work):  # type: ignore[no-untyped-def]
    started, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{label:<58} {wall:7.2f} s  (CPU {cpu:6.2f} s)")
    return cpu


def main() -> None:
    # here, not at the top: rematch_against's children import fill and rows from this module
    # with the code of commits that had none of these
    from digestd.store.terms import candidate_ids, refresh_terms
    from digestd.topics.candidates import condition_for, score_bound
    from digestd.topics.classify import Classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--changed", nargs="+", default=["recommendation", "reasoning"],
                        help="topics whose query changes, one after the other")
    args = parser.parse_args()

    titles, sentences = read_seeds(DEFAULT_SEEDS)
    papers = synthetic_papers(args.papers, titles, sentences, 20240527)
    definitions = list(STARTER_TOPICS + EXTRA_TOPICS)
    topics = compile_topics(definitions)
    slugs = [t.slug for t in topics]

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(args.database or f"sqlite:///{tmp}/bench.db")
        store.sync_topics([t.definition for t in topics])
        fill(store, papers)
        print(f"{args.papers} papers, {len(topics)} topics, {store.engine.dialect.name}")

        def old_classify(title: str, abstract: str):  # type: ignore[no-untyped-def]
            return match_paper(title, abstract, topics)

        def previous_bulk() -> None:  # the loop rematch_topics ran before, collector on
            for title, abstract in papers:
                match_paper(title, abstract, topics)

        old_bulk = timed("bulk: every paper x every topic (previous, no writes)", previous_bulk)
        new_bulk = timed("bulk: rematch_topics of all topics (collector paused)",
                         lambda: store.rematch_topics(slugs, Classifier(topics)))
        reference = rows(store)
        print(f"  {len(reference)} matches; {old_bulk / new_bulk:.1f}x less CPU")
        kept = timed("bulk: rematch_topics again, each paper's words kept",
                     lambda: store.rematch_topics(slugs, Classifier(topics)))
        if rows(store) != reference:
            raise SystemExit("matching from the kept words differs")
        print(f"  identical; {old_bulk / kept:.1f}x less CPU than the previous loop")

        def build() -> None:
            with store.write() as session:
                refresh_terms(session)

        timed("index of every paper built (once; later only new papers)", build)
        for changed in args.changed:
            old_one = timed(f"'{changed}' changed: every paper x every topic (previous)",
                            lambda c=changed: store.rematch_topics([c], old_classify))
            if rows(store) != reference:
                raise SystemExit("matching every paper changed the matches")
            new_one = timed(f"'{changed}' changed: that topic on its candidates",
                            lambda c=changed: store.rematch_topics([c],
                                                         Classifier(topics).subset([c])))
            if rows(store) != reference:
                raise SystemExit("narrowed re-matching differs from matching every paper")
            with store.read() as session:
                definition = next(d for d in definitions if d.slug == changed)
                query = compile_query(definition.query)
                condition = condition_for(query)
                found = candidate_ids(session, condition) if condition else set()
                indexed = len(found) if condition else len(papers)
                # as the store narrows it (store.matching._reaching)
                if condition and definition.min_score > 0:
                    bound = score_bound(query)
                    most = dict.fromkeys(found, bound.fixed)
                    for part, points in bound.parts:
                        for paper_id in candidate_ids(session, part) & found:
                            most[paper_id] += points
                    found = {p for p, m in most.items() if m >= definition.min_score}
                count = len(found) if condition else len(papers)
                matched = sum(1 for row in reference if row[1] == changed)
            print(f"  identical; {indexed} papers with its words, {count} that could reach its "
                  f"min_score, {matched} matches; "
                  f"{old_one / new_one:.1f}x less CPU")
        with store.read() as session:
            if store.engine.dialect.name == "sqlite":
                size = session.scalar(text(
                    "SELECT sum(length(block)) FROM paper_terms_data"))
                print(f"index size: {size / 2**20:.1f} MiB")
            kept = session.scalar(text("SELECT sum(length(words)) FROM paper_terms_words"))
            print(f"kept words: {(kept or 0) / 2**20:.1f} MiB (characters)")
        store.dispose()


if __name__ == "__main__":
    main()
