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
from typing import Literal

from digestd.gcpause import collector_paused
from digestd.parse.card_blocks import (
    AUTHORS_RE,
    HEADER_INITIALS,
    HEADER_LINES,
    ORG_MAX_LEN,
    SEPARATORS,
    TITLE_MAX_LEN,
    Block,
    Meta,
    is_header_block,
    is_page_date_block,
    meta_start,
    read_meta,
)
from digestd.parse.text import (
    CLEAN_CHARS,
    MONTHS,
    YEAR_RANGE,
    collapse,
    collapse_normalized,
    extract_links,
    make_date,
    normalize_line,
    parse_count,
    parse_date_line,
)
from digestd.parse.types import ParsedDump, ParsedPaper, text_paper

NAME = "card"


#: header lines that only the card layout has, weighted for detection
_OWN_MARKERS = {"daily papers": 2, "byak and the research community": 2, "subscribe": 1, "new": 1}
_SHARED_MARKER = "get trending papers in your email inbox!"
#: how many lines detection looks at; the header and the first papers are well inside
_SNIFF_LINES = 400

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
        elif AUTHORS_RE.fullmatch(line) or (
            line in SEPARATORS
            and index + 1 < len(head)
            and parse_date_line(head[index + 1]) is not None
        ):
            metadata += 1
    return score + 3 * min(metadata, 10)


@dataclass(slots=True)
class _Draft:
    title: Block
    abstract: list[Block] = field(default_factory=list)
    meta: Meta | None = None


def parse(
    lines: list[str], *, capture_year: int | None, whole_papers: bool = True
) -> ParsedDump:
    """Parse normalised lines of a card dump (`whole_papers`: see `_items`)."""
    return parse_text("\n".join(lines), capture_year=capture_year, whole_papers=whole_papers)


def parse_text(
    text: str, *, capture_year: int | None, whole_papers: bool = True
) -> ParsedDump:
    """Parse a card dump's text, its lines ended by LF only (`unify_line_ends`).

    Lines are normalised (`normalize_line`) as they are read; the papers taken whole are
    those whose lines normalisation leaves as they are.
    """
    # The parse builds only acyclic objects that live until the dump is stored.
    with collector_paused():
        pos, index, page_date = _skip_header(text)
        years: list[int] = []
        drafts = _group(_items(text, pos, index, years, whole_papers))
        year = _capture_year(drafts, years, capture_year)
        page_md: tuple[int, int] | None = None
        if page_date is not None:
            page_line = parse_date_line(page_date)
            if page_line is not None:
                page_md = (page_line.month, page_line.day)
        papers = tuple([
            draft if type(draft) is ParsedPaper else _finish(draft, year, page_md)
            for draft in drafts
        ])
    return ParsedDump(layout=NAME, page_date=page_date, capture_year=year, papers=papers)


def _line(text: str, pos: int) -> tuple[str, int]:
    """The normalised line that starts at `pos`, and where the next one starts."""
    end = text.find("\n", pos)
    if end < 0:
        end = len(text)
    return normalize_line(text[pos:end]), end + 1


def _skip_header(text: str) -> tuple[int, int, str | None]:
    """Offset and index of the first content line, and the page date if the header shows one."""
    page_date: str | None = None
    pos = index = 0
    while pos <= len(text):
        raw, after = _line(text, pos)
        line = collapse(raw)
        if line and line.casefold() not in HEADER_LINES:
            # The page date is a bare date; with upvotes it would be a metadata line.
            date = parse_date_line(line) if page_date is None else None
            if date is None or date.upvotes is not None:
                return pos, index, page_date
            page_date = line
        pos, index = after, index + 1
    return pos, index, page_date


