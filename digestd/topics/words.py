"""One part of a paper (the title, the abstract, another field) cut into words: :class:`FieldWords`.

The text is cut into clauses and words and each word stemmed once (or its kept words read
back, see .packed). A part answers most questions with substring operations done in C: its
stems joined into one string (:attr:`FieldWords.joined`) in which a phrase is a substring, and
its words lower-cased into another (:attr:`FieldWords.lowered`) in which a prefix is. Word
positions, and the verbatim pieces of text to highlight, are looked up only when asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from digestd.topics.extension import helpers
from digestd.topics.stem import WORD_RE, split_words, surface_stems, surface_word
from digestd.topics.syntax import Element

__all__ = ["FieldWords", "prefix_pattern", "stem_pattern"]


# Between the words of one matched phrase, these characters keep the phrase a single highlight
# ("Text-to-Image", "KV cache", "2.4x"); anything else, such as the ")" in "(KV) Cache", splits
# it into one highlight per piece, so that every highlight is a verbatim substring of the text.
_JOINER_RE = re.compile(r"[\s\-‐‑–—/.·]*")


# Sentence and clause punctuation: a full stop, comma, semicolon, colon, "!", "?" or an
# ellipsis followed by a space, a closing quote or bracket, or the end. A phrase never spans
# one: "inference. Efficiency" is not the phrase "inference efficiency". Inside a token
# ("2.4x", "1,000", "e.g") the same characters join words as before.
_CLAUSE_END = r"[.,;:!?…]+(?=[\s\"'’”)\]]|$)"
_CLAUSE_RE = re.compile(_CLAUSE_END)


def _clause_words(text: str) -> tuple[list[str], frozenset[int]]:
    """The words of ``text`` and the indexes of those that start a new clause.

    The text is cut at clause punctuation first and each piece split into words: the pieces'
    words put together are the text's words (the punctuation separates words anyway), so
    cutting costs no second pass over the text.
    """
    pieces = _CLAUSE_RE.split(text)
    if len(pieces) == 1:
        return split_words(text), frozenset()
    words: list[str] = []
    starts: list[int] = []
    for piece in pieces[:-1]:
        words += split_words(piece)
        starts.append(len(words))
    words += split_words(pieces[-1])
    return words, frozenset(starts)


def stem_pattern(stems: Sequence[str]) -> str:
    """A phrase of stems (or one stem) as a substring of :attr:`FieldWords.joined`."""
    return " " + "  ".join(stems) + " "


def prefix_pattern(prefix: str) -> str:
    """A word prefix as a substring of :attr:`FieldWords.lowered`."""
    return " " + prefix


def _joined(stems: list[str], breaks: frozenset[int]) -> str:
    """The stems, each between two spaces, and "|" between two clauses: " a  b  |  c ".

    A phrase is then a substring (" a  b "), which never runs across a clause, and
    ``str.count`` counts a stem's occurrences: no two can share a character.
    """
    if breaks:
        # a "|" word where each clause starts, then one join
        stems = stems.copy()
        for at in sorted(breaks, reverse=True):
            stems.insert(at, "|")
    return " " + "  ".join(stems) + " "


def _lowered(line: str) -> str:
    """The words lower-cased as prefixes see them, each after a space: a prefix is " token".

    ``line`` is the words as written joined by spaces. Lower-casing it is lower-casing each
    word (a space is no letter, so even a Greek final sigma comes out the same); only the
    few words with an apostrophe need their own treatment (see .stem.normalise).
    """
    line = line.lower()
    at = _apostrophe(line, 0)
    if at < 0:
        return " " + line
    pieces = [" "]
    start = 0
    while at >= 0:
        begin = line.rfind(" ", start, at) + 1
        end = line.find(" ", at)
        if end < 0:
            end = len(line)
        pieces += (line[start:begin], surface_word(line[begin:end]))
        start = end
        at = _apostrophe(line, end)
    pieces.append(line[start:])
    return "".join(pieces)


def _apostrophe(line: str, start: int) -> int:
    """Where the next apostrophe of either kind is, or -1."""
    plain, curly = line.find("'", start), line.find("’", start)
    if plain < 0 or 0 <= curly < plain:
        return curly
    return plain


class FieldWords:
    """The words of one part of a paper (title or abstract), with lazily built indexes.

    ``stems`` is made at once; the other attributes when first read (see ``__getattr__``):
    most papers match few topics, and most terms only need the stems.
    """

    __slots__ = (
        "_at", "_surfaces_line", "breaks", "joined", "lowered", "stems", "surfaces", "text",
        "words",
    )

    def __init__(
        self, text: str, prepared: tuple[list[str], list[str], frozenset[int]] | None = None
    ) -> None:
        self.text = text
        #: the words as written, and the word indexes that start a clause: no phrase may run
        #: across one
        if prepared is None:
            if helpers.cut is None:
                self.surfaces, self.breaks = _clause_words(text)
            else:
                # the same words and clause starts, cut in one pass in C
                self.surfaces, starts = helpers.cut(text)
                self.breaks = frozenset(starts)
            self.stems: list[str] = surface_stems(self.surfaces)
        else:
            # made from this text earlier and kept (see .packed): the same lists
            self.surfaces, self.stems, self.breaks = prepared
        self._surfaces_line: str | None = None
        self._at: dict[str, list[int]] | None = None

    @classmethod
    def kept(cls, text: str, surfaces: str, joined: str) -> FieldWords:
        """The words of ``text`` from kept lines (see .packed): the words as written joined by
        spaces, and :attr:`joined`, from which the stems and clause breaks are read back
        only when asked for (matching mostly asks the joined line itself)."""
        words = object.__new__(cls)
        words.text = text
        words.joined = joined
        words._surfaces_line = surfaces
        words._at = None
        return words

    def _split_joined(self) -> None:
        """The stems and clause breaks of a kept :attr:`joined` line: its tokens are the stems
        with "|" where a clause starts, two spaces apart (see _joined)."""
        stems = self.joined[1:-1].split("  ")
        breaks: list[int] = []
        at = 0
        for _ in range(stems.count("|")):
            # with the marks before it taken out, a mark's index is the stem it comes before
            at = stems.index("|", at)
            breaks.append(at)
            del stems[at]
        if not self._surfaces_line:
            stems = []  # no words: "  " is no word of an empty stem
        object.__setattr__(self, "stems", stems)
        object.__setattr__(self, "breaks", frozenset(breaks))

    def __getattr__(self, name: str) -> object:
        # called only for a slot not set yet: build it once
        value: object
        if name in ("stems", "breaks") and self._surfaces_line is not None:
            self._split_joined()
            return object.__getattribute__(self, name)
        if name == "surfaces":
            value = self._surfaces_line.split(" ") if self.stems else []
        elif name == "joined":
            value = _joined(self.stems, self.breaks)
        elif name == "lowered":
            line = self._surfaces_line
            value = _lowered(" ".join(self.surfaces)) if line is None else _lowered(line)
        elif name == "words":
            #: the words lower-cased, as prefixes see them (not stemmed)
            value = list(map(surface_word, self.surfaces))
        else:
            raise AttributeError(name)
        object.__setattr__(self, name, value)
        return value

    def _stem_positions(self, stem: str) -> list[int]:
        """The word indexes where ``stem`` occurs, looked up once per stem.

        list.count and list.index scan in C; a paper is asked about the stems of the terms it
        may match, far fewer than its words, and a map of every stem costs a Python loop.
        """
        at = self._at
        if at is None:
            at = self._at = {}
        found = at.get(stem)
        if found is None:
            stems = self.stems
            found = at[stem] = []
            i = -1
            for _ in range(stems.count(stem)):
                i = stems.index(stem, i + 1)
                found.append(i)
        return found

    def follows(self, stem: str, prefix: str) -> bool:
        """Whether a word starting with ``prefix`` comes right after ``stem`` in one clause:
        the phrase ``"stem prefix*"``. The words starting with the prefix are found in
        :attr:`lowered` one at a time (a substring search each, no word list made), the stem
        before each checked, and the clause breaks read only for a word that has it."""
        lowered = self.lowered
        pattern = prefix_pattern(prefix)
        at = lowered.find(pattern)
        if at < 0:
            return False
        stems = self.stems
        index = last = 0
        while at >= 0:
            # a word's index is the number of spaces before it (see _prefix_positions)
            index += lowered.count(" ", last, at)
            last = at
            if index and stems[index - 1] == stem and index not in self.breaks:
                return True
            at = lowered.find(pattern, at + 1)
        return False

    def positions(self, element: Element) -> list[int]:
        """Word indexes where one phrase element (a stem, or a word prefix) occurs.

        The list may be shared: callers read it, never change it.
        """
        text, is_prefix = element
        if is_prefix:
            return self._prefix_positions(text)
        return self._stem_positions(text)

    def _prefix_positions(self, prefix: str) -> list[int]:
        """The word indexes of the words starting with ``prefix``, found in :attr:`lowered`:
        a word's index is the number of spaces before it."""
        lowered = self.lowered
        pattern = prefix_pattern(prefix)
        found: list[int] = []
        index = last = 0
        at = lowered.find(pattern)
        while at >= 0:
            index += lowered.count(" ", last, at)
            found.append(index)
            last = at
            at = lowered.find(pattern, at + 1)
        return found

    def find(self, elements: Sequence[Element]) -> list[int]:
        """Start indexes of every occurrence of the word sequence ``elements``."""
        starts = self.positions(elements[0])
        if len(elements) == 1 or not starts:
            return starts
        stems = self.stems
        last = len(stems) - len(elements)
        breaks = self.breaks
        if len(elements) == 2:
            # the usual phrase with a prefix ("reasoning model*"): one test per start
            text, is_prefix = elements[1]
            if not is_prefix:
                return [
                    start
                    for start in starts
                    if start <= last and stems[start + 1] == text and start + 1 not in breaks
                ]
            surfaces = self.surfaces
            return [
                start
                for start in starts
                if start <= last
                and surface_word(surfaces[start + 1]).startswith(text)
                and start + 1 not in breaks
            ]
        # a prefix looks at the lower-case word, made only for the positions looked at
        surfaces = self.surfaces
        return [
            start
            for start in starts
            if start <= last
            and (not breaks or breaks.isdisjoint(range(start + 1, start + len(elements))))
            and all(
                surface_word(surfaces[start + offset]).startswith(text)
                if is_prefix
                else stems[start + offset] == text
                for offset, (text, is_prefix) in enumerate(elements[1:], 1)
            )
        ]

    def highlights(self, starts: list[int], length: int) -> list[tuple[int, str]]:
        """``(start, piece)`` for every occurrence of a term: the verbatim text to highlight.

        A phrase occurrence is one piece when its words are joined by spaces or hyphens
        ("Text-to-Image") and several when other characters split it ("(KV) Cache").
        """
        surfaces = self.surfaces
        if length == 1:
            return [(start, surfaces[start]) for start in starts]
        # Word offsets are not kept (finding them costs as much as tokenising); instead each
        # distinct spelling of the phrase is looked up in the text, whose matches come in the
        # same order as the occurrences.
        by_spelling: dict[tuple[str, ...], list[int]] = {}
        for start in starts:
            by_spelling.setdefault(tuple(surfaces[start : start + length]), []).append(start)
        result: list[tuple[int, str]] = []
        for spelling, spelled_starts in by_spelling.items():
            found = _phrase_pattern(spelling).findall(self.text)
            if len(found) != len(spelled_starts):  # cannot happen; keep highlights verbatim
                found = found[: len(spelled_starts)]
            for start, text in zip(spelled_starts, found, strict=False):
                result.extend((start, piece) for piece in _pieces(text))
        return result


