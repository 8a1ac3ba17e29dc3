"""Compiling a query's normal form into closures over a Document.

A predicate says whether a document matches; a collector also gathers the positive terms
that explain the match. Both test single words and two-word phrases with set operations on
the document's stems and stem pairs, and look at word positions only for longer phrases,
prefixes and fields.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING

from digestd.topics.normal import Every, Negative, Normal, Positive
from digestd.topics.syntax import Element, Term

if TYPE_CHECKING:
    from digestd.topics.match import Document

__all__ = ["Collector", "Hits", "Predicate", "add_hit", "collector", "predicate"]


Predicate = Callable[["Document"], bool]


def _term_predicate(term: Term) -> Predicate:
    elements = term.elements
    if term.field is not None:
        name = term.field
        if name in ("title", "abstract") and len(elements) == 1 and not elements[0][1]:
            stem = elements[0][0]
            return lambda doc: stem in doc.stems and doc.in_field(name, elements)
        return lambda doc: doc.in_field(name, elements)
    if len(elements) == 1:
        text, is_prefix = elements[0]
        if is_prefix:
            return lambda doc: doc.has_prefix(text)
        return lambda doc: text in doc.stems
    # a phrase: test the cheap set lookups before looking at word positions
    if not any(is_prefix for _, is_prefix in elements):
        pairs = frozenset(pairwise(text for text, _ in elements))
        if len(elements) == 2:
            [pair] = pairs
            return lambda doc: pair in doc.bigrams
        return lambda doc: pairs <= doc.bigrams and doc.has_phrase(elements)
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
    # The single words and two-word phrases under one AND/OR become two set operations done
    # in C: "a OR b OR "c d"" costs about as much as "a". Typical topics are long ORs of
    # such terms, and most papers match none of them.
    keys = [_set_key(child) for child in node.children]
    stems = frozenset(k for k in keys if isinstance(k, str))
    pairs = frozenset(k for k in keys if isinstance(k, tuple))
    checks: list[Predicate] = [
        predicate(child) for child, key in zip(node.children, keys, strict=True) if key is None
    ]
    if isinstance(node, Every):
        if pairs:
            checks.insert(0, lambda doc: pairs <= doc.bigrams)
        if stems:
            checks.insert(0, lambda doc: stems <= doc.stems)
        return _conjunction(checks)
    if pairs:
        checks.insert(0, lambda doc: not pairs.isdisjoint(doc.bigrams))
    if stems:
        checks.insert(0, lambda doc: not stems.isdisjoint(doc.stems))
    return _disjunction(checks)


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
    stems, pairs = frozenset(stem_terms), frozenset(pair_terms)

    if isinstance(node, Every):

        def collect_all(doc: Document, hits: Hits) -> bool:
            if not (stems <= doc.stems and pairs <= doc.bigrams):
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
        for pair in pairs & doc.bigrams:
            add_hit(hits, pair_terms[pair])
            found = True
        for other in others:
            found = other(doc, hits) or found
        return found

    return collect_any
