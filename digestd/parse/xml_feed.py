"""Reading an Atom or RSS document with feedparser, for the arXiv formats built on it.

feedparser is lenient: a truncated file still gives the entries before the cut. A dump that
is cut off or malformed is refused instead (its missing tail would go unnoticed), except for
undefined entities, which feedparser's loose parser reads correctly.
"""

from __future__ import annotations

import datetime
import time
import xml.sax
from typing import Any

import feedparser

from digestd.errors import DumpFormatError
from digestd.parse.arxiv_ids import (
    abs_url,
    categories,
    clean_text,
    pdf_url,
    short_text,
    split_arxiv_id,
    web_url,
)

#: the text was decoded already; this header makes feedparser ignore a stale XML declaration
_HEADERS = {"content-type": "application/xml; charset=utf-8"}
_MAX_ENTRIES = 1_000_000


def read_feed(text: str, *, path: str | None, what: str) -> Any:
    """The feedparser result of ``text``; DumpFormatError when the XML is broken."""
    try:
        result = feedparser.parse(
            text.encode("utf-8", "surrogatepass"), response_headers=_HEADERS
        )
    except Exception as exc:  # feedparser's strict parser trips over some broken namespaces
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise DumpFormatError(f"{what}: unreadable XML ({cause})", path=path) from exc
    exc = result.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException) and "undefined entity" not in str(exc):
        raise DumpFormatError(
            f"{what}: malformed or truncated XML at line {exc.getLineNumber()} column "
            f"{exc.getColumnNumber()}: {exc.getMessage()}",
            path=path,
        )
    if not result.get("version") and not result.entries:
        raise DumpFormatError(f"{what}: neither an Atom nor an RSS document", path=path)
    return result


def entries(result: Any) -> list[Any]:
    return list(result.entries[:_MAX_ENTRIES])


def date_of(entry: Any, *names: str) -> datetime.date | None:
    """The first of the entry's parsed dates (``published_parsed``...) that exists."""
    for name in names:
        # dict.get: the entry's own key only. feedparser's get would answer a missing
        # updated_parsed with published_parsed, a fallback it deprecates (with a warning)
        value = dict.get(entry, name)
        if isinstance(value, time.struct_time):
            try:
                return datetime.date(value.tm_year, value.tm_mon, value.tm_mday)
            except ValueError:
                continue
    return None


def entry_categories(entry: Any) -> tuple[str, ...]:
    """The primary category first, then the entry's other categories."""
    found: list[str] = []
    primary = entry.get("arxiv_primary_category")
    if isinstance(primary, dict) and isinstance(primary.get("term"), str):
        found.append(primary["term"])
    for tag in entry.get("tags") or ():
        if isinstance(tag, dict) and isinstance(tag.get("term"), str):
            found.append(tag["term"])
    return categories(found)


def arxiv_links(arxiv_id: str | None, entry: Any) -> tuple[tuple[str, str], ...]:
    """abs and pdf links of an arXiv entry (versionless), plus the DOI when given."""
    links: list[tuple[str, str]] = []
    if arxiv_id:
        links += [("abs", abs_url(arxiv_id)), ("pdf", pdf_url(arxiv_id))]
    doi = short_text(entry.get("arxiv_doi"))
    if doi and " " not in doi:
        links.append(("doi", f"https://doi.org/{doi}"))
    return tuple(links)


def entry_id(entry: Any) -> tuple[str, int | None] | None:
    """The arXiv id and version of an entry: from its id, else its links."""
    for candidate in (entry.get("id"), entry.get("link")):
        found = split_arxiv_id(candidate) if isinstance(candidate, str) else None
        if found:
            return found
    for link in entry.get("links") or ():
        href = link.get("href") if isinstance(link, dict) else None
        found = split_arxiv_id(href) if isinstance(href, str) else None
        if found:
            return found
    return None


def entry_title(entry: Any) -> str:
    return clean_text(entry.get("title"))


def entry_url(value: Any) -> str | None:
    return web_url(value)
