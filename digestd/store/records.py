"""Plain, immutable views of stored rows, handed out by the store so no session leaks out."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

_GITHUB_RE = re.compile(r"https?://(?:www\.)?github\.com/[^/\s]+/[^/\s]+", re.IGNORECASE)


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
    skipped_count: int = 0
    skipped_notes: str | None = None


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
    # What structured sources add (see digestd.parse.types.ParsedPaper); empty for text dumps.
    arxiv_id: str | None = None
    arxiv_version: int | None = None
    authors: tuple[str, ...] = ()
    ai_summary: str | None = None
    keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    comments: int | None = None
    categories: tuple[str, ...] = ()
    #: (kind, URL) pairs the sources gave: "abs", "pdf", "hf", "doi"
    source_links: tuple[tuple[str, str], ...] = ()
    #: the count of the first sighting that carried one, and when digestd saw it
    first_upvotes: int | None = None
    first_upvotes_at: dt.datetime | None = None

    @property
    def upvote_gain(self) -> int | None:
        """Upvotes gained since the first sighting with a count (None: never counted)."""
        if self.upvotes is None or self.first_upvotes is None:
            return None
        return self.upvotes - self.first_upvotes

    @property
    def code_url(self) -> str | None:
        """The code: the repository a source named, else the first GitHub link of the abstract."""
        if self.github_repo:
            return self.github_repo
        return next((url for url in self.links if _GITHUB_RE.match(url)), None)

    @property
    def page_links(self) -> dict[str, str]:
        """The paper's links by kind: abs, pdf, hf, doi, code, project (those known)."""
        found = dict(self.source_links)
        if self.arxiv_id:
            found.setdefault("abs", f"https://arxiv.org/abs/{self.arxiv_id}")
            found.setdefault("pdf", f"https://arxiv.org/pdf/{self.arxiv_id}")
        code = self.code_url
        if code:
            found["code"] = code
        if self.project_page:
            found["project"] = self.project_page
        order = ("abs", "pdf", "hf", "code", "project", "doi")
        return {kind: found[kind] for kind in (*order, *sorted(found)) if kind in found}

    @property
    def authors_line(self) -> str | None:
        """The authors shortened for a digest: "A, B, C et al." past three."""
        if not self.authors:
            return None
        if len(self.authors) > 3:
            return ", ".join(self.authors[:3]) + " et al."
        return ", ".join(self.authors)

    def as_json(self) -> dict[str, Any]:
        """The shape `digestd papers --json` prints (documented in DESIGN.md)."""
        return {
            "key": self.key,
            "slug": self.slug,
            "title": self.title,
            "abstract": self.abstract,
            "arxiv_id": self.arxiv_id,
            "arxiv_version": self.arxiv_version,
            "authors": list(self.authors),
            "authors_count": self.authors_count,
            "organization": self.organization,
            "organization_id": self.organization_id,
            "published": self.published.isoformat() if self.published else None,
            "upvotes": self.upvotes,
            "upvotes_first": self.first_upvotes,
            "upvotes_first_seen": (
                self.first_upvotes_at.isoformat() if self.first_upvotes_at else None
            ),
            "upvotes_gain": self.upvote_gain,
            "first_seen": self.first_seen_at.isoformat(),
            "updated": self.updated_at.isoformat(),
            "ai_summary": self.ai_summary,
            "keywords": list(self.keywords),
            "categories": list(self.categories),
            "github_repo": self.github_repo,
            "github_stars": self.github_stars,
            "project_page": self.project_page,
            "comments": self.comments,
            "links": self.page_links,
            "abstract_links": list(self.links),
        }


@dataclass(frozen=True, slots=True)
class StoredDump:
    """What storing one dump's content did."""

    papers: int
    new: int
    batch_id: int | None
    #: items of the dump that could not be stored (unreadable, or replacing unknown papers)
    skipped: int = 0