# The usual paper, whole: a one-line title, a one-line abstract, then the three-line metadata
# block (author count or organisation, separator, date), blank-line separated. Matched in one
# pass over the text, it needs no per-line work; anything else (wrapped titles, short or
# split abstracts, glued, garbled or missing metadata, headers, lines that normalisation would
# change) fails the match and goes through the block-by-block reading below. A paper without
# metadata is taken whole only where the next block certainly opens another paper. The
# pattern is stricter than that reading, never looser: what it accepts, the blocks would have
# read the same way (the tests compare the two).
# Optional parts are written "(?:X|)", not "(?:X)?": the same matches, but re runs an
# alternation without the bookkeeping of a repeat (an eighth of the pattern's time).
_DATE_SHAPE = r"[A-Za-z]{3,9}\.?[^\S\n]+\d{1,2}(?:,[^\S\n]*\d{4}|)(?:[^\S\n]+\d+(?:\.\d+|)[kK]?|)"
_NOT_DATE = r"(?!" + _DATE_SHAPE + r"(?:\n|\Z))"
# a line at least this long is never metadata, and normalisation leaves it that long: nothing
# for it to change up to a character that is no blank, at that length or further on (not only
# right at it: one abstract in six has a space there)
_LONG_LINE = (
    r"\S[^\n" + CLEAN_CHARS + r"]{" + str(ORG_MAX_LEN - 1) + r"}[^\n" + CLEAN_CHARS + r"]*?"
    r"[^\s" + CLEAN_CHARS + r"]"
)
_PAPER_RE = re.compile(
    # the title: opens with a letter, is no date line, ends in no blank
    _NOT_DATE + r"(?P<title>[A-Za-z](?:[^\n]*\S|))\n\n+"
    # the abstract: longer than any metadata line
    r"(?P<abstract>\S[^\n]{" + str(ORG_MAX_LEN - 1) + r",}\S)(?:\n\n+(?:"
    # the metadata: author count or organisation, separator, date
    r"(?:[ ]*(?:[•·*\-][ ]*|)(?P<authors>[0-9]+)[ ]+(?i:authors?)"
    r"|(?P<org>\w[\w.\-]*(?:[^\S\n]+\S[^\n]*|)))\n"
    r"[·•⋅∙]\n"
    r"(?P<month>[A-Za-z]{3,9})\.?[ ]+(?P<day>[0-9]{1,2})(?:,[ ]*(?P<year>[0-9]{4})|)"
    r"(?:[ ]+(?P<upvotes>[0-9]+(?:\.[0-9]+|)[kK]?)|)"
    r"(?:\n\n+|\n?\Z)"
    # or none, when what follows opens the next paper for certain: a title (short, ending no
    # sentence, nothing in it for normalisation to change) then a block that cannot be
    # metadata (its first line is long)
    r"|(?=" + _NOT_DATE + r"[A-Za-z](?:[^\n" + CLEAN_CHARS + r"]{0," + str(TITLE_MAX_LEN - 2)
    + r"}[^\s." + CLEAN_CHARS + r"]|)\n\n+" + _LONG_LINE + r")"
    # or none at the end of the dump
    r")|\n?\Z)"
)
_HEADER_ASCII_INITIALS = frozenset(
    HEADER_INITIALS | {c.upper() for c in HEADER_INITIALS if c.isascii()}
)

#: a paper read whole by _PAPER_RE: title, abstract, line, authors count, organisation id and
#: name, and the date as (month, day, year or None, upvotes or None), or None without one
_Ready = tuple[str, str, int, int | None, str | None, str | None,
               tuple[int, int, int | None, int | None] | None]


#: control characters, the only unprintable ones an ASCII string can hold
_ASCII_CONTROLS = bytes([*range(0x20), 0x7F])

#: a dump's dates as written (month, day, year), read once each: the month, the day, the year
#: (None when missing or noise) and the date when the year is known; False for no month
_DateSeen = tuple[int, int, int | None, datetime.date | None] | Literal[False]


