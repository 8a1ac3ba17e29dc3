"""Reading one block of a card dump line by line: is it a header, metadata (and from which
line), and what the metadata says. `digestd.parse.card` groups the blocks into papers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from digestd.parse.text import DateLine, collapse, parse_date_line

HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "get trending papers in your email inbox once a day!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
HEADER_LONGEST = max(map(len, HEADER_LINES))
HEADER_PREFIX = 4 * HEADER_LONGEST
HEADER_INITIALS = frozenset(line[0] for line in HEADER_LINES)
SEPARATORS = frozenset({"·", "•", "⋅", "∙"})
AUTHORS_RE = re.compile(r"(?:[•·*-]\s*)?(\d+)\s+authors?", re.IGNORECASE)
# "<org-id> <Org Name>": the id is a slug. Long lines are prose, not an organisation.
ORG_RE = re.compile(r"[\w][\w.\-]*(?:\s+\S.*)?")
ORG_MAX_LEN = 120
# A block after an abstract is taken for a new title only if it could be one; a long or
# sentence-ending paragraph is the abstract going on.
TITLE_MAX_LEN = 300


@dataclass(slots=True)
class Block:
    line: int  # 1-based line of the block's first line
    lines: list[str]


@dataclass(slots=True)
class Meta:
    authors_count: int | None = None
    organization_id: str | None = None
    organization: str | None = None
    date: DateLine | None = None


def meta_start(lines: list[str]) -> int | None:
    """Where the metadata of a block begins, or None when the block is plain text.

    Usually the whole block is metadata (index 0); a later index means text was glued on top
    of it without a blank line, and that text is handed back to the title/abstract grouping.
    """
    for index, raw in enumerate(lines):
        # Prose (metadata lines are short), or a line opening with a letter: neither an author
        # count nor a separator can, so the strip and the regex are not needed.
        if len(raw) > ORG_MAX_LEN or raw[0].isalpha():
            continue
        line = raw.strip()
        if AUTHORS_RE.fullmatch(line):
            return index
        if line in SEPARATORS:
            if index > 0 and could_open_meta(lines[index - 1]):
                return index - 1
            return index
    # No separator and no author count: a block ending in a date line is still metadata
    # when it is short ("Org Name" then "Mar 5"), e.g. the "·" line was lost.
    if len(lines) <= 2 and len(lines[-1]) <= ORG_MAX_LEN and parse_date_line(lines[-1]):
        if len(lines) == 2 and not could_open_meta(lines[0]):
            return 1
        return 0
    return None


def could_open_meta(line: str) -> bool:
    line = line.strip()
    if AUTHORS_RE.fullmatch(line):
        return True
    return len(line) <= ORG_MAX_LEN and not line.endswith(".") and bool(ORG_RE.fullmatch(line))


def read_meta(lines: list[str]) -> Meta:
    meta = Meta()
    after_separator = False
    for raw in lines:
        line = collapse(raw)
        if not line:
            continue
        if line in SEPARATORS:
            after_separator = True
            continue
        authors = AUTHORS_RE.fullmatch(line)
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


def is_header_line(line: str) -> bool:
    # Most blocks are abstracts whose first line is thousands of characters long; collapsing
    # only a prefix tells them apart (the collapsed prefix is a prefix of the collapsed line,
    # so if it is already longer than every header line, so is the whole).
    if len(line) > HEADER_PREFIX and len(collapse(line[:HEADER_PREFIX])) > HEADER_LONGEST:
        return False
    return collapse(line).casefold() in HEADER_LINES


def is_header_block(lines: list[str]) -> bool:
    for line in lines:
        # Nearly every block is told apart by its first character: a header line's first
        # non-blank character folds to the first letter of one of the header lines.
        first = line[0]
        if not first.isspace() and first.casefold()[0] not in HEADER_INITIALS:
            return False
        if not is_header_line(line):
            return False
    return True


def is_page_date_block(lines: list[str]) -> bool:
    if len(lines) != 1:
        return False
    date = parse_date_line(lines[0])
    return date is not None and date.upvotes is None
