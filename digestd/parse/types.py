"""The parser's value types: one ``ParsedPaper`` per listing, one ``ParsedDump`` per file.

They are frozen so the store and the renderers can share them without defensive copies.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParsedPaper:
    """One paper as listed in a dump; every field but title and abstract may be unknown."""

    title: str
    abstract: str
    authors_count: int | None
    organization_id: str | None
    organization: str | None
    published: datetime.date | None
    upvotes: int | None
    #: http(s) URLs of the abstract, in order of appearance, without duplicates
    links: tuple[str, ...]
    #: 1-based line of the title in the dump text
    line: int


@dataclass(frozen=True, slots=True)
class ParsedDump:
    """Everything read from one dump, papers in listing order (duplicates kept)."""

    #: "card" or "compact"
    layout: str
    #: the page's own date as written ("May 27"); None when the layout has none
    page_date: str | None
    #: the year used for yearless dates; None when the layout has no dates
    capture_year: int | None
    papers: tuple[ParsedPaper, ...]
