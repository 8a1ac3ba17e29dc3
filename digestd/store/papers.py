"""Papers, batches and sightings: storing a parsed dump, and reading papers back."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digestd.parse import ParsedDump, ParsedPaper, identity_key, paper_key
from digestd.store.db import Database, bulk_insert
from digestd.store.dumps import _dump_for_update
from digestd.store.identity import merge_papers, resolve
from digestd.store.matching import Classify, MatchRow, match_fields, record_matches
from digestd.store.models import (
    Batch,
    Paper,
    PaperAlias,
    PaperRevision,
    PaperTopic,
    Sighting,
    Topic,
    utcnow,
)
from digestd.store.records import PaperRecord, StoredDump

if TYPE_CHECKING:
    import datetime as dt

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Bound parameters per statement stay well below SQLite's and PostgreSQL's limits.
CHUNK = 500
_REPLACEMENTS = frozenset({"replace", "replace-cross"})
#: how many causes of skipped items the ledger keeps (the count is exact)
_NOTES = 5


def paper_slug(title: str, key: str) -> str:
    """A readable, stable URL segment: the title's words plus a short hash of the key."""
    if not title.isascii():
        title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = _NOT_SLUG.sub("-", title.lower()).strip("-")
    words = words[:80].rstrip("-") or "paper"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"{words}-{digest}"


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _merge_listings(papers: Iterable[ParsedPaper]) -> dict[str, ParsedPaper]:
    """One entry per identity; a paper listed twice in a dump keeps its first listing."""
    merged: dict[str, ParsedPaper] = {}
    for paper in papers:
        key = identity_key(paper.title, paper.arxiv_id)
        if key and key not in merged:
            merged[key] = paper
    return merged


_FILLED = (
    "authors_count", "organization_id", "organization", "published", "ai_summary",
    "github_repo", "project_page",
)
_FRESHER = ("upvotes", "github_stars", "comments")
_LISTS = ("authors", "keywords", "categories")


def _updated_fields(row: Any, paper: ParsedPaper) -> dict[str, Any]:
    """What a new listing changes on a stored paper: fresher counts, metadata it lacked, an
    arXiv id, and a newer version's title and abstract."""
    changes: dict[str, Any] = {}
    for name in _FRESHER:
        value = getattr(paper, name)
        if value is not None and value != getattr(row, name):
            changes[name] = value
    for name in _FILLED:
        if getattr(row, name) is None and getattr(paper, name) is not None:
            changes[name] = getattr(paper, name)
    for name in _LISTS:
        if not getattr(row, name) and getattr(paper, name):
            changes[name] = list(getattr(paper, name))
    if not row.links and paper.links:
        changes["links"] = list(paper.links)
    links = {**dict(paper.source_links), **(row.source_links or {})}
    if links != (row.source_links or {}):
        changes["source_links"] = links
    if paper.arxiv_id and row.arxiv_id is None:
        changes["arxiv_id"] = paper.arxiv_id
    if paper.arxiv_version is not None and paper.arxiv_version > (row.arxiv_version or 0):
        changes["arxiv_version"] = paper.arxiv_version
        # A new version is the authors' newer text; a text layout's listing never replaces it.
        if paper.title and paper.title != row.title:
            changes["title"] = paper.title
            changes["title_key"] = paper_key(paper.title)
        if paper.abstract and paper.abstract != row.abstract:
            changes["abstract"] = paper.abstract
        if paper.authors and list(paper.authors) != list(row.authors or ()):
            changes["authors"] = list(paper.authors)
            changes["authors_count"] = len(paper.authors)
    return changes


def _new_row(key: str, paper: ParsedPaper, batch_id: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "key": key,
        "title_key": paper_key(paper.title),
        "slug": paper_slug(paper.title, key),
        "title": paper.title,
        "abstract": paper.abstract,
        "authors_count": paper.authors_count,
        "organization_id": paper.organization_id,
        "organization": paper.organization,
        "published": paper.published,
        "upvotes": paper.upvotes,
        "first_upvotes": paper.upvotes,
        "first_upvotes_at": now if paper.upvotes is not None else None,
        "links": list(paper.links),
        "arxiv_id": paper.arxiv_id,
        "arxiv_version": paper.arxiv_version,
        "authors": list(paper.authors),
        "ai_summary": paper.ai_summary,
        "keywords": list(paper.keywords),
        "github_repo": paper.github_repo,
        "github_stars": paper.github_stars,
        "project_page": paper.project_page,
        "comments": paper.comments,
        "categories": list(paper.categories),
        "source_links": dict(paper.source_links),
        "batch_id": batch_id,
        "first_seen_at": now,
        "updated_at": now,
    }


def _match_input(paper_id: int, paper: Any) -> MatchRow:
    return (paper_id, paper.title, paper.abstract, match_fields(paper))


