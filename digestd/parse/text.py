"""Helpers shared by every layout: decoding bytes, normalising text, URLs, dates, the paper key.

Nothing here knows a layout; the layout modules combine these pieces.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass

from digestd.errors import DumpFormatError, DumpReadError

# --------------------------------------------------------------------------- decoding

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Control bytes that never occur in a text dump. \t \n \r \f are excluded because editors and
# pagers do write them. The bytes are the same in UTF-8, cp1252 and latin-1, so counting them on
# the raw bytes is exact and avoids a pass over the decoded text.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
#: share of control bytes above which a file is taken for binary rather than damaged text
_BINARY_CONTROL_SHARE = 0.02


def decode_dump(data: bytes, *, path: str | None = None) -> str:
    """Decode a dump's bytes to text: UTF-8 (BOM stripped), else cp1252, else latin-1.

    Raises DumpReadError for binary data and DumpFormatError for an empty dump.
    """
    if data.startswith(_UTF16_BOMS):
        # UTF-16 text is full of NUL bytes; with a BOM it is unambiguous, so read it rather
        # than calling it binary.
        try:
            return _non_empty(data.decode("utf-16"), path)
        except UnicodeDecodeError as exc:
            raise DumpReadError(
                "starts with a UTF-16 byte order mark but is not valid UTF-16; "
                "re-save the dump as UTF-8",
                path=path,
            ) from exc
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if b"\x00" in data:
        raise DumpReadError("binary file (contains NUL bytes), not a text dump", path=path)
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls and controls > _BINARY_CONTROL_SHARE * len(data):
        raise DumpReadError(
            f"binary file ({controls} control bytes in {len(data)}), not a text dump", path=path
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            # A capture cut off inside its last character is still UTF-8; decoding it all
            # as cp1252 would garble every accent for the sake of one broken byte sequence.
            return _non_empty(data[: exc.start].decode("utf-8"), path)
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            # latin-1 maps every byte, so a dump is never refused for its encoding alone.
            text = data.decode("latin-1")
    return _non_empty(text, path)


def _non_empty(text: str, path: str | None) -> str:
    if not text or text.isspace():  # not text.strip(): that would copy a 100 MB dump
        raise DumpFormatError("empty dump (no text at all); check the capture", path=path)
    return text


# --------------------------------------------------------------------------- normalisation

# Zero-width characters, XML-forbidden C0 controls, U+FFFE/U+FFFF and lone surrogates cannot be
# rendered or written to a feed, so they are dropped; tabs, VT, FF and fixed-width or
# non-breaking spaces become plain spaces, so that lines made of them count as blank. One
# pattern does both because scanning a large dump is the dominant cost; the callback only runs
# on the (rare) hits.
CLEAN_CHARS = (
    "\x00-\x09\x0b\x0c\x0e-\x1f\xa0\u2007\u202f\u200b-\u200d\u2060\ufeff\ufffe\uffff\ud800-\udfff"
)
_CLEAN_RE = re.compile(f"[{CLEAN_CHARS}]")
_AS_SPACE = frozenset("\t\x0b\x0c\xa0\u2007\u202f")


def _clean(match: re.Match[str]) -> str:
    return " " if match.group() in _AS_SPACE else ""


def unify_line_ends(text: str) -> str:
    """CRLF and lone CR made LF: afterwards only LF ends a line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def normalize_line(line: str) -> str:
    """One line (no line end in it) as ``normalize_lines`` gives it."""
    return line.rstrip() if line.isprintable() else _CLEAN_RE.sub(_clean, line).rstrip()


def normalize_lines(text: str) -> list[str]:
    """Return the text's lines with line ends unified, odd blanks made spaces, right-stripped.

    Only LF, CRLF and lone CR end a line, so indexes into the result are line numbers - 1 of
    the original text.
    """
    text = unify_line_ends(text)
    # Every character the pattern touches is non-printable, so only lines that fail the C
    # isprintable() test go through the (several times slower) regex; the pattern never
    # touches "\n", so cleaning line by line is the same as cleaning the whole text.
    return [
        line.rstrip() if line.isprintable() else _CLEAN_RE.sub(_clean, line).rstrip()
        for line in text.split("\n")
    ]


