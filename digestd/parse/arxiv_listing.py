"""arXiv listing feeds: the per-category RSS 2.0 and Atom of ``rss.arxiv.org/{rss,atom}/<cat>``.

    <item>
      <title>...</title>
      <link>https://arxiv.org/abs/2509.01234</link>
      <description>arXiv:2509.01234v2 Announce Type: replace
    Abstract: ...</description>
      <guid isPermaLink="false">oai:arXiv.org:2509.01234v2</guid>
      <category>cs.CL</category> <category>cs.AI</category>
      <pubDate>Tue, 02 Sep 2025 00:00:00 -0400</pubDate>
      <arxiv:announce_type>replace</arxiv:announce_type>
      <dc:creator>Ada Lovelace, Alan Turing</dc:creator>
    </item>

The Atom variant carries the same fields in ``<entry>``. ``new`` and ``cross`` announce papers;
``replace`` and ``replace-cross`` announce a new version of a paper listed before: the store
updates a known paper with them and never makes them new papers.
"""

from __future__ import annotations

import re
from typing import Any

from digestd.errors import DumpFormatError
from digestd.parse.arxiv_ids import clean_text, names, split_arxiv_id
from digestd.parse.text import extract_links
from digestd.parse.types import ParsedDump, ParsedPaper
from digestd.parse.xml_feed import (
    arxiv_links,
    date_of,
    entries,
    entry_categories,
    entry_id,
    entry_title,
    read_feed,
)

NAME = "arxiv-listing"
_WHAT = "arXiv listing feed"
ANNOUNCE_TYPES = frozenset({"new", "cross", "replace", "replace-cross"})

# "arXiv:2509.01234v2 Announce Type: replace Abstract: ..." (after whitespace is collapsed)
_DESCRIPTION_RE = re.compile(
    r"(?:arXiv:(?P<id>\S+)\s+)?Announce Type:\s*(?P<type>[\w\-]+)\s*(?:Abstract:\s*)?",
    re.IGNORECASE,
)
# The listing feeds before 2024 ended titles with "(arXiv:2401.00001v1 [cs.CL] UPDATED)".
_OLD_TITLE_RE = re.compile(
    r"\s*\(arXiv:(?P<id>[^\s\]]+)\s*(?:\[[^\]]*\])?\s*(?P<updated>UPDATED)?\)\s*\.?$"
)
_AUTHOR_SPLIT_RE = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


def sniff(head: str) -> int:
    """How strongly the start of the text looks like a listing feed (0: not at all)."""
    if not head.startswith("<") or not ("<rss" in head or "<feed" in head or "<rdf" in head):
        return 0
    score = 2 + ("<rss" in head)
    score += 5 * ("announce_type" in head or "Announce Type" in head)
    score += 2 * ("arxiv.org" in head)
    return score


def parse(text: str, *, path: str | None = None) -> ParsedDump:
    result = read_feed(text, path=path, what=_WHAT)
    papers: list[ParsedPaper] = []
    skipped: list[str] = []
    items = entries(result)
    for index, entry in enumerate(items, 1):
        paper = _paper(entry, index)
        if isinstance(paper, str):
            skipped.append(f"item {index}: {paper}")
        else:
            papers.append(paper)
    if items and not papers:
        raise DumpFormatError(f"{_WHAT}: no readable item ({skipped[0]})", path=path)
    return ParsedDump(
        layout=NAME, page_date=None, capture_year=None, papers=tuple(papers),
        skipped=tuple(skipped),
    )


def _paper(entry: Any, index: int) -> ParsedPaper | str:
    title = entry_title(entry)
    announce = clean_text(entry.get("arxiv_announce_type")).casefold() or None
    ident = entry_id(entry)
    old_title = _OLD_TITLE_RE.search(title)
    if old_title:
        title = title[: old_title.start()].strip()
        ident = ident or split_arxiv_id(old_title["id"])
        announce = announce or ("replace" if old_title["updated"] else "new")
    description = clean_text(entry.get("summary") or entry.get("description"))
    head = _DESCRIPTION_RE.match(description)
    if head:
        announce = announce or head["type"].casefold()
        if head["id"]:
            ident = split_arxiv_id(head["id"]) or ident
        description = description[head.end() :]
    if ident is None:
        return "no arXiv id"
    if not title:
        return "no title"
    if announce is not None and announce not in ANNOUNCE_TYPES:
        return f"unknown announce type {announce[:40]!r}"
    arxiv_id, version = ident
    authors = _authors(entry)
    return ParsedPaper(
        title=title,
        abstract=description,
        authors_count=len(authors) or None,
        organization_id=None,
        organization=None,
        published=date_of(entry, "published_parsed", "updated_parsed"),
        upvotes=None,
        links=extract_links(description),
        line=index,
        arxiv_id=arxiv_id,
        arxiv_version=version,
        authors=authors,
        categories=entry_categories(entry),
        source_links=arxiv_links(arxiv_id, entry),
        announce=announce,
    )


def _authors(entry: Any) -> tuple[str, ...]:
    # dc:creator is one comma separated string; the Atom variant may list <author>s instead.
    raw: list[str] = []
    for author in entry.get("authors") or ():
        name = author.get("name") if isinstance(author, dict) else None
        if isinstance(name, str):
            raw.extend(_AUTHOR_SPLIT_RE.split(clean_text(name)))
    if not raw and isinstance(entry.get("author"), str):
        raw = _AUTHOR_SPLIT_RE.split(clean_text(entry["author"]))
    return names(raw)