def _fast_paper(
    match: re.Match[str], line: int, dates: dict[tuple[str, str, str | None], _DateSeen],
    orgs: dict[str, tuple[str, str] | Literal[False]], years: list[int],
) -> ParsedPaper | _Ready | Literal[False] | None:
    """The paper `match` holds: finished when its date needs no capture year (its year then
    added to `years`), else to be finished once the dump's capture year is known; False when
    the block-by-block reading could differ. A dump repeats its dates and organisations:
    `dates` and `orgs` keep them read."""
    title, abstract, authors, org, month_name, day, year_text, upvotes = match.groups()
    # A printable line has no blank but the space, loses only trailing blanks to
    # normalisation (these have none) and, without a double space, nothing to collapse
    # either: it is its own normalised, collapsed text, too long for a header line.
    # str.isprintable looks every character up in the Unicode tables; an ASCII string is
    # printable when it has no control character, which bytes.translate finds 2-3x faster.
    if (
        "  " in abstract or "  " in title or not title.isprintable()
        or not (
            len(abstract.encode().translate(None, _ASCII_CONTROLS)) == len(abstract)
            if abstract.isascii() else abstract.isprintable()
        )
        or (title[0] in _HEADER_ASCII_INITIALS and title.casefold() in HEADER_LINES)
    ):
        return False
    # ":" is found with memchr, many times faster than "://"; most abstracts have neither
    links = extract_links(abstract) if ":" in abstract and "://" in abstract else ()
    if month_name is None:
        return text_paper(title, abstract, None, None, None, None, None, links, line)
    seen = dates.get((month_name, day, year_text))
    if seen is None:
        seen = dates[month_name, day, year_text] = _read_date(month_name, day, year_text)
    if seen is False:
        return False
    authors_count: int | None = None
    org_id = name = None
    if authors is not None:
        authors_count = int(authors)
    else:
        organisation = orgs.get(org)
        if organisation is None:
            organisation = orgs[org] = _read_org(org)
        if organisation is False:
            return False
        org_id, name = organisation
    month, day_number, year, published = seen
    if year is None:
        # yearless (or a year taken for noise): the dump's capture year decides
        return (
            title, abstract, line, authors_count, org_id, name,
            (month, day_number, None, None if upvotes is None else parse_count(upvotes)),
        )
    years.append(year)
    return text_paper(
        title, abstract, authors_count, org_id, name, published,
        None if upvotes is None else parse_count(upvotes), links, line,
    )


def _read_org(org: str) -> tuple[str, str] | Literal[False]:
    """An organisation line's id and name, False where the metadata reading could differ."""
    # It is read as one only when it is short, ends no sentence and is neither an author
    # count nor a date (which the metadata reading would take it for).
    if len(org) > ORG_MAX_LEN or org.endswith(".") or not org.isprintable():
        return False
    org = collapse(org)
    if AUTHORS_RE.fullmatch(org) or parse_date_line(org) is not None:
        return False
    org_id, _, name = org.partition(" ")
    return org_id, name.strip() or org_id


def _read_date(month_name: str, day: str, year_text: str | None) -> _DateSeen:
    month = MONTHS.get(month_name.casefold())
    if month is None:
        return False
    year = int(year_text) if year_text else None
    if year is None or year not in YEAR_RANGE:
        return (month, int(day), None, None)
    return (month, int(day), year, make_date(year, month, int(day)))


def _items(
    text: str, pos: int, index: int, years: list[int], whole_papers: bool = True
) -> list[Block | Meta | _Ready | ParsedPaper | None]:
    """The blocks from offset `pos` (line `index`) on, read: whole papers, text blocks,
    metadata, and None for a repeated header.

    Glued text is split off metadata blocks here, so the grouping only sees pure blocks. A
    whole paper is only taken where the grouping would open a new paper (at the start, or
    after metadata, a header or another whole paper). Without `whole_papers` every block is
    read line by line (the tests compare both). The explicit years of the papers finished
    here are added to `years`.
    """
    end = len(text)
    dates: dict[tuple[str, str, str | None], _DateSeen] = {}
    orgs: dict[str, tuple[str, str] | Literal[False]] = {}
    match = _PAPER_RE.match
    count = text.count
    items: list[Block | Meta | _Ready | ParsedPaper | None] = []
    append = items.append
    # whether the grouping would open a new paper with the next text block
    fresh = whole_papers
    while pos <= end:
        if fresh:
            found = match(text, pos)
            if found is not None:
                paper = _fast_paper(found, index + 1, dates, orgs, years)
                if paper is not False:
                    append(paper)
                    # the title and the abstract hold no line end, the gap between them
                    # nothing else: only what follows the abstract needs counting
                    after = found.end()
                    abstract_at, abstract_end = found.span(2)
                    index += abstract_at - found.end(1) + count("\n", abstract_end, after)
                    pos = after
                    continue
        # One block, read line by line, and the blank lines after it.
        first = index
        block: list[str] = []
        while pos <= end:
            line, after = _line(text, pos)
            if not line:
                break
            block.append(line)
            pos, index = after, index + 1
        while pos <= end:
            line, after = _line(text, pos)
            if line:
                break
            pos, index = after, index + 1
        if not block:
            continue
        if is_header_block(block):
            # Dumps concatenated with cat repeat the header mid-file; it ends the paper
            # before it and must not become one.
            append(None)
            fresh = whole_papers
            continue
        if items and items[-1] is None and is_page_date_block(block):
            continue
        meta_at = meta_start(block)
        if meta_at is None:
            append(Block(first + 1, block))
            fresh = False
            continue
        if meta_at > 0:
            append(Block(first + 1, block[:meta_at]))
        append(read_meta(block[meta_at:]))
        fresh = whole_papers
    return items


