"""One paper, one row: finding the stored paper a listing means, and merging two rows that
turn out to be one paper.

A paper is found by its arXiv id when the listing has one, else by its normalised title
(``title_key``, or the title key it was first stored under). A title-keyed paper that a listing
with an id and the same title reaches gains that id. When a listing shows that an id-keyed and a
title-keyed row are one paper, the younger row is merged into the older one: its sightings, topic
matches and the deliveries that listed it move over, so nothing that was shown or sent is lost.
The paper's ``key`` and ``slug`` never change (feed entry ids and page URLs derive from them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, delete, or_, select, tuple_, update
from sqlalchemy.orm import Session

from digestd.parse import ParsedPaper, paper_key
from digestd.store.models import Base, Delivery, Paper, PaperAlias, PaperTopic, Sighting
from digestd.store.terms import words_table

CHUNK = 500

#: columns read for resolving and updating known papers
COLUMNS = (
    Paper.id, Paper.key, Paper.title_key, Paper.arxiv_id, Paper.arxiv_version, Paper.title,
    Paper.abstract, Paper.upvotes, Paper.authors_count, Paper.organization_id,
    Paper.organization, Paper.published, Paper.links, Paper.authors, Paper.ai_summary,
    Paper.keywords, Paper.github_repo, Paper.github_stars, Paper.project_page, Paper.comments,
    Paper.categories, Paper.source_links, Paper.first_seen_at, Paper.batch_id,
    Paper.first_upvotes, Paper.first_upvotes_at,
)


@dataclass
class Resolution:
    """Where each listing of a dump goes."""

    #: listing key -> the stored row it is (None: a new paper)
    rows: dict[str, Row[Any] | None] = field(default_factory=dict)
    #: (survivor id, merged id) pairs, in the order found
    merges: list[tuple[int, int]] = field(default_factory=list)


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def resolve(session: Session, listings: dict[str, ParsedPaper]) -> Resolution:
    """The stored paper of every listing, and the rows that must be merged first."""
    arxiv_ids = sorted({p.arxiv_id for p in listings.values() if p.arxiv_id})
    title_keys = sorted({paper_key(p.title) for p in listings.values()})
    by_arxiv: dict[str, Row[Any]] = {}
    for chunk in _chunks(arxiv_ids):
        for row in session.execute(select(*COLUMNS).where(Paper.arxiv_id.in_(chunk))):
            by_arxiv[row.arxiv_id] = row
    by_title: dict[str, list[Row[Any]]] = {}
    for chunk in _chunks(title_keys):
        query = select(*COLUMNS).where(or_(Paper.title_key.in_(chunk), Paper.key.in_(chunk)))
        for row in session.execute(query.order_by(Paper.id)):
            for key in {row.title_key, row.key}:
                by_title.setdefault(key, []).append(row)

    result = Resolution()
    merged: set[int] = set()
    # a title-keyed row that one id of this dump took is not there for another id: two
    # papers with one title and different ids stay two papers
    claimed: dict[int, str] = {}
    for listing_key, paper in listings.items():
        candidates = [r for r in by_title.get(paper_key(paper.title), []) if r.id not in merged]
        if paper.arxiv_id:
            row = by_arxiv.get(paper.arxiv_id)
            titled = [
                r for r in candidates
                if r.arxiv_id is None and claimed.get(r.id, paper.arxiv_id) == paper.arxiv_id
            ]
            if row is None:
                row = titled[0] if titled else None
                if row is not None:
                    claimed[row.id] = paper.arxiv_id
            else:
                for other in titled:
                    older, younger = sorted((row, other), key=_age)
                    result.merges.append((older.id, younger.id))
                    merged.add(younger.id)
                    row = older
        else:
            row = candidates[0] if candidates else None
        result.rows[listing_key] = row
    return result


def _age(row: Row[Any]) -> tuple[Any, int]:
    return (row.first_seen_at, row.id)


def merge_papers(session: Session, survivor_id: int, merged_id: int) -> dict[str, Any]:
    """Move everything of paper ``merged_id`` onto ``survivor_id`` and delete it.

    Returns the merged paper's fields the survivor lacks (to be applied by the caller, after
    the merged row, which may hold the arXiv id, is gone).
    """
    survivor = session.execute(select(*COLUMNS).where(Paper.id == survivor_id)).one()
    gone = session.execute(select(*COLUMNS).where(Paper.id == merged_id)).one()
    gone_slug = session.scalar(select(Paper.slug).where(Paper.id == merged_id))

    # Sightings: one per paper and dump; where both were listed in one dump, one is enough.
    both = select(Sighting.dump_id).where(Sighting.paper_id == survivor_id)
    session.execute(
        delete(Sighting).where(Sighting.paper_id == merged_id, Sighting.dump_id.in_(both))
    )
    session.execute(
        update(Sighting).where(Sighting.paper_id == merged_id).values(paper_id=survivor_id)
    )
    # Topic matches: keep the survivor's where both matched a topic.
    shared = select(PaperTopic.topic_id).where(PaperTopic.paper_id == survivor_id)
    session.execute(
        delete(PaperTopic).where(PaperTopic.paper_id == merged_id, PaperTopic.topic_id.in_(shared))
    )
    session.execute(
        update(PaperTopic).where(PaperTopic.paper_id == merged_id).values(paper_id=survivor_id)
    )
    # Delivery history: the digests that listed the merged paper now list the survivor.
    rewritten = []
    for delivery_id, paper_ids in session.execute(select(Delivery.id, Delivery.paper_ids)):
        if paper_ids and merged_id in paper_ids:
            ids = list(dict.fromkeys(survivor_id if i == merged_id else i for i in paper_ids))
            rewritten.append({"id": delivery_id, "paper_ids": ids})
    if rewritten:
        session.execute(update(Delivery), rewritten)
    # Tables other parts of digestd keep about papers (ratings, ...) follow the survivor too;
    # where a table's key allows one row per paper and the survivor has one, it stays.
    for table, column in _other_references():
        others = [c for c in table.primary_key.columns if c is not column]
        if column.primary_key and others:
            taken = select(*others).where(column == survivor_id)
            clash = tuple_(*others).in_(taken) if len(others) > 1 else others[0].in_(taken)
            session.execute(table.delete().where(column == merged_id, clash))
        session.execute(
            table.update().where(column == merged_id).values({column.name: survivor_id})
        )

    # Its page's URL went out in e-mails and feeds: it now leads to the survivor.
    session.execute(
        update(PaperAlias).where(PaperAlias.paper_id == merged_id).values(paper_id=survivor_id)
    )
    session.add(PaperAlias(slug=gone_slug, paper_id=survivor_id))
    # the merged row's kept words belong to no paper any more
    session.execute(delete(words_table).where(words_table.c.paper_id == merged_id))
    session.execute(delete(Paper).where(Paper.id == merged_id))
    session.flush()
    changes: dict[str, Any] = {}
    # The count is the newest one either row was listed with; the baseline ("+12 since
    # Tuesday") the earliest.
    newest = session.scalar(
        select(Sighting.upvotes)
        .where(Sighting.paper_id == survivor_id, Sighting.upvotes.is_not(None))
        .order_by(Sighting.seen_at.desc(), Sighting.id.desc())
        .limit(1)
    )
    if newest is not None and newest != survivor.upvotes:
        changes["upvotes"] = newest
    if gone.first_upvotes_at is not None and (
        survivor.first_upvotes_at is None or gone.first_upvotes_at < survivor.first_upvotes_at
    ):
        changes["first_upvotes"] = gone.first_upvotes
        changes["first_upvotes_at"] = gone.first_upvotes_at
    for name in (
        "arxiv_id", "arxiv_version", "authors_count", "organization_id", "organization",
        "published", "upvotes", "ai_summary", "github_repo", "github_stars", "project_page",
        "comments",
    ):
        if getattr(survivor, name) is None and getattr(gone, name) is not None:
            changes.setdefault(name, getattr(gone, name))
    for name in ("links", "authors", "keywords", "categories"):
        if not getattr(survivor, name) and getattr(gone, name):
            changes[name] = list(getattr(gone, name))
    links = {**(gone.source_links or {}), **(survivor.source_links or {})}
    if links != (survivor.source_links or {}):
        changes["source_links"] = links
    if gone.first_seen_at < survivor.first_seen_at:
        changes["first_seen_at"] = gone.first_seen_at
        changes["batch_id"] = gone.batch_id
    return changes


_KNOWN = {"sightings", "paper_topics", "papers", "paper_aliases"}


def _other_references() -> Iterable[tuple[Any, Any]]:
    for table in Base.metadata.sorted_tables:
        if table.name in _KNOWN:
            continue
        for column in table.columns:
            if any(fk.column.table.name == "papers" for fk in column.foreign_keys):
                yield table, column
