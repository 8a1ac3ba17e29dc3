"""The card layout (seeds 000-003): blank-line separated blocks, a metadata block per paper.

    new / Get trending papers in your email inbox! / Subscribe / Daily Papers /
    byAK and the research community / May 27            <- header, then the page date
    <title>
    <abstract>
      • 9 authors          or   <org-id> <Org Name>
    ·
    Sep 3, 2025 2          or   Mar 5   (yearless: the capture year)

Each of those is a block of its own. The metadata block may be missing, shortened or garbled;
a paper is never dropped for it. This module owns the block grouping, the metadata reading and
the resolution of yearless dates.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from digestd.gcpause import collector_paused
from digestd.parse.text import (
    DateLine,
    collapse,
    collapse_normalized,
    extract_links,
    make_date,
    parse_date_line,
)
from digestd.parse.types import ParsedDump, ParsedPaper

NAME = "card"

_HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "get trending papers in your email inbox once a day!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
_HEADER_LONGEST = max(map(len, _HEADER_LINES))
_HEADER_PREFIX = 4 * _HEADER_LONGEST
_HEADER_INITIALS = frozenset(line[0] for line in _HEADER_LINES)
#: header lines that only the card layout has, weighted for detection
_OWN_MARKERS = {"daily papers": 2, "byak and the research community": 2, "subscribe": 1, "new": 1}
_SHARED_MARKER = "get trending papers in your email inbox!"
#: how many lines detection looks at; the header and the first papers are well inside
_SNIFF_LINES = 400

_SEPARATORS = frozenset({"·", "•", "⋅", "∙"})
_AUTHORS_RE = re.compile(r"(?:[•·*-]\s*)?(\d+)\s+authors?", re.IGNORECASE)
# "<org-id> <Org Name>": the id is a slug. Long lines are prose, not an organisation.
_ORG_RE = re.compile(r"[\w][\w.\-]*(?:\s+\S.*)?")
_ORG_MAX_LEN = 120
# A block after an abstract is taken for a new title only if it could be one; a long or
# sentence-ending paragraph is the abstract going on.
_TITLE_MAX_LEN = 300


def sniff(lines: Sequence[str]) -> int:
    """How strongly the text looks like a card dump (0: not at all)."""
    score = 0
    seen: set[str] = set()
    metadata = 0
    head = lines[:_SNIFF_LINES]
    for index, raw in enumerate(head):
        line = collapse(raw).casefold()
        if line in _OWN_MARKERS and line not in seen:
            seen.add(line)
            score += _OWN_MARKERS[line]
        elif line == _SHARED_MARKER and line not in seen:
            seen.add(line)
            score += 1
        elif _AUTHORS_RE.fullmatch(line) or (
            line in _SEPARATORS
            and index + 1 < len(head)
            and parse_date_line(head[index + 1]) is not None
        ):
            metadata += 1
    return score + 3 * min(metadata, 10)


@dataclass(slots=True)
class _Block:
    line: int  # 1-based line of the block's first line
    lines: list[str]


@dataclass(slots=True)
class _Meta:
    authors_count: int | None = None
    organization_id: str | None = None
    organization: str | None = None
    date: DateLine | None = None


@dataclass(slots=True)
class _Draft:
    title: _Block
    abstract: list[_Block] = field(default_factory=list)
    meta: _Meta | None = None


def parse(lines: list[str], *, capture_year: int | None) -> ParsedDump:
    """Parse normalised lines of a card dump."""
    # The parse builds only acyclic objects that live until the dump is stored.
    with collector_paused():
        start, page_date = _skip_header(lines)
        drafts = _group(_items(lines, start))
        year = _capture_year(drafts, capture_year)
        page_md: tuple[int, int] | None = None
        if page_date is not None:
            page_line = parse_date_line(page_date)
            if page_line is not None:
                page_md = (page_line.month, page_line.day)
        papers = tuple(_finish(draft, year, page_md) for draft in drafts)
    return ParsedDump(layout=NAME, page_date=page_date, capture_year=year, papers=papers)


def _skip_header(lines: list[str]) -> tuple[int, str | None]:
    """Index of the first content line, and the page date if the header shows one."""
    page_date: str | None = None
    for index, raw in enumerate(lines):
        line = collapse(raw)
        if not line or line.casefold() in _HEADER_LINES:
            continue
        # The page date is a bare date; with upvotes it would be a metadata line.
        date = parse_date_line(line) if page_date is None else None
        if date is not None and date.upvotes is None:
            page_date = line
            continue
        return index, page_date
    return len(lines), page_date


def _meta_start(lines: list[str]) -> int | None:
    """Where the metadata of a block begins, or None when the block is plain text.

    Usually the whole block is metadata (index 0); a later index means text was glued on top
    of it without a blank line, and that text is handed back to the title/abstract grouping.
    """
    for index, raw in enumerate(lines):
        # Prose (metadata lines are short), or a line opening with a letter: neither an author
        # count nor a separator can, so the strip and the regex are not needed.
        if len(raw) > _ORG_MAX_LEN or raw[0].isalpha():
            continue
        line = raw.strip()
        if _AUTHORS_RE.fullmatch(line):
            return index
        if line in _SEPARATORS:
            if index > 0 and _could_open_meta(lines[index - 1]):
                return index - 1
            return index
    # No separator and no author count: a block ending in a date line is still metadata
    # when it is short ("Org Name" then "Mar 5"), e.g. the "·" line was lost.
    if len(lines) <= 2 and len(lines[-1]) <= _ORG_MAX_LEN and parse_date_line(lines[-1]):
        if len(lines) == 2 and not _could_open_meta(lines[0]):
            return 1
        return 0
    return None


def _could_open_meta(line: str) -> bool:
    line = line.strip()
    if _AUTHORS_RE.fullmatch(line):
        return True
    return len(line) <= _ORG_MAX_LEN and not line.endswith(".") and bool(_ORG_RE.fullmatch(line))


def _read_meta(lines: list[str]) -> _Meta:
    meta = _Meta()
    after_separator = False
    for raw in lines:
        line = collapse(raw)
        if not line:
            continue
        if line in _SEPARATORS:
            after_separator = True
            continue
        authors = _AUTHORS_RE.fullmatch(line)
        if authors:
            meta.authors_count = int(authors.group(1))
            continue
        date = parse_date_line(line)
        if date is not None:
            meta.date = date
            continue
        # The organisation stands where the author count would: first, before the separator.
        if (
            not after_separator
            and meta.date is None
            and meta.organization_id is None
            and meta.authors_count is None
        ):
            org_id, _, name = line.partition(" ")
            meta.organization_id = org_id
            meta.organization = name.strip() or org_id
        # Anything else (a garbled date, stray words) is dropped: the paper matters more.
    return meta


def _items(lines: list[str], start: int) -> list[_Block | _Meta | None]:
    """The blocks from `start` on, read: text blocks, metadata, and None for a repeated header.

    Glued text is split off metadata blocks here, so the grouping only sees pure blocks.
    """
    # Lines are right-stripped, so blank lines are empty strings; finding them in a
    # comprehension and slicing between them is several times faster than a per-line loop.
    blanks = [index for index in range(start, len(lines)) if not lines[index]]
    blanks.append(len(lines))
    items: list[_Block | _Meta | None] = []
    append = items.append
    first = start
    for blank in blanks:
        if blank == first:
            first = blank + 1
            continue
        block = lines[first:blank]
        number = first + 1
        first = blank + 1
        if _is_header_block(block):
            # Dumps concatenated with cat repeat the header mid-file; it ends the paper
            # before it and must not become one.
            append(None)
            continue
        if items and items[-1] is None and _is_page_date_block(block):
            continue
        meta_at = _meta_start(block)
        if meta_at is None:
            append(_Block(number, block))
            continue
        if meta_at > 0:
            append(_Block(number, block[:meta_at]))
        append(_read_meta(block[meta_at:]))
    return items


def _group(items: list[_Block | _Meta | None]) -> list[_Draft]:
    """Group read blocks into papers: title, abstract block(s), optional metadata."""
    drafts: list[_Draft] = []
    current: _Draft | None = None
    for index, item in enumerate(items):
        if item is None:
            current = None
            continue
        if isinstance(item, _Meta):
            if current is not None and current.meta is None:
                current.meta = item
            # Metadata with no paper before it (or a second one) describes nothing we keep.
            current = None
            continue
        if current is None:
            current = _Draft(item)
            drafts.append(current)
        elif not current.abstract:
            current.abstract.append(item)
        elif _looks_like_title(item) and not _is_meta_next(items, index):
            # The previous paper had no metadata; this block opens the next one. A title-like
            # block right before metadata is read as the abstract's last paragraph instead
            # ("Project page: https://..."): a paper listed without abstract is rarer.
            current = _Draft(item)
            drafts.append(current)
        else:
            current.abstract.append(item)
    return drafts


def _is_header_line(line: str) -> bool:
    # Most blocks are abstracts whose first line is thousands of characters long; collapsing
    # only a prefix tells them apart (the collapsed prefix is a prefix of the collapsed line,
    # so if it is already longer than every header line, so is the whole).
    if len(line) > _HEADER_PREFIX and len(collapse(line[:_HEADER_PREFIX])) > _HEADER_LONGEST:
        return False
    return collapse(line).casefold() in _HEADER_LINES


def _is_header_block(lines: list[str]) -> bool:
    for line in lines:
        # Nearly every block is told apart by its first character: a header line's first
        # non-blank character folds to the first letter of one of the header lines.
        first = line[0]
        if not first.isspace() and first.casefold()[0] not in _HEADER_INITIALS:
            return False
        if not _is_header_line(line):
            return False
    return True


def _is_page_date_block(lines: list[str]) -> bool:
    if len(lines) != 1:
        return False
    date = parse_date_line(lines[0])
    return date is not None and date.upvotes is None


def _looks_like_title(block: _Block) -> bool:
    # Titles are short and do not end a sentence; a title wrapped over lines still qualifies.
    total = sum(len(line) for line in block.lines)
    return total <= _TITLE_MAX_LEN and not block.lines[-1].endswith(".")


def _is_meta_next(items: list[_Block | _Meta | None], index: int) -> bool:
    return index + 1 < len(items) and isinstance(items[index + 1], _Meta)


def _capture_year(drafts: list[_Draft], fallback: int | None) -> int:
    """One more than the latest explicit year: the page writes a year only for other years."""
    latest: int | None = None
    for draft in drafts:
        date = draft.meta.date if draft.meta else None
        if date is not None and date.year is not None and (latest is None or date.year > latest):
            latest = date.year
    if latest is not None:
        return latest + 1
    if fallback is not None:
        return fallback
    return datetime.date.today().year


def _finish(draft: _Draft, capture_year: int, page_md: tuple[int, int] | None) -> ParsedPaper:
    meta = draft.meta or _Meta()
    published: datetime.date | None = None
    upvotes: int | None = None
    if meta.date is not None:
        date = meta.date
        upvotes = date.upvotes
        year = date.year
        if year is None:
            year = capture_year
            # The page lists recent papers: a yearless day after the page's own day is from
            # the year before, not from the future.
            if page_md is not None and (date.month, date.day) > page_md:
                year -= 1
        published = make_date(year, date.month, date.day)
    abstract = collapse_normalized(_joined(draft.abstract))
    title = draft.title.lines
    return ParsedPaper(
        title=collapse_normalized(title[0] if len(title) == 1 else " ".join(title)),
        abstract=abstract,
        authors_count=meta.authors_count,
        organization_id=meta.organization_id,
        organization=meta.organization,
        published=published,
        upvotes=upvotes,
        links=extract_links(abstract),
        line=draft.title.line,
    )


def _joined(blocks: list[_Block]) -> str:
    if len(blocks) == 1:
        lines = blocks[0].lines
        # the usual abstract, one line: no copy of a string thousands of characters long
        return lines[0] if len(lines) == 1 else " ".join(lines)
    return " ".join([line for block in blocks for line in block.lines])
