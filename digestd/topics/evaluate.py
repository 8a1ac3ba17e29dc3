"""Compiling a query's normal form into closures over a Document.

A predicate says whether a document matches; a collector also gathers the positive terms
that explain the match. Both test single words and two-word phrases with set operations on
the document's stems and stem pairs, and look at word positions only for longer phrases,
prefixes and fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from digestd.topics.normal import Every, Negative, Normal, Positive
from digestd.topics.syntax import Element, Term

if TYPE_CHECKING:
    from digestd.topics.match import Document

__all__ = [
    "Anchor",
    "Collector",
    "Hits",
    "Predicate",
    "add_hit",
    "anchor",
    "collector",
    "predicate",
]


Predicate = Callable[["Document"], bool]


def _term_predicate(term: Term) -> Predicate:
    elements = term.elements
    if term.field is not None:
        name = term.field
        required = frozenset(text for text, is_prefix in elements if not is_prefix)
        if name in ("title", "abstract") and required:
            # the field's stem set rules out most papers before any position is looked at;
            # for a single word it is the whole answer
            if len(elements) == 1:
                [stem] = required
                if name == "title":
                    return lambda doc: stem in doc.title_field.stem_set
                return lambda doc: stem in doc.abstract_field.stem_set
            return lambda doc: (
                required <= doc.field_words(name).stem_set and doc.in_field(name, elements)
            )
        return lambda doc: doc.in_field(name, elements)
    if len(elements) == 1:
        text, is_prefix = elements[0]
        if is_prefix:
            return lambda doc: doc.has_prefix(text)
        return lambda doc: text in doc.stems
    # a phrase: test the cheap set lookups before looking at word positions
    if not any(is_prefix for _, is_prefix in elements):
        if len(elements) == 2:
            first, second = elements[0][0], elements[1][0]
            return lambda doc: (
                first in doc.stems and second in doc.stems and doc.has_pair(first, second)
            )
        every = frozenset(text for text, _ in elements)
        return lambda doc: every <= doc.stems and doc.has_phrase(elements)
    required = frozenset(text for text, is_prefix in elements if not is_prefix)
    prefixes = tuple(text for text, is_prefix in elements if is_prefix)
    return lambda doc: (
        required <= doc.stems
        and all(doc.has_prefix(p) for p in prefixes)
        and doc.has_phrase(elements)
    )


def _set_key(node: Normal) -> str | tuple[str, str] | None:
    """The stem of a positive single word, or the stem pair of a positive two-word phrase."""
    if (
        not isinstance(node, Positive)
        or node.term.field is not None
        or any(is_prefix for _, is_prefix in node.term.elements)
    ):
        return None
    elements = node.term.elements
    if len(elements) == 1:
        return elements[0][0]
    if len(elements) == 2:
        return (elements[0][0], elements[1][0])
    return None


def predicate(node: Normal) -> Predicate:
    if isinstance(node, Positive):
        return _term_predicate(node.term)
    if isinstance(node, Negative):
        inner = _term_predicate(node.term)
        return lambda doc: not inner(doc)
    # The single words under one AND/OR become one set operation done in C, and the two-word
    # phrases one loop that looks at positions only when both stems are there: "a OR b OR
    # "c d"" costs about as much as "a". Typical topics are long ORs of such terms, and most
    # papers match none of them.
    keys = [_set_key(child) for child in node.children]
    stems = frozenset(k for k in keys if isinstance(k, str))
    pairs = tuple(dict.fromkeys(k for k in keys if isinstance(k, tuple)))
    checks: list[Predicate] = [
        predicate(child) for child, key in zip(node.children, keys, strict=True) if key is None
    ]
    if isinstance(node, Every):
        if pairs:
            checks.insert(0, _all_pairs(pairs))
        if stems:
            checks.insert(0, lambda doc: stems <= doc.stems)
        return _conjunction(checks)
    if pairs:
        checks.insert(0, _any_pair(pairs))
    if stems:
        checks.insert(0, lambda doc: not stems.isdisjoint(doc.stems))
    return _disjunction(checks)


def _all_pairs(pairs: tuple[tuple[str, str], ...]) -> Predicate:
    """Whether every stem pair occurs as adjacent words within one clause."""
    needed = frozenset(stem for pair in pairs for stem in pair)

    def all_pairs(doc: Document) -> bool:
        if not needed <= doc.stems:
            return False
        for first, second in pairs:  # noqa: SIM110 - cheaper than all() over a generator
            if not doc.has_pair(first, second):
                return False
        return True

    return all_pairs


def _any_pair(pairs: tuple[tuple[str, str], ...]) -> Predicate:
    """Whether some stem pair occurs as adjacent words within one clause."""

    def any_pair(doc: Document) -> bool:
        stems = doc.stems
        for first, second in pairs:
            if first in stems and second in stems and doc.has_pair(first, second):
                return True
        return False

    return any_pair


def _conjunction(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda doc: first(doc) and second(doc)

    def all_of(doc: Document) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is cheaper than all() over a generator
            if not check(doc):
                return False
        return True

    return all_of


def _disjunction(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda doc: first(doc) or second(doc)

    def any_of(doc: Document) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is cheaper than any() over a generator
            if check(doc):
                return True
        return False

    return any_of


Hits = dict[tuple[str | None, tuple[Element, ...]], Term]
#: adds the positive terms that make a document match to ``hits``; says whether it matches
Collector = Callable[["Document", Hits], bool]


def add_hit(hits: Hits, term: Term) -> None:
    # one entry per distinct term; "kv-cache" and "KV cache" are one, reported as first written
    known = hits.get(term.key)
    if known is None or term.position < known.position:
        hits[term.key] = term


def collector(node: Normal) -> Collector:
    """Like :func:`predicate`, but also gathers the terms that explain a match.

    Only terms of satisfied branches explain a match: in "(a AND b) OR c" a paper with a and c
    but not b matched because of c alone. An OR has no short cut: every satisfied branch adds
    its terms.
    """
    if isinstance(node, Positive):
        term, test = node.term, _term_predicate(node.term)

        def collect_term(doc: Document, hits: Hits) -> bool:
            if test(doc):
                add_hit(hits, term)
                return True
            return False

        return collect_term
    if isinstance(node, Negative):
        negated = _term_predicate(node.term)
        return lambda doc, hits: not negated(doc)
    # as in predicate, single words and two-word phrases are found with set operations
    stem_terms: dict[str, Term] = {}
    pair_terms: dict[tuple[str, str], Term] = {}
    others: list[Collector] = []
    for child in node.children:
        key = _set_key(child)
        if key is None or not isinstance(child, Positive):
            others.append(collector(child))
        elif isinstance(key, str):
            stem_terms.setdefault(key, child.term)
        else:
            pair_terms.setdefault(key, child.term)
    stems = frozenset(stem_terms)
    pairs = tuple(pair_terms)

    if isinstance(node, Every):
        pairs_present = _all_pairs(pairs)

        def collect_all(doc: Document, hits: Hits) -> bool:
            if not (stems <= doc.stems and pairs_present(doc)):
                return False
            branch: Hits = {}
            if not all(other(doc, branch) for other in others):
                return False
            for term in (*stem_terms.values(), *pair_terms.values(), *branch.values()):
                add_hit(hits, term)
            return True

        return collect_all

    def collect_any(doc: Document, hits: Hits) -> bool:
        found = False
        for key in stems & doc.stems:
            add_hit(hits, stem_terms[key])
            found = True
        present = doc.stems
        for pair in pairs:
            first, second = pair
            if first in present and second in present and doc.has_pair(first, second):
                add_hit(hits, pair_terms[pair])
                found = True
        for other in others:
            found = other(doc, hits) or found
        return found

    return collect_any


#: stems and word prefixes of which a matching document has at least one
Anchor = tuple[frozenset[str], frozenset[str]]


def anchor(node: Normal) -> Anchor | None:
    """Words without which ``node`` cannot match, or None when it can match without any.

    A document that has none of them is no match, whatever the rest of the query says, so
    matching it can stop after one set test; most papers are in few topics. A term anchors on
    one of its words (a stem if it has one); AND on one of its operands, OR on all of them. A
    negated term, or a field whose words are not the document's stems, anchors nothing.
    """
    if isinstance(node, Positive):
        term = node.term
        if term.field not in (None, "title", "abstract"):
            return None
        stems = [text for text, is_prefix in term.elements if not is_prefix]
        if stems:
            return frozenset(stems[:1]), frozenset()
        return frozenset(), frozenset([term.elements[0][0]])
    if isinstance(node, Negative):
        return None
    anchors = [anchor(child) for child in node.children]
    if isinstance(node, Every):
        known = [a for a in anchors if a is not None]
        # the operand with the fewest words is the cheapest test
        return min(known, key=lambda a: len(a[0]) + 2 * len(a[1]), default=None)
    if any(a is None for a in anchors):
        return None
    return (
        frozenset().union(*(a[0] for a in anchors if a is not None)),
        frozenset().union(*(a[1] for a in anchors if a is not None)),
    )
