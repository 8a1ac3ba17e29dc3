"""The topic query language: what a query means, compiled once to match many documents.

What a user writes (this text is also the reference for help messages)::

    kv cache                    both words, anywhere in the title or abstract (AND is implied)
    "speculative decoding"      the words next to each other, in this order
    kv-cache, text-to-image     a hyphenated word is the phrase "kv cache", "text to image"
    quantization OR pruning     either word
    diffusion NOT video         diffusion, but no paper that mentions video
    token*                      any word starting with "token": token, tokens, tokenizer
    title:cache                 the word in the title only; abstract:word in the abstract only
    title:"kv cache"            the phrase in the title only (title:token* works too)
    (agent OR agents) AND tool  parentheses group; NOT binds tightest, then AND, then OR,
                                so "a OR b AND c" means "a OR (b AND c)"

Rules, chosen so that a query behaves the way it reads:

- Matching is case-insensitive and on whole words: ``rag`` does not match "fragment".
  Words are runs of letters and digits; every other character separates words, in the query
  and in the paper alike, so ``gpt-4`` finds "GPT-4" and ``2.4x`` finds "2.4x".
- Words are stemmed (see :mod:`.stem`): ``model`` finds "models" and "modeling". In a quoted
  phrase every word is stemmed too, so ``"speculative decoding"`` also finds "Speculative
  Decode". A prefix such as ``token*`` is not stemmed: it matches the words as written.
  ``*`` may also end a word inside a phrase: ``"diffusion model*"``.
- ``AND``, ``OR`` and ``NOT`` are operators in any case (``or`` too): typing
  ``diffusion or flow`` and silently getting "all three words" would be a worse surprise than
  not being able to search for the bare word "or". Inside quotes every word is literal, so
  ``"trial and error"`` is a phrase; a hyphenated ``trial-and-error`` is too.
- A phrase never crosses sentence or clause punctuation: ``"inference efficiency"`` does not
  match "... inference. Efficiency ...", nor ``"code model*"`` "Code, models and ...". The
  punctuation is a full stop, comma, semicolon, colon, "!", "?" or an ellipsis followed by a
  space, a closing quote or bracket or the end; "2.4x" and "1,000" still read as one token.
- ``field:word`` and ``field:"a phrase"`` look in one field only; the fields are listed in
  :mod:`.fields` (``title``, ``abstract``, ``author``, ``org``, ``category``). An occurrence
  scores that field's points. A name before a colon that is not a field is an error, so a
  typo cannot silently search for words.
- A query has to look for something: ``NOT video`` alone, or ``diffusion OR NOT video``, would
  match papers that contain none of its words, and is refused.

Syntax errors raise :class:`~digestd.errors.QueryError` with the 0-based character offset in
``position``; positions written inside messages count from 1, like the one ``QueryError``
prints in front of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from digestd.errors import QueryError
from digestd.topics.evaluate import (
    ABSTRACT_POINTS,
    MAX_COUNTED,
    TITLE_POINTS,
    Hits,
    Points,
    anchor,
    collector,
    term_points,
)
from digestd.topics.native import program
from digestd.topics.normal import Every, Normal, Positive, Some, all_terms, normal_form, unanchored
from digestd.topics.syntax import (
    And,
    Element,
    Node,
    Not,
    Or,
    Term,
    explain,
    format_query_error,
    parse_query,
)

if TYPE_CHECKING:
    from digestd.topics.match import Document

# the syntax tree and the parser live in .syntax; they are re-exported here, where the
# language is described
# the points per occurrence (TITLE_POINTS, ...) are defined with the points functions in
# .evaluate and re-exported here, where the scoring is described
__all__ = [
    "ABSTRACT_POINTS",
    "MAX_COUNTED",
    "TITLE_POINTS",
    "And",
    "CompiledQuery",
    "Element",
    "Node",
    "Not",
    "Or",
    "QueryMatch",
    "Term",
    "compile_query",
    "format_query_error",
    "parse_query",
]



@dataclass(frozen=True)
class QueryMatch:
    """Why a paper matches a query."""

    #: see the module docstring of .match: 3 per title occurrence, 1 per abstract occurrence
    score: float
    #: the matched query terms as written (``KV cache``, ``token*``), in query order
    terms: tuple[str, ...]
    #: verbatim pieces of the title that matched, for highlighting, in text order; None when
    #: the match was made without them (see :meth:`CompiledQuery.match`)
    title_terms: tuple[str, ...] | None
    #: the same for the abstract
    abstract_terms: tuple[str, ...] | None
    #: each matched term as written with the points it scored, in query order: the "why"
    points: tuple[tuple[str, float], ...] = ()


class CompiledQuery:
    """A parsed query, ready to match many documents. Build it with :func:`compile_query`."""

    __slots__ = ("_anchor", "_collect", "_normal", "_points", "_program", "source", "tree")

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self.tree = tree
        self._normal = normal_form(tree)
        culprit = unanchored(self._normal)
        if culprit is not None:
            raise QueryError(
                f"NOT {culprit.term.label} alone would match papers without any of the "
                "query's words, expected a word or phrase to look for next to it, as in "
                "'diffusion NOT video'",
                query=source,
                position=culprit.not_position,
            )
        self._anchor = anchor(self._normal)
        self._collect = collector(self._normal)
        self._points: dict[tuple[str | None, tuple[Element, ...]], Points] = {
            term.key: term_points(term) for term in self.positive_terms()
        }
        # the same match, score and terms in C where it is built (see .native)
        self._program = program(self._normal, self._anchor)

    def __repr__(self) -> str:
        return f"CompiledQuery({self.source!r})"

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms a match can report (the ones not under NOT), in query order."""
        return tuple(term.label for term in self.positive_terms())

    @property
    def fields(self) -> frozenset[str]:
        """The fields the query names (``title:``, ``author:``), negated terms' too."""
        return frozenset(term.field for term in all_terms(self._normal) if term.field)

    def positive_terms(self) -> list[Term]:
        """The distinct terms a match can score (the ones not under NOT), in query order."""
        found: dict[tuple[str | None, tuple[Element, ...]], Term] = {}
        self._positive_terms(self._normal, found)
        return list(found.values())

    def _positive_terms(
        self, node: Normal, found: dict[tuple[str | None, tuple[Element, ...]], Term]
    ) -> None:
        if isinstance(node, Positive):
            found.setdefault(node.term.key, node.term)
        elif isinstance(node, (Every, Some)):
            for child in node.children:
                self._positive_terms(child, found)

    def explain(self) -> str:
        """The query with every operator and grouping spelled out: how it was understood."""
        return explain(self.tree)

    def matches(self, doc: Document) -> bool:
        """Whether ``doc`` matches; cheaper than :meth:`match` when the reasons are not needed."""
        return self._anchored(doc) and self._collect(doc, {})

    @property
    def anchor(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """Stems and word prefixes of which a matching document has one; None: unknown."""
        return self._anchor

    def _anchored(self, doc: Document) -> bool:
        """Whether ``doc`` has any of the words the query cannot match without."""
        if self._anchor is None:
            return True
        stems, prefixes = self._anchor
        if not stems.isdisjoint(doc.stems):
            return True
        return any(doc.has_prefix(prefix) for prefix in prefixes)

    def scored(
        self, doc: Document, min_score: float = 0.0, *, anchored: bool = False
    ) -> tuple[float, tuple[str, ...], tuple[tuple[str, float], ...]] | None:
        """``(score, terms, points)`` of :meth:`match` without highlights, or None: what
        matching in bulk stores, made without a :class:`QueryMatch`."""
        if self._program is not None:
            return self._program.match(doc, min_score, anchored)  # type: ignore[no-any-return]
        found = self.match(doc, min_score, highlight=False, anchored=anchored)
        return None if found is None else (found.score, found.terms, found.points)

    def match(
        self, doc: Document, min_score: float = 0.0, *, highlight: bool = True,
        anchored: bool = False,
    ) -> QueryMatch | None:
        """Why ``doc`` matches, or None if it does not or scores under ``min_score``.

        The score is counted first and the pieces to highlight looked up only for a paper
        that keeps its match: a topic's ``min_score`` drops many of the papers its query finds.
        Without ``highlight`` they are not looked up at all (``title_terms`` and
        ``abstract_terms`` are None): finding them costs as much as deciding the match, and
        re-matching thousands of stored papers shows few of them. ``anchored`` says the
        caller found one of the :attr:`anchor` words in ``doc`` already.
        """
        if not highlight and self._program is not None:
            found = self._program.match(doc, min_score, anchored)
            if found is None:
                return None
            score, labels, earned = found
            return QueryMatch(score, labels, None, None, earned)
        hits: Hits = {}
        if not ((anchored or self._anchored(doc)) and self._collect(doc, hits)):
            return None
        terms = sorted(hits.values(), key=_by_position)
        score = 0.0
        points: dict[str, float] = {}
        points_of = self._points
        for term in terms:
            earned = points_of[term.key](doc)
            score += earned
            points[term.label] = points.get(term.label, 0.0) + earned
        if score < min_score:
            return None
        if not highlight:
            return QueryMatch(
                score=score,
                terms=tuple(dict.fromkeys(term.label for term in terms)),
                title_terms=None,
                abstract_terms=None,
                points=tuple(points.items()),
            )
        title_hits: list[tuple[int, str]] = []
        abstract_hits: list[tuple[int, str]] = []
        for term in terms:
            if term.field is not None:
                _, pieces = doc.field_occurrences(term.field, term.elements)
                if term.field == "title":
                    title_hits += pieces
                elif term.field == "abstract":
                    abstract_hits += pieces
            else:
                found = doc.occurrences(term.elements)
                title_hits += found.title
                abstract_hits += found.abstract
        return QueryMatch(
            score=score,
            terms=tuple(dict.fromkeys(term.label for term in terms)),
            title_terms=_in_text_order(title_hits),
            abstract_terms=_in_text_order(abstract_hits),
            points=tuple(points.items()),
        )


def _by_position(term: Term) -> int:
    return term.position


def _in_text_order(hits: list[tuple[int, str]]) -> tuple[str, ...]:
    hits.sort(key=lambda hit: hit[0])  # stable: the pieces of one phrase stay in order
    return tuple(dict.fromkeys(piece for _, piece in hits))


def compile_query(text: str) -> CompiledQuery:
    """Parse and compile a query once, to match many documents; raises :class:`QueryError`."""
    return CompiledQuery(text, parse_query(text))
