"""Matching papers against topics.

A paper is prepared once as a :class:`Document` (its words cut and stemmed) and then matched
against every compiled topic; that split is what makes matching tens of thousands of papers
against dozens of topics cheap. The query language itself lives in :mod:`.query`.

A topic's ``min_score`` drops the papers that match its query with a lower score.

Scoring, the same for every topic: each matched query term scores 3 points per occurrence in
the title and 1 point per occurrence in the abstract, counting at most 2 occurrences of each
term in each part. A title hit therefore outranks any number of abstract mentions of the same
term, and a paper that hits more different terms ranks higher.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, pairwise
from typing import NamedTuple

from digestd.errors import QueryError
from digestd.topics.query import CompiledQuery, Element, compile_query
from digestd.topics.stem import (
    PREFIXES,
    WORD_RE,
    PrefixCache,
    split_words,
    surface_stem,
    surface_word,
)

__all__ = [
    "CompiledTopic",
    "Document",
    "FieldWords",
    "TopicDefinition",
    "TopicMatch",
    "compile_topics",
    "match_document",
    "match_paper",
    "paper_document",
]

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


class FieldWords:
    """The words of one part of a paper (title or abstract), with lazily built indexes."""

    __slots__ = ("_at", "_words", "breaks", "stem_set", "stems", "surfaces", "text")

    def __init__(
        self, text: str, prepared: tuple[list[str], list[str], frozenset[int]] | None = None
    ) -> None:
        self.text = text
        #: the words as written, and the word indexes that start a clause: no phrase may run
        #: across one
        if prepared is None:
            self.surfaces, self.breaks = _clause_words(text)
            self.stems: list[str] = list(map(surface_stem, self.surfaces))
        else:
            # made from this text earlier and kept (see .packed): the same lists
            self.surfaces, self.stems, self.breaks = prepared
        #: the stems as a set: the quick test before looking for positions
        self.stem_set = frozenset(self.stems)
        # built on first use: most papers match few topics, and most terms only need the
        # document's stem set
        self._words: list[str] | None = None
        self._at: dict[str, list[int]] | None = None

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

    def has_pair(self, first: str, second: str) -> bool:
        """Whether the stem ``second`` follows ``first`` within one clause."""
        stems = self.stems
        last = len(stems) - 1
        breaks = self.breaks
        for i in self._stem_positions(first):
            if i < last and stems[i + 1] == second and (i + 1) not in breaks:
                return True
        return False

    def bigrams(self) -> set[tuple[str, str]]:
        """Every pair of adjacent stems within one clause."""
        stems = self.stems
        if not self.breaks:
            return set(pairwise(stems))
        # clause by clause, so that pairwise does the work in C
        pairs: set[tuple[str, str]] = set()
        start = 0
        for end in sorted(self.breaks):
            pairs.update(pairwise(stems[start:end]))
            start = end
        pairs.update(pairwise(stems[start:]))
        return pairs

    @property
    def words(self) -> list[str]:
        """The words lower-cased, as prefixes see them (not stemmed)."""
        if self._words is None:
            self._words = list(map(surface_word, self.surfaces))
        return self._words

    def positions(self, element: Element) -> list[int]:
        """Word indexes where one phrase element (a stem, or a word prefix) occurs.

        The list may be shared: callers read it, never change it.
        """
        text, is_prefix = element
        if is_prefix:
            return PREFIXES.cache_for(text).positions(self.surfaces, text)
        if text not in self.stem_set:
            return []
        return self._stem_positions(text)

    def find(self, elements: Sequence[Element]) -> list[int]:
        """Start indexes of every occurrence of the word sequence ``elements``."""
        starts = self.positions(elements[0])
        if len(elements) == 1 or not starts:
            return starts
        stems = self.stems
        # a prefix looks at the lower-case word, made only for the positions looked at
        surfaces = self.surfaces
        last = len(stems) - len(elements)
        breaks = self.breaks
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


class Occurrences(NamedTuple):
    """How often one term occurs in a paper, and where: ``(word index, verbatim piece)``."""

    in_title: int
    in_abstract: int
    title: list[tuple[int, str]]
    abstract: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Document:
    """A paper prepared once for matching against many topics.

    ``Document(title, abstract)`` and :meth:`from_text` are the same; the word indexes are
    derived from the two texts, and two documents are equal when their texts are. ``extra``
    holds the text of any other registered field (see .fields) as ``(name, text)`` pairs.
    """

    title: str
    abstract: str
    extra: tuple[tuple[str, str], ...] = ()
    title_field: FieldWords = field(init=False, compare=False, repr=False)
    abstract_field: FieldWords = field(init=False, compare=False, repr=False)
    #: every stem of the title and abstract: the fast test for single-word terms
    stems: frozenset[str] = field(init=False, compare=False, repr=False)
    # the registered prefixes the paper's words start with, and the PREFIXES cache they come
    # from; filled on first use (in a list because the dataclass is frozen)
    _prefix_hits: list[tuple[PrefixCache, frozenset[str]]] = field(
        init=False, compare=False, repr=False
    )

    # term elements -> Occurrences, and -> where the term starts in the title and in the
    # abstract, shared by all the topics matched against this paper
    _occurrences: dict[tuple[Element, ...], Occurrences] = field(
        init=False, compare=False, repr=False
    )
    _starts: dict[tuple[Element, ...], tuple[list[int], list[int]]] = field(
        init=False, compare=False, repr=False
    )
    # field name -> its words, for the fields other than title and abstract, built on first use
    _fields: dict[str, FieldWords] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._prepare(FieldWords(self.title), FieldWords(self.abstract))

    @classmethod
    def prepared(
        cls, title_field: FieldWords, abstract_field: FieldWords,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> Document:
        """A document whose title and abstract words were made already (see .packed)."""
        doc = object.__new__(cls)
        object.__setattr__(doc, "title", title_field.text)
        object.__setattr__(doc, "abstract", abstract_field.text)
        object.__setattr__(doc, "extra", extra)
        doc._prepare(title_field, abstract_field)
        return doc

    def _prepare(self, title_field: FieldWords, abstract_field: FieldWords) -> None:
        object.__setattr__(self, "title_field", title_field)
        object.__setattr__(self, "abstract_field", abstract_field)
        stems = title_field.stem_set | abstract_field.stem_set
        object.__setattr__(self, "stems", stems)
        object.__setattr__(self, "_prefix_hits", [])
        object.__setattr__(self, "_occurrences", {})
        object.__setattr__(self, "_starts", {})
        object.__setattr__(self, "_fields", {"title": title_field, "abstract": abstract_field})

    @classmethod
    def from_text(cls, title: str | None, abstract: str | None, **extra: str | None) -> Document:
        """Prepare a paper; a missing title, abstract or other field counts as empty."""
        return cls(
            title or "", abstract or "", tuple(sorted((k, v or "") for k, v in extra.items()))
        )

    def field_words(self, name: str) -> FieldWords:
        """The words of one field by name; a field the paper has no text for is empty."""
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = FieldWords(dict(self.extra).get(name, ""))
        return found

    def in_field(self, name: str, elements: Sequence[Element]) -> bool:
        """Whether the word sequence ``elements`` occurs in the field ``name``."""
        return bool(self.field_words(name).find(elements))

    def field_occurrences(
        self, name: str, elements: Sequence[Element]
    ) -> tuple[int, list[tuple[int, str]]]:
        """How often a term occurs in one field, and the verbatim pieces to highlight."""
        words = self.field_words(name)
        starts = words.find(elements)
        return len(starts), words.highlights(starts, len(elements))

    def has_prefix(self, prefix: str) -> bool:
        """Whether any word of the paper starts with ``prefix`` (already lower case)."""
        cache = PREFIXES.cache_for(prefix)
        cached = self._prefix_hits
        if not cached or cached[0][0] is not cache:
            words = chain(self.title_field.surfaces, self.abstract_field.surfaces)
            cached[:] = [(cache, cache.hits(words))]
        return prefix in cached[0][1]

    def starts(self, elements: tuple[Element, ...]) -> tuple[list[int], list[int]]:
        """Where a term starts in the title and in the abstract (word indexes)."""
        found = self._starts.get(elements)
        if found is None:
            found = self._starts[elements] = (
                self.title_field.find(elements),
                self.abstract_field.find(elements),
            )
        return found

    def occurrences(self, elements: tuple[Element, ...]) -> Occurrences:
        """Every occurrence of a term in the title and in the abstract, with its text."""
        found = self._occurrences.get(elements)
        if found is None:
            size = len(elements)
            title, abstract = self.title_field, self.abstract_field
            in_title, in_abstract = self.starts(elements)
            found = Occurrences(
                len(in_title),
                len(in_abstract),
                title.highlights(in_title, size),
                abstract.highlights(in_abstract, size),
            )
            self._occurrences[elements] = found
        return found

    @property
    def bigrams(self) -> set[tuple[str, str]]:
        """Every pair of adjacent stems within one clause of the title or the abstract."""
        return self.title_field.bigrams() | self.abstract_field.bigrams()

    def has_pair(self, first: str, second: str) -> bool:
        """Whether the two-word phrase of these stems occurs in the title or the abstract."""
        return self.title_field.has_pair(first, second) or self.abstract_field.has_pair(
            first, second
        )

    def has_phrase(self, elements: Sequence[Element]) -> bool:
        """Whether the word sequence ``elements`` occurs in the title or the abstract."""
        return bool(self.title_field.find(elements) or self.abstract_field.find(elements))


@dataclass(frozen=True)
class TopicDefinition:
    """A topic as the configuration holds it.

    ``slug`` is lower-case letters, digits and hyphens (see :data:`SLUG_RE`); checking it is
    the configuration's job, as is refusing two topics with one slug.
    """

    slug: str
    name: str
    description: str
    query: str
    #: a paper whose score is under this is not in the topic ("one mention in passing is not
    #: enough": 2 needs two abstract mentions or a title hit)
    min_score: float = 0.0


#: what a topic slug looks like: "llm-inference", "rl", "3d-vision"
SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class CompiledTopic:
    definition: TopicDefinition
    query: CompiledQuery

    @property
    def slug(self) -> str:
        return self.definition.slug


@dataclass(frozen=True)
class TopicMatch:
    """One topic a paper matches, with why: the query terms and the paper's words."""

    slug: str
    score: float
    #: the query terms that matched, as the user wrote them, in query order
    terms: tuple[str, ...]
    #: verbatim pieces of the title, then of the abstract, to highlight; no duplicates
    highlights: tuple[str, ...]


