"""Matching narrowed by the full-text index gives exactly the matches of matching every paper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from digestd.config import Config, PathsConfig, TopicConfig
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store, matching
from digestd.store import topics as topics_store
from digestd.store.models import Paper, PaperTopic, Topic
from digestd.store.terms import refresh_terms, state_table, words_table
from digestd.topics import STARTER_TOPICS
from digestd.topics.match import TopicMatch, paper_document
from digestd.topics.packed import pack

# The starter topics plus queries that exercise what narrowing must leave alone.
EXTRA = [
    TopicConfig(slug="tricky", name="Tricky", query='study OR "don\'t" OR naïve'),
    TopicConfig(slug="negated", name="Negated", query="model NOT (video OR image*)"),
    TopicConfig(slug="titles", name="Titles", query='title:agent* OR abstract:"kv cache"'),
    # re-matching reads a paper's other fields only for topics that name them
    TopicConfig(slug="orgs", name="Orgs", query='org:"peking university" OR org:alibaba*'),
]


def config_for(tmp_path: Path) -> Config:
    topics = [
        TopicConfig(slug=t.slug, name=t.name, description=t.description, query=t.query,
                    min_score=t.min_score)
        for t in STARTER_TOPICS
    ] + EXTRA
    return Config(
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        topics=topics,
    )


def ingested(database_url: str, seed_files: list[Path], tmp_path: Path) -> Runtime:
    """A runtime of config_for's topics over a store holding the seed papers, each matched
    directly, paper by paper, as at ingest."""
    runtime = Runtime.open(config_for(tmp_path), store=Store.open(database_url))
    ingest_paths(runtime.store, seed_files, classify=runtime.classify)
    return runtime


def snapshot(store: Store) -> list[tuple[object, ...]]:
    """Every match with its highlights as shown (re-matching stores none, see
    digestd.store.highlights)."""
    with store.read() as session:
        rows = session.execute(
            select(Paper.id, Paper.key, Topic.slug, PaperTopic.score, PaperTopic.terms)
            .join(Paper, Paper.id == PaperTopic.paper_id)
            .join(Topic, Topic.id == PaperTopic.topic_id)
        ).all()
    shown = store.paper_matches({row.id for row in rows})
    highlights = {(paper_id, m.slug): m.highlights for paper_id, found in shown.items()
                  for m in found}
    return sorted((key, slug, repr(score), tuple(terms), highlights[paper_id, slug])
                  for paper_id, key, slug, score, terms in rows)


def test_narrowed_rematch_matches_exactly(
    database_url: str, seed_files: list[Path], tmp_path: Path
) -> None:
    # a small dump is matched directly, paper by paper: the reference
    runtime = ingested(database_url, seed_files, tmp_path)
    store = runtime.store
    direct = snapshot(store)
    assert len({row[1] for row in direct}) >= 12
    assert any(row[1] == "orgs" for row in direct)

    # each topic's query "changed" in turn: only it is matched again, narrowed by the index
    for slug in [t.slug for t in runtime.topics]:
        store.rematch_topics([slug], runtime.classify.subset([slug]))
        assert snapshot(store) == direct, slug

    # a few at once
    few = ["tricky", "negated", "titles", "orgs"]
    assert store.rematch_topics(few, runtime.classify.subset(few)) > 0
    assert snapshot(store) == direct
    runtime.close()


def test_a_changed_paper_is_indexed_again(database_url: str, seed_files: list[Path],
                                          tmp_path: Path) -> None:
    runtime = Runtime.open(config_for(tmp_path), store=Store.open(database_url))
    store = runtime.store
    ingest_paths(store, seed_files[:1], classify=runtime.classify)
    with store.write() as session:
        assert refresh_terms(session) > 0
        assert refresh_terms(session) == 0  # nothing changed since
        first = session.scalars(select(Paper.id).order_by(Paper.id)).first()
        # the abstract rewritten, even by a writer that leaves updated_at alone
        session.execute(
            update(Paper).where(Paper.id == first).values(abstract="Wavelet zebra tokenizers.")
        )
    store.rematch_topics(["tricky"], runtime.classify)  # refreshes before reading candidates
    with store.write() as session:
        assert refresh_terms(session) == 0
    zebra = Runtime.open(
        Config(paths=runtime.config.paths,
               topics=[TopicConfig(slug="zebra", name="Zebra", query="zebra*")]),
        store=store,
    )
    assert store.topic_paper_counts()["zebra"] == 1
    zebra.close()


def test_the_database_forgets_a_paper_whose_words_change_whoever_writes_it(
    database_url: str, seed_files: list[Path], tmp_path: Path
) -> None:
    """Triggers on papers (migration 0020) tell which papers to index again: a change of the
    words the index holds, by any writer, and nothing else."""
    runtime = Runtime.open(config_for(tmp_path), store=Store.open(database_url))
    store = runtime.store
    ingest_paths(store, seed_files[:1], classify=runtime.classify)
    with store.write() as session:
        assert refresh_terms(session) > 0
        first, second, third, fourth = session.scalars(
            select(Paper.id).order_by(Paper.id).limit(4)
        )
        abstract = session.scalar(select(Paper.abstract).where(Paper.id == first))
        # a new upvote count, as a later listing writes it: the words are the same
        session.execute(update(Paper).where(Paper.id == second).values(
            upvotes=Paper.upvotes + 7, updated_at=func.current_timestamp()))
        assert refresh_terms(session) == 0
        # a rewrite of the same length that leaves updated_at alone (the size and time
        # compared before could not see it)
        rewritten = ("zebra " + abstract)[: len(abstract)]
        session.execute(update(Paper).where(Paper.id == first).values(abstract=rewritten))
        session.execute(update(Paper).where(Paper.id == third).values(keywords=["okapi"]))
        assert refresh_terms(session) == 2
        assert refresh_terms(session) == 0
        session.execute(delete(PaperTopic).where(PaperTopic.paper_id == fourth))
        session.execute(delete(Paper).where(Paper.id == fourth))
        assert refresh_terms(session) == 0
        assert session.scalar(
            select(func.count()).select_from(state_table).where(state_table.c.paper_id == fourth)
        ) == 0
    animals = Runtime.open(
        Config(paths=runtime.config.paths, topics=[
            TopicConfig(slug="zebra", name="Zebra", query="zebra"),
            TopicConfig(slug="okapi", name="Okapi", query="okapi"),
        ]),
        store=store,
    )
    # a new topic set is matched directly; one changed topic is narrowed by the index
    for slug in ("zebra", "okapi"):
        store.rematch_topics([slug], animals.classify.subset([slug]))
    counts = store.topic_paper_counts()
    assert (counts["zebra"], counts["okapi"]) == (1, 1)
    animals.close()
    runtime.close()


def test_papers_without_kept_words_are_matched_from_their_text(
    database_url: str, seed_files: list[Path], tmp_path: Path
) -> None:
    """Papers stored before their words were kept (or whose text changed since) match as
    papers whose words are kept, and have them kept once matched."""
    runtime = ingested(database_url, seed_files, tmp_path)
    store = runtime.store
    direct = snapshot(store)
    with store.read() as session:
        papers = session.scalar(select(func.count(Paper.id)))
        assert session.scalar(select(func.count()).select_from(words_table)) == papers
    with store.write() as session:
        session.execute(delete(words_table))  # as before migration 0018
        first = session.scalars(select(Paper.id).order_by(Paper.id)).first()
        # kept words of another text are never used
        session.execute(insert(words_table).values(paper_id=first, words=pack(
            paper_document("Zebra tokenizers", "Wavelet zebra tokenizers."))))
    slugs = [t.slug for t in runtime.topics]
    store.rematch_topics(slugs, runtime.classify)
    assert snapshot(store) == direct
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(words_table)) == papers
    for slug in slugs[:4]:  # narrowed, from the kept words
        store.rematch_topics([slug], runtime.classify.subset([slug]))
        assert snapshot(store) == direct, slug
    runtime.close()


def test_a_bulk_rematch_narrows_once_the_index_holds_the_papers(
    database_url: str, seed_files: list[Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every topic matched again: paper by paper while the index lacks the papers (building
    it would cost more than it saves), narrowed by it once it holds them; the same matches."""
    runtime = ingested(database_url, seed_files, tmp_path)
    store = runtime.store
    direct = snapshot(store)
    slugs = [t.slug for t in runtime.topics]
    narrowed: list[int] = []

    def counting(session: Session) -> int:
        narrowed.append(1)
        return refresh_terms(session)

    monkeypatch.setattr(matching, "refresh_terms", counting)
    store.rematch_topics(slugs, runtime.classify)  # nothing indexed yet
    assert narrowed == [] and snapshot(store) == direct
    with store.write() as session:
        assert refresh_terms(session) > 0
    store.rematch_topics(slugs, runtime.classify)
    assert narrowed == [1] and snapshot(store) == direct
    # one changed paper in fifty or more is indexed again on the way, and matched as directly
    with store.write() as session:
        assert session.scalar(select(func.count()).select_from(Paper)) >= 50
        first = session.scalars(select(Paper.id).order_by(Paper.id)).first()
        session.execute(update(Paper).where(Paper.id == first).values(
            title="Speculative decoding: " + Paper.title))
    store.rematch_topics(slugs, runtime.classify)
    assert narrowed == [1, 1]
    changed = snapshot(store)
    assert changed != direct
    monkeypatch.setattr(topics_store, "mostly_indexed", lambda session: False)
    store.rematch_topics(slugs, runtime.classify)
    assert narrowed == [1, 1] and snapshot(store) == changed
    runtime.close()


