"""A query's match, score and terms evaluated in C, when the extension is built.

:mod:`.evaluate` compiles a query into Python closures; bulk matching calls them a million
times, and a frame per node costs more than the set lookups and substring searches they do.
``_program.c`` asks the document the same questions without those frames: :func:`program`
describes a query's normal form to it, with the commonest terms tested and counted in C (a
stem, a phrase of stems, a word prefix, "stem prefix*", and those in ``title:`` or
``abstract:``) and every other term handed over as its closures from :mod:`.evaluate`, so the
answers are the same (``tests/topics/test_native.py`` compares both on random queries and
papers, and on the seeds).

The extension is optional: without a C compiler digestd installs and matches in Python only,
and ``DIGESTD_PURE_PYTHON=1`` turns it off at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from digestd.topics import extension
from digestd.topics.evaluate import Anchor, _overlaps, _prefix, _stems, term_points, term_test
from digestd.topics.fields import FIELDS
from digestd.topics.normal import Every, Negative, Normal, Positive
from digestd.topics.syntax import Element, Term
from digestd.topics.words import prefix_pattern, stem_pattern

__all__ = ["AVAILABLE", "program"]

AVAILABLE = extension.AVAILABLE

# the codes of _program.c
_POS, _NEG, _ALL, _ANY = range(4)
_STEM, _PHRASE, _PREFIX, _CALL, _FOLLOWS, _GUARDED = range(6)
_IN_BOTH, _IN_TITLE, _IN_ABSTRACT = range(3)
_JOINED, _LOWERED, _CALLED, _FIELD_JOINED, _FIELD_LOWERED, _FOLLOWED = range(6)

_Key = tuple[str | None, tuple[Element, ...]]


def program(normal: Normal, anchor: Anchor | None) -> Any | None:
    """The C program for a query's normal form and :attr:`~.query.CompiledQuery.anchor`, or
    None when the extension is not there."""
    if not AVAILABLE:
        return None
    keys: dict[_Key, int] = {}
    points: list[tuple[object, ...]] = []
    leaves: list[tuple[int, int, str]] = []

    def leaf(term: Term) -> int:
        key = keys.get(term.key)
        if key is None:
            key = keys[term.key] = len(points)
            points.append(_points(term))
        leaves.append((key, term.position, term.label))
        return len(leaves) - 1

    def node(item: Normal) -> tuple[object, ...]:
        if isinstance(item, Positive):
            return (_POS, leaf(item.term), _test(item.term))
        if isinstance(item, Negative):
            return (_NEG, _test(item.term))
        children = tuple(node(child) for child in item.children)
        if isinstance(item, Every):
            # the same answer in any order; the set lookups first, they fail soonest
            children = tuple(sorted(children, key=_cost))
            return (_ALL, children)
        return (_ANY, children)

    root = node(normal)
    described = None
    if anchor is not None:
        described = (tuple(anchor[0]), tuple(prefix_pattern(p) for p in anchor[1]))
    return extension.module.Program(root, tuple(leaves), tuple(points), described)


def _test(term: Term) -> tuple[object, ...]:
    """What term_test(term) asks, as a test of _program.c."""
    stems = _stems(term)
    prefix = _prefix(term)
    if term.field is None:
        if stems is not None:
            if len(stems) == 1:
                return (_STEM, stems[0])
            return (_PHRASE, _IN_BOTH, tuple(stems), stem_pattern(stems))
        if prefix is not None:
            return (_PREFIX, prefix_pattern(prefix))
        elements = term.elements
        if len(elements) == 2 and elements[0][0] and not elements[0][1] and elements[1][1]:
            # "stem prefix*": Document.followed_by
            first = elements[0][0]
            return (_FOLLOWS, first, prefix_pattern(elements[1][0]), stem_pattern([first]))
        # any other phrase with a prefix: its stems and prefixes looked up here, and only a
        # paper with all of them asked about word positions (term_test's own order)
        required = tuple(dict.fromkeys(text for text, is_prefix in elements if not is_prefix))
        prefixes = tuple(prefix_pattern(text) for text, is_prefix in elements if is_prefix)
        return (_GUARDED, required, prefixes, _phrase_test(elements))
    elif stems is not None and term.field in ("title", "abstract"):
        where = _IN_TITLE if term.field == "title" else _IN_ABSTRACT
        return (_PHRASE, where, (), stem_pattern(stems))
    return (_CALL, term_test(term))


def _phrase_test(elements: tuple[Element, ...]) -> Callable[[Any], bool]:
    return lambda doc: doc.has_phrase(elements)


def _points(term: Term) -> tuple[object, ...]:
    """What term_points(term) counts, as points of _program.c."""
    stems = _stems(term)
    prefix = _prefix(term)
    if term.field is None:
        if stems is not None and not _overlaps(stems):
            return (_JOINED, stem_pattern(stems))
        if prefix is not None:
            return (_LOWERED, prefix_pattern(prefix))
        elements = term.elements
        if len(elements) == 2 and elements[0][0] and not elements[0][1] and elements[1][1]:
            # "stem prefix*": its starts, as FieldWords.find counts them
            return (_FOLLOWED, elements[0][0], prefix_pattern(elements[1][0]))
    elif term.field in ("title", "abstract"):
        where = _IN_TITLE if term.field == "title" else _IN_ABSTRACT
        weight = float(FIELDS[term.field].points)
        if stems is not None and not _overlaps(stems):
            return (_FIELD_JOINED, stem_pattern(stems), where, weight)
        if prefix is not None:
            return (_FIELD_LOWERED, prefix_pattern(prefix), where, weight)
    return (_CALLED, term_points(term))


def _cost(node: tuple[object, ...]) -> int:
    """Cheap tests first: a stem lookup, then substring searches, then everything else."""
    kind = node[0]
    if kind in (_POS, _NEG):
        test = node[-1]
        assert isinstance(test, tuple)
        return 0 if test[0] == _STEM else 1 if test[0] in (_PHRASE, _PREFIX) else 2
    return 3