def _record(paper: Paper) -> PaperRecord:
    return PaperRecord(
        id=paper.id,
        key=paper.key,
        slug=paper.slug,
        title=paper.title,
        abstract=paper.abstract,
        authors_count=paper.authors_count,
        organization_id=paper.organization_id,
        organization=paper.organization,
        published=paper.published,
        upvotes=paper.upvotes,
        first_upvotes=paper.first_upvotes,
        first_upvotes_at=paper.first_upvotes_at,
        links=tuple(paper.links or ()),
        batch_id=paper.batch_id,
        first_seen_at=paper.first_seen_at,
        updated_at=paper.updated_at,
        arxiv_id=paper.arxiv_id,
        arxiv_version=paper.arxiv_version,
        authors=tuple(paper.authors or ()),
        ai_summary=paper.ai_summary,
        keywords=tuple(paper.keywords or ()),
        github_repo=paper.github_repo,
        github_stars=paper.github_stars,
        project_page=paper.project_page,
        comments=paper.comments,
        categories=tuple(paper.categories or ()),
        source_links=tuple((paper.source_links or {}).items()),
    )


class PaperStore(Database):
    def store_dump(
        self, path: str, *, content_hash: str, size: int, mtime_ns: int, parsed: ParsedDump,
        classify: Classify | None = None,
    ) -> StoredDump:
        """Store one dump's papers in one transaction: all of it, or (on any error) none.

        New papers are matched against the topics with `classify` in the same transaction, so
        no paper is ever stored without its topics.
        """
        for attempt in range(3):
            try:
                with self.write() as session:
                    return self._store_dump(
                        session, path, content_hash, size, mtime_ns, parsed, classify
                    )
            except IntegrityError:
                # Another process stored some of these papers between our read and our insert
                # (PostgreSQL, several daemons): the retry sees them and treats them as known.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store_dump(
        self, session: Session, path: str, content_hash: str, size: int, mtime_ns: int,
        parsed: ParsedDump, classify: Classify | None,
    ) -> StoredDump:
        now = utcnow()
        dump = _dump_for_update(session, path)
        dump.status = "ingested"
        dump.error = None
        dump.content_hash = content_hash
        dump.size = size
        dump.mtime_ns = mtime_ns
        dump.layout = parsed.layout
        dump.papers_count = len(parsed.papers)
        dump.updated_at = dump.ingested_at = now
        session.flush()  # the dump needs its id before batches and sightings refer to it

        listings = _merge_listings(parsed.papers)
        resolution = resolve(session, listings)
        merged_changes: dict[int, dict[str, Any]] = {}
        for survivor_id, merged_id in resolution.merges:
            merged_changes[survivor_id] = merge_papers(session, survivor_id, merged_id)

        # Listings that reach one stored paper by different keys (an item with an id and one
        # without, same title) are one listing: the first.
        paper_ids: dict[str, int] = {}
        known: dict[int, tuple[Any, ParsedPaper]] = {}
        new_keys: list[str] = []
        unknown_replacements = 0
        for key, row in resolution.rows.items():
            paper = listings[key]
            if row is None:
                if paper.announce in _REPLACEMENTS:
                    # A new version of a paper never seen here is not a new paper.
                    unknown_replacements += 1
                    continue
                new_keys.append(key)
            elif row.id not in known:
                known[row.id] = (row, paper)
                paper_ids[key] = row.id

        updates, rematch = [], []
        for paper_id, (row, paper) in known.items():
            changes = {**merged_changes.pop(paper_id, {}), **_updated_fields(row, paper)}
            if paper.upvotes is not None and row.first_upvotes is None and (
                "first_upvotes" not in changes
            ):
                # the first listing with a count: what later gains are measured from
                changes["first_upvotes"] = paper.upvotes
                changes["first_upvotes_at"] = now
            if "abstract" in changes or "title" in changes:
                session.add(
                    PaperRevision(
                        paper_id=paper_id, version=row.arxiv_version, title=row.title,
                        abstract=row.abstract, replaced_at=now,
                    )
                )
            if {"abstract", "title", "authors", "keywords", "categories", "organization"} & set(
                changes
            ):
                rematch.append(paper_id)
            if changes:
                updates.append({"id": paper_id, "updated_at": now, **changes})
        for paper_id, changes in merged_changes.items():  # survivors no listing updates
            updates.append({"id": paper_id, "updated_at": now, **changes})
        if updates:
            session.execute(update(Paper), updates)

        batch_id = None
        if new_keys:
            batch = Batch(dump_id=dump.id, created_at=now, new_count=len(new_keys))
            session.add(batch)
            session.flush()
            batch_id = batch.id
            rows = [_new_row(key, listings[key], batch_id, now) for key in new_keys]
            # One executemany; the ORM's bulk path with RETURNING goes row by row on SQLite.
            bulk_insert(session, Paper.__table__, rows)
            for chunk in _chunks(new_keys):
                found = session.execute(select(Paper.key, Paper.id).where(Paper.key.in_(chunk)))
                paper_ids.update({key: paper_id for key, paper_id in found})
            if classify is not None:
                record_matches(
                    session,
                    (_match_input(paper_ids[key], listings[key]) for key in new_keys),
                    classify,
                )
        if rematch and classify is not None:
            session.execute(delete(PaperTopic).where(PaperTopic.paper_id.in_(rematch)))
            fresh = session.execute(select(Paper).where(Paper.id.in_(rematch))).scalars()
            record_matches(session, (_match_input(p.id, p) for p in fresh), classify)

        self._record_sightings(session, dump.id, listings, paper_ids, now)
        dump.new_count = len(new_keys)
        dump.skipped_count = len(parsed.skipped) + unknown_replacements
        notes = list(parsed.skipped[:_NOTES])
        if unknown_replacements:
            notes.append(f"{unknown_replacements} replacement(s) of papers not seen before")
        dump.skipped_notes = "\n".join(notes) or None
        return StoredDump(
            papers=len(parsed.papers), new=len(new_keys), batch_id=batch_id,
            skipped=dump.skipped_count,
        )

    @staticmethod
    def _record_sightings(
        session: Session, dump_id: int, listings: dict[str, ParsedPaper],
        paper_ids: dict[str, int], now: dt.datetime,
    ) -> None:
        # A dump whose content changed may list some papers again: update those sightings.
        seen = dict(
            session.execute(
                select(Sighting.paper_id, Sighting.id).where(Sighting.dump_id == dump_id)
            ).all()
        )
        fresh, refreshed = [], []
        for key, paper in listings.items():
            if key not in paper_ids:  # a replacement of an unknown paper, or a duplicate
                continue
            values = {"upvotes": paper.upvotes, "line": paper.line, "seen_at": now}
            paper_id = paper_ids[key]
            if paper_id in seen:
                refreshed.append({"id": seen[paper_id], **values})
            else:
                fresh.append({"paper_id": paper_id, "dump_id": dump_id, **values})
        if refreshed:
            session.execute(update(Sighting), refreshed)
        bulk_insert(session, Sighting.__table__, fresh)

    # Reading ---------------------------------------------------------------------------------

    def count_papers(self) -> int:
        with self.read() as session:
            return session.scalar(select(func.count(Paper.id))) or 0

    def papers(
        self, *, limit: int | None = None, since_batch: int | None = None,
        ids: Iterable[int] | None = None, topic: str | None = None,
    ) -> list[PaperRecord]:
        """Stored papers, newest first by first-seen time; with `topic`, only its matches."""
        query: Select[tuple[Paper]] = select(Paper).order_by(
            Paper.first_seen_at.desc(), Paper.id.desc()
        )
        if since_batch is not None:
            query = query.where(Paper.batch_id > since_batch)
        if topic is not None:
            query = (
                query.join(PaperTopic, PaperTopic.paper_id == Paper.id)
                .join(Topic, Topic.id == PaperTopic.topic_id)
                .where(Topic.slug == topic, Topic.active.is_(True))
            )
        if ids is not None:
            query = query.where(Paper.id.in_(list(ids)))
        if limit is not None:
            query = query.limit(limit)
        with self.read() as session:
            return [_record(p) for p in session.scalars(query)]

    def iter_papers(self, batch_size: int = 2000) -> Iterator[PaperRecord]:
        """Every stored paper in id order, a page at a time (memory stays flat)."""
        last_id = 0
        while True:
            with self.read() as session:
                page = list(
                    session.scalars(
                        select(Paper).where(Paper.id > last_id).order_by(Paper.id).limit(batch_size)
                    )
                )
                records = [_record(p) for p in page]
            if not records:
                return
            yield from records
            last_id = records[-1].id

    def paper_by_key(self, key: str) -> PaperRecord | None:
        with self.read() as session:
            paper = session.scalar(select(Paper).where(Paper.key == key))
            return _record(paper) if paper else None

    def paper_by_slug(self, slug: str) -> PaperRecord | None:
        """The paper with this page slug, or the one it was merged into (its slug differs)."""
        with self.read() as session:
            paper = session.scalar(select(Paper).where(Paper.slug == slug))
            if paper is None:
                alias = select(PaperAlias.paper_id).where(PaperAlias.slug == slug)
                paper = session.scalar(select(Paper).where(Paper.id.in_(alias)))
            return _record(paper) if paper else None

    def sighting_count(self) -> int:
        with self.read() as session:
            return session.scalar(select(func.count(Sighting.id))) or 0
