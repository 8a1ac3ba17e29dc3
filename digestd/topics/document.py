"""A paper as the matcher reads it: a :class:`Document` of its parts' words.

A paper is prepared once (see .words for how each part is cut, .packed for its kept words);
every compiled topic then asks the document about its terms. Most questions are answered with
set and substring operations done in C: the stems as a set, and each part's joined stems.
Word positions are looked up only for the terms that explain a match, to highlight them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from digestd.topics.syntax import Element
from digestd.topics.words import FieldWords, prefix_pattern

__all__ = ["Document", "Occurrences"]


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
    #: every stem of the title and abstract: the fast test for single-word terms (made on
    #: first use from :attr:`stems_line` when the document has one)
    stems: frozenset[str] = field(init=False, compare=False, repr=False)
    #: the same stems sorted and joined by spaces, when read from kept words (see .packed),
    #: or None: the C evaluator searches it by halves instead of building the set
    stems_line: str | None = field(init=False, compare=False, repr=False)
    #: the title's and the abstract's :attr:`FieldWords.joined`, one after the other: a phrase
    #: of stems occurs in the paper when it is a substring (made on first use)
    joined: str = field(init=False, compare=False, repr=False)
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
        extra: tuple[tuple[str, str], ...] = (), stems: frozenset[str] | None = None,
        stems_line: str | None = None,
    ) -> Document:
        """A document whose title and abstract words were made already (see .packed), and
        its :attr:`stems` if known, or its :attr:`stems_line` (distinct non-empty stems,
        sorted, joined by single spaces)."""
        doc = object.__new__(cls)
        object.__setattr__(doc, "title", title_field.text)
        object.__setattr__(doc, "abstract", abstract_field.text)
        object.__setattr__(doc, "extra", extra)
        doc._prepare(title_field, abstract_field, stems, stems_line)
        return doc

    def _prepare(
        self, title_field: FieldWords, abstract_field: FieldWords,
        stems: frozenset[str] | None = None, stems_line: str | None = None,
    ) -> None:
        object.__setattr__(self, "title_field", title_field)
        object.__setattr__(self, "abstract_field", abstract_field)
        object.__setattr__(self, "stems_line", stems_line)
        if stems_line is None:
            if stems is None:
                stems = frozenset(title_field.stems).union(abstract_field.stems)
            object.__setattr__(self, "stems", stems)
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
        pattern = prefix_pattern(prefix)
        return pattern in self.title_field.lowered or pattern in self.abstract_field.lowered

    def __getattr__(self, name: str) -> object:
        # called only for a slot not set yet
        value: object
        if name == "joined":
            value = self.title_field.joined + "|" + self.abstract_field.joined
        elif name == "stems" and self.stems_line is not None:
            value = frozenset(self.stems_line.split(" "))
        else:
            raise AttributeError(name)
        object.__setattr__(self, name, value)
        return value

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

    def followed_by(self, stem: str, prefix: str) -> bool:
        """Whether the word after some occurrence of ``stem`` in one clause of the title or
        the abstract starts with ``prefix``: the phrase ``"stem prefix*"``, the commonest
        with a prefix (``"language model*"``)."""
        title = self.title_field
        # most titles lack the stem: a look at their few stems skips the substring searches
        if stem in title.stems and title.follows(stem, prefix):
            return True
        return self.abstract_field.follows(stem, prefix)

    def has_phrase(self, elements: tuple[Element, ...]) -> bool:
        """Whether the word sequence ``elements`` occurs in the title or the abstract."""
        # both parts, through the cache: a phrase that is there is counted next
        in_title, in_abstract = self.starts(elements)
        return bool(in_title or in_abstract)


