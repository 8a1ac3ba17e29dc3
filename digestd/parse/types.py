"""The parser's value types: one ``ParsedPaper`` per listing, one ``ParsedDump`` per file.

They are frozen so the store and the renderers can share them without defensive copies.
"""

from __future__ import annotations

import datetime
from dataclasses import MISSING, dataclass, field, fields, make_dataclass


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


# A frozen dataclass's __init__ sets every field through object.__setattr__, 21 calls: about
# 2 us a paper, a sixth of parsing a large card dump. A plain slotted twin with the same slots
# in the same order is filled with ordinary attribute stores instead, then made a ParsedPaper
# (CPython lets an object change class between types of the same layout). The result is a
# ParsedPaper like any other: equal, hashable, frozen.
_Unfrozen = make_dataclass(
    "_Unfrozen",
    [
        (f.name, f.type) if f.default is MISSING else (f.name, f.type, field(default=f.default))
        for f in fields(ParsedPaper)
    ],
    slots=True, eq=False, repr=False, match_args=False,
)
assert _Unfrozen.__slots__ == ParsedPaper.__slots__  # type: ignore[attr-defined]


def text_paper(
    title: str,
    abstract: str,
    authors_count: int | None,
    organization_id: str | None,
    organization: str | None,
    published: datetime.date | None,
    upvotes: int | None,
    links: tuple[str, ...],
    line: int,
) -> ParsedPaper:
    """``ParsedPaper(...)`` of a text layout's fields, the others left empty, built faster."""
    paper = _Unfrozen(
        title, abstract, authors_count, organization_id, organization, published, upvotes,
        links, line,
    )
    paper.__class__ = ParsedPaper
    return paper  # type: ignore[return-value]  # a ParsedPaper now


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
