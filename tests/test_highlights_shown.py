"""Matches are stored without highlights, at ingest and when re-matched; they are made when a
match is read, the same as matching a paper with them makes, and made again when the paper or
the query changed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select, update

from digestd.store import Store
from digestd.store.matching import match_fields
from digestd.store.models import Paper, PaperTopic, Topic
from digestd.topics.match import highlights, paper_document
from tests.test_topic_index import ingested


def shown(store: Store) -> dict[int, list[tuple[str, tuple[str, ...]]]]:
    with store.read() as session:
        ids = list(session.scalars(select(Paper.id)))
    return {
        paper_id: [(m.slug, m.highlights) for m in found]
        for paper_id, found in store.paper_matches(ids).items()
    }


def stored_without_highlights(store: Store) -> tuple[int, int]:
    """Matches stored with JSON null highlights, and all matches."""
    with store.read() as session:
        values = list(session.scalars(select(PaperTopic.highlights)))
    return sum(value is None for value in values), len(values)


def test_highlights_are_made_when_shown(
    database_url: str, seed_files: list[Path], tmp_path: Path
) -> None:
    runtime = ingested(database_url, seed_files, tmp_path)
    store = runtime.store
    # matched at ingest (the classifier matches prepared papers): stored without highlights
    without, total = stored_without_highlights(store)
    assert without == total > 100
    at_ingest = shown(store)
    assert sum(bool(h) for found in at_ingest.values() for _, h in found) > 100
    # the same as matching each paper with its highlights
    with store.read() as session:
        papers = session.execute(
            select(Paper.id, Paper.title, Paper.abstract, Paper.authors, Paper.organization_id,
                   Paper.organization, Paper.categories, Paper.keywords)
        ).all()
    for paper in papers:
        expected = runtime.classify(paper.title, paper.abstract, **match_fields(paper))
        assert sorted(at_ingest[paper.id]) == sorted((m.slug, m.highlights) for m in expected)

    slugs = [t.slug for t in runtime.topics]
    store.rematch_topics(slugs, runtime.classify)  # every paper, directly
    store.rematch_topics(["reasoning"], runtime.classify.subset(["reasoning"]))  # narrowed
    assert stored_without_highlights(store) == (total, total)
    assert shown(store) == at_ingest
    # another process, nothing remembered: the same
    other = Store.open(database_url)
    assert shown(other) == at_ingest

    # a paper whose text changed is highlighted from its new text
    paper_id, slug, pieces = next(
        (paper_id, slug, pieces)
        for paper_id, found in sorted(at_ingest.items())
        for slug, pieces in found
        if len(pieces) >= 2
    )
    with store.write() as session:
        title, abstract = session.execute(
            select(Paper.title, Paper.abstract).where(Paper.id == paper_id)
        ).one()
        # every highlighted piece but the first leaves the text
        for piece in pieces[1:]:
            title, abstract = title.replace(piece, "zebra"), abstract.replace(piece, "zebra")
        session.execute(
            update(Paper).where(Paper.id == paper_id).values(
                title=title, abstract=abstract,
                updated_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
            )
        )
    after = {m.slug: m.highlights for m in store.paper_matches([paper_id])[paper_id]}
    query = next(t.query for t in runtime.topics if t.slug == slug)
    with store.read() as session:
        keywords = session.scalar(select(Paper.keywords).where(Paper.id == paper_id))
    fields = {"keywords": "; ".join(keywords)} if keywords else {}
    assert after[slug] == highlights(paper_document(title, abstract, **fields), query)
    assert after[slug] != pieces
    assert not set(pieces[1:]) & set(after[slug])

    # a query changed (its matches not yet made again): highlighted by the stored query
    with store.write() as session:
        session.execute(update(Topic).where(Topic.slug == slug).values(query="zebra"))
    after = {m.slug: m.highlights for m in store.paper_matches([paper_id])[paper_id]}
    assert after[slug] == ("zebra",)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(PaperTopic)) == total
    other.dispose()
    runtime.close()
