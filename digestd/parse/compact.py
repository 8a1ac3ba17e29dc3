"""The compact layout (seed 004): one line per title, the next line its abstract, nothing else.

    Get trending papers in your email inbox once a day!
    Get trending papers in your email inbox!
    SubscribeDense Reward for Free in ...        <- first title glued to the header word
    Reinforcement Learning from Human Feedback (RLHF) has been ...
    <title>
    <abstract>

There are no dates, authors or organisations; blank lines, if any, are ignored. This module
owns the header stripping and the title/abstract pairing.
"""

from __future__ import annotations

from collections.abc import Sequence

from digestd.parse.text import collapse, collapse_normalized, extract_links
from digestd.parse.types import ParsedDump, ParsedPaper

NAME = "compact"

_HEADER_LINES = frozenset(
    {
        "get trending papers in your email inbox once a day!",
        "get trending papers in your email inbox!",
        "subscribe",
    }
)
_OWN_MARKER = "get trending papers in your email inbox once a day!"
_SHARED_MARKER = "get trending papers in your email inbox!"
_HEADER_MAX_LEN = max(len(line) for line in _HEADER_LINES)
_GLUED = "Subscribe"
#: the header is at the top; detection does not need to look further
_SNIFF_LINES = 20


def sniff(lines: Sequence[str]) -> int:
    """How strongly the text looks like a compact dump (0: not at all)."""
    score = 0
    for raw in lines[:_SNIFF_LINES]:
        line = collapse(raw)
        folded = line.casefold()
        if folded == _OWN_MARKER:
            score += 3
        elif folded == _SHARED_MARKER:
            score += 1
        elif _unglue(line) is not None:
            score += 3
    return score


def _unglue(line: str) -> str | None:
    """The title glued to "Subscribe" ("SubscribeDense Reward" -> "Dense Reward"), or None."""
    if line.startswith(_GLUED) and len(line) > len(_GLUED) and not line[len(_GLUED)].isspace():
        # A real title starting "Subscriber..." stays whole: the glued title starts a new word.
        rest = line[len(_GLUED) :]
        if not rest[0].islower():
            return rest
    return None


def parse(lines: list[str], *, capture_year: int | None) -> ParsedDump:
    """Parse normalised lines of a compact dump; ``capture_year`` is unused (no dates)."""
    del capture_year
    papers: list[ParsedPaper] = []
    title: str | None = None
    title_line = 0
    in_header = True
    for index, raw in enumerate(lines):
        if not raw:  # lines are right-stripped: blank lines are empty
            continue
        line = collapse_normalized(raw)
        if not line:
            continue
        if len(line) <= _HEADER_MAX_LEN and line.casefold() in _HEADER_LINES:
            # Dumps concatenated with cat repeat the header mid-file; a title still waiting
            # for its abstract there was the last line of the previous dump.
            if title is not None:
                papers.append(_paper(title, "", title_line))
                title = None
            in_header = True
            continue
        if in_header:
            in_header = False
            unglued = _unglue(line)
            if unglued is not None:
                line = unglued
        if title is None:
            title, title_line = line, index + 1
            continue
        papers.append(_paper(title, line, title_line))
        title = None
    if title is not None:
        # A last title without its abstract is still a listing; keep it rather than lose it.
        papers.append(_paper(title, "", title_line))
    return ParsedDump(layout=NAME, page_date=None, capture_year=None, papers=tuple(papers))


def _paper(title: str, abstract: str, line: int) -> ParsedPaper:
    return ParsedPaper(
        title=title,
        abstract=abstract,
        authors_count=None,
        organization_id=None,
        organization=None,
        published=None,
        upvotes=None,
        links=extract_links(abstract),
        line=line,
    )