def collapse(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends."""
    return " ".join(text.split())


def collapse_normalized(text: str) -> str:
    """``collapse`` for text made of ``normalize_lines`` lines joined by spaces.

    Such text holds no ASCII whitespace but the space, so an ASCII string without a double
    space only needs stripping; that skips a split and join per abstract, a third of the
    parse time of a large dump.
    """
    if text.isascii() and "  " not in text:
        return text.strip()
    return " ".join(text.split())


# --------------------------------------------------------------------------- links

# Braces, brackets and quotes end a URL: abstracts carry LaTeX residue such as
# "https://a/b{https://a/b}" and "https://a/b}.", which must give clean URLs.
_URL_RE = re.compile(r"""https?://[^\s<>"'{}\[\]\\^`|]+""", re.IGNORECASE)
_TRAILING_PUNCT = ".,;:!?*'\""


def extract_links(text: str) -> tuple[str, ...]:
    """The http(s) URLs in ``text`` in order, de-duplicated, without trailing punctuation."""
    if "://" not in text:  # most abstracts: skip the (much slower) regex scan
        return ()
    seen: dict[str, None] = {}
    for match in _URL_RE.finditer(text):
        url = _strip_url_tail(match.group())
        scheme_end = url.index("//") + 2
        if len(url) > scheme_end:  # a bare "https://" is no link
            seen.setdefault(url, None)
    return tuple(seen)


def _strip_url_tail(url: str) -> str:
    while url:
        last = url[-1]
        # A closing parenthesis is part of the URL only when it closes one opened inside it,
        # as in Wikipedia's "Foo_(bar)"; "(see https://x/y)" must lose it.
        unbalanced = last == ")" and url.count(")") > url.count("(")
        if last not in _TRAILING_PUNCT and not unbalanced:
            break
        url = url[:-1]
    return url


# --------------------------------------------------------------------------- dates

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}

# "Sep 3, 2025", "Mar 5", optionally followed by the upvote count ("Mar 5 2", "Sep 3, 2025 1.2k").
# The year always follows a comma, so a bare number after the day is the upvote count.
_DATE_RE = re.compile(
    r"(?P<month>[A-Za-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:,\s*(?P<year>\d{4}))?"
    r"(?:\s+(?P<upvotes>\d+(?:\.\d+)?[kK]?))?"
)
#: explicit years outside this range are treated as noise, not as dates
YEAR_RANGE = range(1900, 3000)


@dataclass(frozen=True, slots=True)
class DateLine:
    """A date as written, not yet validated: the year may be missing, the day may not exist."""

    month: int
    day: int
    year: int | None
    upvotes: int | None


def parse_date_line(line: str) -> DateLine | None:
    """Read a whole line as a date with optional upvotes; None when it is not one."""
    match = _DATE_RE.fullmatch(line.strip())
    if match is None:
        return None
    month = MONTHS.get(match["month"].casefold())
    if month is None:
        return None
    year = int(match["year"]) if match["year"] else None
    if year is not None and year not in YEAR_RANGE:
        year = None
    return DateLine(month, int(match["day"]), year, parse_count(match["upvotes"]))


def parse_count(text: str | None) -> int | None:
    if text is None:
        return None
    if text[-1] in "kK":
        return round(float(text[:-1]) * 1000)
    return int(float(text))


def make_date(year: int, month: int, day: int) -> datetime.date | None:
    """A valid date, or None (Feb 30 is no date)."""
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


# --------------------------------------------------------------------------- paper key


def paper_key(title: str) -> str:
    """The identity of a paper across dumps, derived from its title.

    NFKC (full-width and compatibility forms fold to plain ones), case-folded, and every
    character that is not a letter, combining mark or digit removed - not replaced by a space,
    so that "Pre-training" and "Pretraining", or "Text-to-Image" and "Text to Image", are one
    paper. A title made only of punctuation or symbols keeps its folded text instead of
    collapsing to an empty key that would merge unrelated papers.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", title).casefold())
    if folded.isascii():
        key = _ASCII_NON_ALNUM_RE.sub("", folded)
    else:
        key = "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LMN")
    return key or collapse(folded)


_ASCII_NON_ALNUM_RE = re.compile(r"[^a-z0-9]+")


def identity_key(title: str, arxiv_id: str | None) -> str:
    """The key a listing is known by: ``arxiv:<id>`` when it has an arXiv id, else its title's.

    Title keys hold only letters and digits (or no letter at all), so the two never collide.
    """
    return f"arxiv:{arxiv_id}" if arxiv_id else paper_key(title)
