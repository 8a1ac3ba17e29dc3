"""arXiv API responses: the Atom that ``export.arxiv.org/api/query`` returns.

    <feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom"
          xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
      <opensearch:totalResults>...</opensearch:totalResults>
      <entry>
        <id>http://arxiv.org/abs/2509.01234v2</id>
        <published>...</published> <updated>...</updated>
        <title>...</title> <summary>...</summary>
        <author><name>...</name></author>...
        <arxiv:primary_category term="cs.CL"/> <category term="cs.CL"/>...
        <link rel="alternate" href=".../abs/..."/> <link title="pdf" href=".../pdf/..."/>
        <arxiv:comment>...</arxiv:comment> <arxiv:doi>...</arxiv:doi>
      </entry>
    </feed>

An error response is one entry whose id is ``.../api/errors#...``: the dump fails with its
message. Entries without an arXiv id or a title are skipped with their cause.
"""

from __future__ import annotations

from typing import Any

from digestd.errors import DumpFormatError
from digestd.parse.arxiv_ids import clean_text, names
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

NAME = "arxiv-api"
_WHAT = "arXiv API response"


def sniff(head: str) -> int:
    """How strongly the start of the text looks like an API response (0: not at all)."""
    if not head.startswith("<") or "<feed" not in head:
        return 0
    score = 2
    score += 3 * ("opensearch" in head or "arxiv.org/api" in head)
    score += 2 * ("arxiv.org/schemas/atom" in head)
    score -= 4 * ("announce_type" in head or "Announce Type" in head)
    return max(score, 1)


def parse(text: str, *, path: str | None = None) -> ParsedDump:
    result = read_feed(text, path=path, what=_WHAT)
    papers: list[ParsedPaper] = []
    skipped: list[str] = []
    items = entries(result)
    for index, entry in enumerate(items, 1):
        raw_id = entry.get("id")
        if isinstance(raw_id, str) and "/api/errors" in raw_id:
            raise DumpFormatError(
                f"{_WHAT} is an error: {clean_text(entry.get('summary')) or raw_id}", path=path
            )
        paper = _paper(entry, index)
        if isinstance(paper, str):
            skipped.append(f"entry {index}: {paper}")
        else:
            papers.append(paper)
    if items and not papers:
        raise DumpFormatError(f"{_WHAT}: no readable entry ({skipped[0]})", path=path)
    return ParsedDump(
        layout=NAME, page_date=None, capture_year=None, papers=tuple(papers),
        skipped=tuple(skipped),
    )


def _paper(entry: Any, index: int) -> ParsedPaper | str:
    """The paper, or why the entry is skipped."""
    ident = entry_id(entry)
    if ident is None:
        return "no arXiv id"
    title = entry_title(entry)
    if not title:
        return "no title"
    arxiv_id, version = ident
    abstract = clean_text(entry.get("summary"))
    authors = names([a.get("name") for a in entry.get("authors") or () if isinstance(a, dict)])
    return ParsedPaper(
        title=title,
        abstract=abstract,
        authors_count=len(authors) or None,
        organization_id=None,
        organization=None,
        published=date_of(entry, "published_parsed", "updated_parsed"),
        upvotes=None,
        links=extract_links(abstract),
        line=index,
        arxiv_id=arxiv_id,
        arxiv_version=version,
        authors=authors,
        categories=entry_categories(entry),
        source_links=arxiv_links(arxiv_id, entry),
    )
