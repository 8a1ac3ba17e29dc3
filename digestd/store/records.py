"""Plain, immutable views of stored rows, handed out by the store so no session leaks out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    path: str
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    status: str
    error: str | None
    layout: str | None
    papers_count: int
    new_count: int
    updated_at: dt.datetime
    ingested_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class PaperRecord:
    id: int
    key: str
    slug: str
    title: str
    abstract: str
    authors_count: int | None
    organization_id: str | None
    organization: str | None
    published: dt.date | None
    upvotes: int | None
    links: tuple[str, ...]
    batch_id: int
    first_seen_at: dt.datetime
    updated_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        """The shape `digestd papers --json` prints (documented in DESIGN.md)."""
        return {
            "key": self.key,
            "slug": self.slug,
            "title": self.title,
            "abstract": self.abstract,
            "authors": self.authors_count,
            "organization": self.organization,
            "organization_id": self.organization_id,
            "published": self.published.isoformat() if self.published else None,
            "upvotes": self.upvotes,
            "first_seen": self.first_seen_at.isoformat(),
            "updated": self.updated_at.isoformat(),
            "links": list(self.links),
        }


@dataclass(frozen=True, slots=True)
class StoredDump:
    """What storing one dump's content did."""

    papers: int
    new: int
    batch_id: int | None
