"""Layout detection and dispatch: ``parse_dump`` normalises the text, asks every registered
layout how well it matches, and hands the lines to the best one.

A new layout is one module with ``NAME``, ``sniff(lines) -> int`` and
``parse(lines, *, capture_year) -> ParsedDump``, plus one line in ``LAYOUTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from digestd.errors import DumpFormatError
from digestd.parse import card, compact
from digestd.parse.text import normalize_lines
from digestd.parse.types import ParsedDump


class LayoutParser(Protocol):
    def __call__(self, lines: list[str], *, capture_year: int | None) -> ParsedDump: ...


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    #: 0 when the text is not in this layout, higher the surer
    sniff: Callable[[Sequence[str]], int]
    #: gets the lines of ``normalize_lines``; index + 1 is the line number
    parse: LayoutParser


LAYOUTS: tuple[Layout, ...] = (
    Layout(card.NAME, card.sniff, card.parse),
    Layout(compact.NAME, compact.sniff, compact.parse),
)

# A single shared header line ("Get trending papers ...") scores 1 for several layouts; it
# takes a layout's own marker or a metadata block to be sure.
_MIN_SCORE = 3


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
    lines = normalize_lines(text)
    if not any(lines):
        # Only characters that normalisation drops (zero-width, controls).
        raise DumpFormatError("empty dump (no printable text); check the capture", path=path)
    layout = detect_layout(lines)
    if layout is None:
        raise DumpFormatError(
            "no known listing layout (expected the card or compact layout)", path=path
        )
    return layout.parse(lines, capture_year=capture_year)
