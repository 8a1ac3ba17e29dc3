"""The parser's value types: one ``ParsedPaper`` per listing, one ``ParsedDump`` per file.

They are frozen so the store and the renderers can share them without defensive copies.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParsedPaper:
    """One paper as listed in a dump; every field but title and abstract may be unknown."""

    # Field order is kept (positional construction); new fields come last with defaults.

    title: str
    abstract: str
    authors_count: int | None
    organization_id: str | None
    organization: str | None
    published: datetime.date | None
    upvotes: int | None
    #: http(s) URLs of the abstract, in order of appearance, without duplicates
    links: tuple[str, ...]
    #: 1-based line of the title in the dump text (for JSON, the item's line)
    line: int
    # What structured sources add; the text layouts leave these empty.
    #: versionless arXiv id ("2509.01234", "hep-th/9901001")
    arxiv_id: str | None = None
    arxiv_version: int | None = None
    #: the authors' names in order
    authors: tuple[str, ...] = ()
    #: the source's own one-line summary (Hugging Face's "ai_summary")
    ai_summary: str | None = None
    keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    comments: int | None = None
    #: arXiv categories, the primary one first
    categories: tuple[str, ...] = ()
    #: links the source gives, as (kind, URL): "abs", "pdf", "hf", "doi"
    source_links: tuple[tuple[str, str], ...] = ()
    #: arXiv listing announcement: "new", "cross", "replace" or "replace-cross"
    announce: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedDump:
    """Everything read from one dump, papers in listing order (duplicates kept)."""

    #: "card", "compact", "hf-json", "arxiv-api" or "arxiv-listing"
    layout: str
    #: the page's own date as written ("May 27"); None when the layout has none
    page_date: str | None
    #: the year used for yearless dates; None when the layout has no dates
    capture_year: int | None
    papers: tuple[ParsedPaper, ...]
    #: items of the dump that could not be read, each with a one-line cause naming where
    skipped: tuple[str, ...] = ()
