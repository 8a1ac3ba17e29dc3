"""Papers, batches and sightings: storing a parsed dump, and reading papers back."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digestd.parse import ParsedDump, ParsedPaper, paper_key
from digestd.store.db import Database, bulk_insert
from digestd.store.dumps import _dump_for_update
from digestd.store.models import Batch, Paper, PaperTopic, Sighting, Topic, utcnow
from digestd.store.records import PaperRecord, StoredDump
from digestd.store.topics import Classify, record_matches

if TYPE_CHECKING:
    import datetime as dt

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# Bound parameters per statement stay well below SQLite's and PostgreSQL's limits.
CHUNK = 500


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
    """One entry per key; a paper listed twice in a dump keeps its first listing."""
    merged: dict[str, ParsedPaper] = {}
    for paper in papers:
        key = paper_key(paper.title)
        if key and key not in merged:
            merged[key] = paper
    return merged


def _updated_fields(row: Any, paper: ParsedPaper) -> dict[str, Any]:
    """What a new listing changes on a stored paper: fresher upvotes, metadata it lacked."""
    changes: dict[str, Any] = {}
    if paper.upvotes is not None and paper.upvotes != row.upvotes:
        changes["upvotes"] = paper.upvotes
    for field in ("authors_count", "organization_id", "organization", "published"):
        if getattr(row, field) is None and getattr(paper, field) is not None:
            changes[field] = getattr(paper, field)
    if not row.links and paper.links:
        changes["links"] = list(paper.links)
    return changes


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
        links=tuple(paper.links or ()),
        batch_id=paper.batch_id,
        first_seen_at=paper.first_seen_at,
        updated_at=paper.updated_at,
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
        keys = list(listings)
        existing: dict[str, Any] = {}
        columns = (
            Paper.id, Paper.key, Paper.upvotes, Paper.authors_count, Paper.organization_id,
            Paper.organization, Paper.published, Paper.links,
        )
        for chunk in _chunks(keys):
            for row in session.execute(select(*columns).where(Paper.key.in_(chunk))):
                existing[row.key] = row

        paper_ids: dict[str, int] = {key: row.id for key, row in existing.items()}
        updates = []
        for key, row in existing.items():
            changes = _updated_fields(row, listings[key])
            if changes:
                updates.append({"id": row.id, "updated_at": now, **changes})
        if updates:
            session.execute(update(Paper), updates)

        new_keys = [key for key in keys if key not in existing]
        batch_id = None
        if new_keys:
            batch = Batch(dump_id=dump.id, created_at=now, new_count=len(new_keys))
            session.add(batch)
            session.flush()
            batch_id = batch.id
            rows = [
                {
                    "key": key,
                    "slug": paper_slug(listings[key].title, key),
                    "title": listings[key].title,
                    "abstract": listings[key].abstract,
                    "authors_count": listings[key].authors_count,
                    "organization_id": listings[key].organization_id,
                    "organization": listings[key].organization,
                    "published": listings[key].published,
                    "upvotes": listings[key].upvotes,
                    "links": list(listings[key].links),
                    "batch_id": batch_id,
                    "first_seen_at": now,
                    "updated_at": now,
                }
                for key in new_keys
            ]
            # One executemany; the ORM's bulk path with RETURNING goes row by row on SQLite.
            bulk_insert(session, Paper.__table__, rows)
            for chunk in _chunks(new_keys):
                found = session.execute(select(Paper.key, Paper.id).where(Paper.key.in_(chunk)))
                paper_ids.update({key: paper_id for key, paper_id in found})
            if classify is not None:
                record_matches(
                    session,
                    ((paper_ids[r["key"]], r["title"], r["abstract"]) for r in rows),
                    classify,
                )

        self._record_sightings(session, dump.id, listings, paper_ids, now)
        dump.new_count = len(new_keys)
        return StoredDump(papers=len(parsed.papers), new=len(new_keys), batch_id=batch_id)

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

    def paper_by_slug(self, slug: str) -> PaperRecord | None:
        with self.read() as session:
            paper = session.scalar(select(Paper).where(Paper.slug == slug))
            return _record(paper) if paper else None

    def sighting_count(self) -> int:
        with self.read() as session:
            return session.scalar(select(func.count(Sighting.id))) or 0