def _group(
    items: list[Block | Meta | _Ready | ParsedPaper | None],
) -> list[_Ready | ParsedPaper]:
    """Group read blocks into papers: title, abstract block(s), optional metadata."""
    drafts: list[_Draft | _Ready | ParsedPaper] = []
    current: _Draft | None = None
    for index, item in enumerate(items):
        if type(item) is ParsedPaper or type(item) is tuple:
            # a whole paper: read where a new one would open, so nothing before it is open
            drafts.append(item)
            current = None
            continue
        if item is None:
            current = None
            continue
        if isinstance(item, Meta):
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
    return [_ready(draft) if type(draft) is _Draft else draft for draft in drafts]


def _ready(draft: _Draft) -> _Ready:
    meta = draft.meta or Meta()
    date = meta.date
    title = draft.title.lines
    return (
        title[0] if len(title) == 1 else " ".join(title),
        _joined(draft.abstract),
        draft.title.line,
        meta.authors_count,
        meta.organization_id,
        meta.organization,
        None if date is None else (date.month, date.day, date.year, date.upvotes),
    )


def _looks_like_title(block: Block) -> bool:
    # Titles are short and do not end a sentence; a title wrapped over lines still qualifies.
    total = sum(len(line) for line in block.lines)
    return total <= TITLE_MAX_LEN and not block.lines[-1].endswith(".")


def _is_meta_next(items: list[Block | Meta | None], index: int) -> bool:
    return index + 1 < len(items) and isinstance(items[index + 1], Meta)


def _capture_year(
    papers: list[_Ready | ParsedPaper], years: list[int], fallback: int | None
) -> int:
    """One more than the latest explicit year: the page writes a year only for other years.

    `years` holds those of the finished papers; the others carry theirs.
    """
    years = years + [
        paper[6][2] for paper in papers
        if type(paper) is tuple and paper[6] is not None and paper[6][2] is not None
    ]
    if years:
        return max(years) + 1
    if fallback is not None:
        return fallback
    return datetime.date.today().year


def _finish(paper: _Ready, capture_year: int, page_md: tuple[int, int] | None) -> ParsedPaper:
    title, abstract, line, authors_count, organization_id, organization, date = paper
    published: datetime.date | None = None
    upvotes: int | None = None
    if date is not None:
        month, day, year, upvotes = date
        if year is None:
            year = capture_year
            # The page lists recent papers: a yearless day after the page's own day is from
            # the year before, not from the future.
            if page_md is not None and (month, day) > page_md:
                year -= 1
        published = make_date(year, month, day)
    abstract = collapse_normalized(abstract)
    return ParsedPaper(
        collapse_normalized(title), abstract, authors_count, organization_id, organization,
        published, upvotes, extract_links(abstract), line,
    )


def _joined(blocks: list[Block]) -> str:
    if len(blocks) == 1:
        lines = blocks[0].lines
        # the usual abstract, one line: no copy of a string thousands of characters long
        return lines[0] if len(lines) == 1 else " ".join(lines)
    return " ".join([line for block in blocks for line in block.lines])
