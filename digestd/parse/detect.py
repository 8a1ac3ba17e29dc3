"""Format detection and dispatch, from the content alone (never the file name).

Structured formats first: text whose first character is ``[`` or ``{`` is JSON, ``<`` is
XML; each structured format's ``sniff(head)`` scores the first few kilobytes and the best one
parses the whole text. Anything else is a text layout: ``parse_dump`` normalises the lines,
asks every registered layout how well it matches, and hands the lines to the best one.

A new text layout is one module with ``NAME``, ``sniff(lines) -> int`` and
``parse(lines, *, capture_year) -> ParsedDump``, plus one line in ``LAYOUTS``; a structured
format has ``sniff(head: str) -> int`` and ``parse(text, *, path) -> ParsedDump`` and goes in
``FORMATS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from digestd.errors import DumpFormatError
from digestd.parse import arxiv_api, arxiv_listing, card, compact, hf_json
from digestd.parse.text import normalize_lines, unify_line_ends
from digestd.parse.types import ParsedDump


class LayoutParser(Protocol):
    def __call__(self, lines: list[str], *, capture_year: int | None) -> ParsedDump: ...


class TextLayoutParser(Protocol):
    def __call__(self, text: str, *, capture_year: int | None) -> ParsedDump: ...


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    #: 0 when the text is not in this layout, higher the surer
    sniff: Callable[[Sequence[str]], int]
    #: gets the lines of ``normalize_lines``; index + 1 is the line number
    parse: LayoutParser
    #: the same from the text itself (LF line ends), for a layout that reads it faster so
    parse_text: TextLayoutParser | None = None


LAYOUTS: tuple[Layout, ...] = (
    Layout(card.NAME, card.sniff, card.parse, card.parse_text),
    Layout(compact.NAME, compact.sniff, compact.parse),
)

class FormatParser(Protocol):
    def __call__(self, text: str, *, path: str | None = None) -> ParsedDump: ...


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    #: 0 when the text is not in this format, higher the surer; gets the text's first bytes
    sniff: Callable[[str], int]
    parse: FormatParser


FORMATS: tuple[Format, ...] = (
    Format(hf_json.NAME, hf_json.sniff, hf_json.parse),
    Format(arxiv_listing.NAME, arxiv_listing.sniff, arxiv_listing.parse),
    Format(arxiv_api.NAME, arxiv_api.sniff, arxiv_api.parse),
)
#: how much of the text the structured formats look at: namespaces and the first entry
_HEAD_CHARS = 8192
_LEADING_SPACE_RE = re.compile(r"\s*")


def detect_format(text: str) -> Format | None:
    """The structured format the text claims by its first character, or None for text."""
    start = _LEADING_SPACE_RE.match(text).end()  # type: ignore[union-attr]
    head = text[start : start + _HEAD_CHARS]
    if not head.startswith(("[", "{", "<")):
        return None
    best: Format | None = None
    best_score = 0
    for fmt in FORMATS:
        score = fmt.sniff(head)
        if score > best_score:
            best, best_score = fmt, score
    return best


# A single shared header line ("Get trending papers ...") scores 1 for several layouts; it
# takes a layout's own marker or a metadata block to be sure.
_MIN_SCORE = 3
#: lines detection reads: more than any layout's sniff looks at
_HEAD_LINES = 400


def detect_layout(lines: Sequence[str]) -> Layout | None:
    """The best matching layout, or None. Ties go to the layout registered first."""
    best: Layout | None = None
    best_score = _MIN_SCORE - 1
    for layout in LAYOUTS:
        score = layout.sniff(lines)
        if score > best_score:
            best, best_score = layout, score
    return best


def parse_dump(
    text: str, *, path: str | None = None, capture_year: int | None = None
) -> ParsedDump:
    """Parse a dump's text into papers.

    ``capture_year`` is used for yearless dates only when the dump shows no explicit year to
    infer it from; without it the current year is assumed. Raises DumpFormatError for empty
    text or an unknown layout.
    """
    if not text or text.isspace():  # not text.strip(): that would copy a 100 MB dump
        raise DumpFormatError("empty dump (no text at all); check the capture", path=path)
    start = _LEADING_SPACE_RE.match(text).end()  # type: ignore[union-attr]
    if text.startswith(("[", "{", "<"), start):
        fmt = detect_format(text)
        if fmt is None:
            kind = "XML" if text.startswith("<", start) else "JSON"
            raise DumpFormatError(
                f"{kind}, but not a known source (expected Hugging Face daily papers JSON, "
                "an arXiv API response or an arXiv listing feed)",
                path=path,
            )
        return fmt.parse(text, path=path)
    text = unify_line_ends(text)
    # Detection reads only the first lines: normalise those, and the rest only for a layout
    # that reads lines rather than text.
    head_end = -1
    for _ in range(_HEAD_LINES):
        head_end = text.find("\n", head_end + 1)
        if head_end < 0:
            break
    head = normalize_lines(text if head_end < 0 else text[:head_end])
    if not any(head) and (head_end < 0 or not any(normalize_lines(text))):
        # Only characters that normalisation drops (zero-width, controls).
        raise DumpFormatError("empty dump (no printable text); check the capture", path=path)
    layout = detect_layout(head)
    if layout is None:
        raise DumpFormatError(
            "no known listing layout (expected the card or compact layout)", path=path
        )
    if layout.parse_text is not None:
        return layout.parse_text(text, capture_year=capture_year)
    return layout.parse(normalize_lines(text), capture_year=capture_year)