def compile_topics(defs: Iterable[TopicDefinition]) -> list[CompiledTopic]:
    """Compile every topic's query; a syntax error names the topic."""
    compiled: list[CompiledTopic] = []
    for definition in defs:
        try:
            query = compile_query(definition.query)
        except QueryError as exc:
            raise QueryError(
                f"topic {definition.slug!r}: {exc.reason}",
                query=exc.query,
                position=exc.position,
            ) from exc
        compiled.append(CompiledTopic(definition=definition, query=query))
    return compiled


def match_document(doc: Document, topics: Sequence[CompiledTopic]) -> list[TopicMatch]:
    """The topics ``doc`` matches, best score first (ties keep the order of ``topics``)."""
    matches: list[TopicMatch] = []
    for topic in topics:
        found = topic.query.match(doc, topic.definition.min_score)
        if found is None or found.score < topic.definition.min_score:
            continue
        highlights = tuple(dict.fromkeys(found.title_terms + found.abstract_terms))
        matches.append(
            TopicMatch(
                slug=topic.definition.slug,
                score=found.score,
                terms=found.terms,
                highlights=highlights,
            )
        )
    matches.sort(key=lambda m: -m.score)
    return matches


def match_paper(
    title: str, abstract: str, topics: Sequence[CompiledTopic], **fields: str
) -> list[TopicMatch]:
    """Match one paper against ``topics``; see :func:`match_document`.

    ``fields`` is the text of the paper's other fields (``author``, ``org``, ``category``, list
    values separated by "; "). Its ``keywords`` are searched like the abstract, by plain words:
    a topic about "reward models" finds a paper tagged with them.
    """
    return match_document(paper_document(title, abstract, **fields), topics)


def paper_document(title: str, abstract: str, **fields: str) -> Document:
    """A paper's :class:`Document` with its other fields; see :func:`match_paper`."""
    abstract, extra = paper_texts(abstract, fields)
    return Document.from_text(title, abstract, **extra)


def paper_texts(abstract: str, fields: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The abstract as matched (with the keywords after it) and the other fields."""
    extra = dict(fields)
    keywords = extra.pop("keywords", None)
    if keywords:
        abstract = f"{abstract}\n{keywords}" if abstract else keywords
    return abstract, extra