# what may stand between two words of one phrase occurrence: anything but a word character
# or clause punctuation (see _CLAUSE_END)
_SEPARATOR = rf"(?:(?!{_CLAUSE_END})[\W_])+"


@lru_cache(maxsize=4096)
def _phrase_pattern(spelling: tuple[str, ...]) -> re.Pattern[str]:
    # The words as spelled, separated by anything that is not a word, and not inside a word.
    # The pattern starts with the first word itself (the "not inside a word" test before it is
    # a fixed-width look-behind placed after it) so that the regex engine can jump from one
    # occurrence of that word to the next instead of trying every position.
    first = len(spelling[0])
    return re.compile(
        re.escape(spelling[0])
        + rf"(?<![^\W_][\s\S]{{{first}}})(?<![^\W_]['’][\s\S]{{{first}}})"
        + "".join(_SEPARATOR + re.escape(word) for word in spelling[1:])
        + r"(?![^\W_])(?!['’][^\W_])"
    )


def _pieces(phrase: str) -> list[str]:
    spans = [m.span() for m in WORD_RE.finditer(phrase)]
    pieces: list[str] = []
    piece_start, piece_end = spans[0]
    for begin, end in spans[1:]:
        if not _JOINER_RE.fullmatch(phrase, piece_end, begin):
            pieces.append(phrase[piece_start:piece_end])
            piece_start = begin
        piece_end = end
    pieces.append(phrase[piece_start:piece_end])
    return pieces