def test_json_columns_hold_the_same_text_whether_given_tuples_or_lists(store: Store) -> None:
    """A match's terms are written as the tuple the matcher made, whose JSON text the engine
    remembers (store.db.json_text): what is stored and read back is what a list gives,
    for text that JSON escapes too, and a tuple holding a list is not remembered but written."""
    values = [
        ("study", "don't", "naïve", 'say "hi"'),
        ["study", "don't", "naïve", 'say "hi"'],
        (["nested"], "x"),
        (),
        ("study", "don't", "naïve", 'say "hi"'),  # the remembered text, a second time
    ]
    table = sa.Table("json_check", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("value", sa.JSON))
    table.create(store.engine)
    with store.write() as session:
        session.execute(insert(table), [{"id": i, "value": v} for i, v in enumerate(values)])
    with store.read() as session:
        stored = dict(session.execute(select(table.c.id, table.c.value)).all())
        as_text = dict(session.execute(select(table.c.id, sa.cast(table.c.value, sa.Text))).all())
    for i, value in enumerate(values):
        assert stored[i] == json.loads(json.dumps(value))
        assert json.loads(as_text[i]) == json.loads(json.dumps(value))
    assert as_text[0] == as_text[1] == as_text[4]


def test_matches_written_by_the_driver_read_back_as_sqlalchemy_writes_them(
    database_url: str, seed_files: list[Path], tmp_path: Path
) -> None:
    """insert_matches writes the JSON columns' text itself: the same text, and the same
    values read back, as the JSON type writes for the same match (terms that JSON escapes,
    highlights of a shown match and none of a bulk one)."""
    runtime = ingested(database_url, seed_files[:1], tmp_path)
    store = runtime.store
    with store.read() as session:
        paper_ids = list(session.scalars(select(Paper.id).order_by(Paper.id).limit(2)))
        topic_id = session.scalars(select(Topic.id).order_by(Topic.id)).first()
    matches = [
        TopicMatch("t", 4.0, ("don't", "naïve", 'say "hi"', "a\\b"), None),
        TopicMatch("t", 1.5, ("kv cache",), ("KV cache", "naïve “x”")),
    ]
    columns = (PaperTopic.score, PaperTopic.terms, PaperTopic.highlights)

    def written(by_driver: bool) -> list[tuple[object, ...]]:
        with store.write() as session:
            session.execute(delete(PaperTopic))
            if by_driver:
                matching.insert_matches(
                    session, [matching.match_row(p, topic_id, m)
                              for p, m in zip(paper_ids, matches, strict=True)]
                )
            else:
                session.execute(insert(PaperTopic), [
                    {"paper_id": p, "topic_id": topic_id, "score": m.score,
                     "terms": list(m.terms), "highlights": m.highlights}
                    for p, m in zip(paper_ids, matches, strict=True)
                ])
        with store.read() as session:
            query = select(*columns, *(sa.cast(c, sa.Text).label(f"{c.key}_text")
                                       for c in columns[1:]))
            return [tuple(row) for row in session.execute(query.order_by(PaperTopic.paper_id))]

    by_driver, by_sqlalchemy = written(True), written(False)
    assert by_driver == by_sqlalchemy
    assert by_driver[0][:3] == (4.0, ["don't", "naïve", 'say "hi"', "a\\b"], None)
    assert by_driver[1][2] == ["KV cache", "naïve “x”"]
    runtime.close()
