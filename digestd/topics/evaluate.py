"""Compiling a query's normal form into closures over a Document.

A collector says whether a document matches and gathers the positive terms that explain the
match; a term's points function counts what it scores. Both work on the document's stem set
and on its stems joined into one string (see .words): a single word is a set lookup, a
phrase of stems a substring test and its occurrences a ``str.count``, all done in C. Word
positions are looked at only for phrases with a prefix (``"reasoning model*"``) and for
fields other than the title and the abstract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from digestd.topics.fields import FIELDS
from digestd.topics.normal import Every, Negative, Normal, Positive
from digestd.topics.syntax import Element, Term
from digestd.topics.words import prefix_pattern, stem_pattern

if TYPE_CHECKING:
    from digestd.topics.document import Document

__all__ = [
    "ABSTRACT_POINTS",
    "MAX_COUNTED",
    "TITLE_POINTS",
    "Anchor",
    "Collector",
    "Hits",
    "Points",
    "add_hit",
    "anchor",
    "collector",
    "term_points",
    "term_test",
]

#: points per occurrence of a matched term in the title / in the abstract, and how many
#: occurrences of each term count in each part (see the module docstring of .match)
TITLE_POINTS = 3.0
ABSTRACT_POINTS = 1.0
MAX_COUNTED = 2

Test = Callable[["Document"], bool]
#: what a matched term scores in a document
Points = Callable[["Document"], float]


def _stems(term: Term) -> list[str] | None:
    """The term's stems when it is made of stems only (no prefix), else None."""
    if any(is_prefix or not text for text, is_prefix in term.elements):
        return None  # a prefix, or a word of apostrophes only (no stem to look for)
    return [text for text, _ in term.elements]


def _overlaps(stems: list[str]) -> bool:
    """Whether two occurrences of the phrase can share words ("a a", "a b a"): str.count
    would count one of them only."""
    size = len(stems)
    return any(stems[k:] == stems[: size - k] for k in range(1, size))


def _prefix(term: Term) -> str | None:
    """The prefix of a term that is one word prefix (``token*``), else None."""
    if len(term.elements) == 1 and term.elements[0][1]:
        return term.elements[0][0]
    return None


def term_test(term: Term) -> Test:
    """Whether a document contains the term, in its field or in the title or abstract."""
    elements = term.elements
    name = term.field
    stems = _stems(term)
    prefix = _prefix(term)
    if name is None:
        if stems is not None:
            if len(stems) == 1:
                [stem] = stems
                return lambda doc: stem in doc.stems
            # the set test first: a substring search costs more than a few set lookups
            pattern, needed = stem_pattern(stems), frozenset(stems)
            return lambda doc: needed <= doc.stems and pattern in doc.joined
        if prefix is not None:
            return lambda doc: doc.has_prefix(prefix)
        if len(elements) == 2 and elements[0][0] and not elements[0][1] and elements[1][1]:
            # "stem prefix*": the words starting with the prefix, each after the stem?
            (first, _), (then, _) = elements
            return lambda doc: first in doc.stems and doc.followed_by(first, then)
        required = frozenset(text for text, is_prefix in elements if not is_prefix)
        prefixes = tuple(text for text, is_prefix in elements if is_prefix)
        # a phrase with a prefix: the set and substring tests before looking at word positions
        return lambda doc: (
            required <= doc.stems
            and all(doc.has_prefix(p) for p in prefixes)
            and doc.has_phrase(elements)
        )
    if stems is not None:
        pattern = stem_pattern(stems)
        if name == "title":
            return lambda doc: pattern in doc.title_field.joined
        if name == "abstract":
            return lambda doc: pattern in doc.abstract_field.joined
        return lambda doc: pattern in doc.field_words(name).joined
    if prefix is not None:
        pattern = prefix_pattern(prefix)
        return lambda doc: pattern in doc.field_words(name).lowered
    return lambda doc: doc.in_field(name, elements)


def term_points(term: Term) -> Points:
    """What the term scores in a document: the points of its occurrences in each part,
    counting at most MAX_COUNTED of them in each (see the module docstring of .match)."""
    elements = term.elements
    name = term.field
    stems = _stems(term)
    prefix = _prefix(term)
    if stems is not None and not _overlaps(stems):
        pattern, attribute = stem_pattern(stems), "joined"
    elif prefix is not None:
        pattern, attribute = prefix_pattern(prefix), "lowered"
    else:
        pattern = attribute = ""
    if name is not None:
        points = FIELDS[name].points
        if pattern:
            return lambda doc: points * min(
                getattr(doc.field_words(name), attribute).count(pattern), MAX_COUNTED
            )
        return lambda doc: points * min(len(doc.field_words(name).find(elements)), MAX_COUNTED)
    if pattern:

        def counted(doc: Document) -> float:
            in_title = getattr(doc.title_field, attribute).count(pattern)
            in_abstract = getattr(doc.abstract_field, attribute).count(pattern)
            return TITLE_POINTS * min(in_title, MAX_COUNTED) + ABSTRACT_POINTS * min(
                in_abstract, MAX_COUNTED
            )

        return counted

    def found(doc: Document) -> float:
        in_title, in_abstract = doc.starts(elements)
        return TITLE_POINTS * min(len(in_title), MAX_COUNTED) + ABSTRACT_POINTS * min(
            len(in_abstract), MAX_COUNTED
        )

    return found


Hits = dict[tuple[str | None, tuple[Element, ...]], Term]
#: adds the positive terms that make a document match to ``hits``; says whether it matches
Collector = Callable[["Document", Hits], bool]


def add_hit(hits: Hits, term: Term) -> None:
    # one entry per distinct term; "kv-cache" and "KV cache" are one, reported as first written
    known = hits.get(term.key)
    if known is None or term.position < known.position:
        hits[term.key] = term


#: a phrase of stems to look for: its field (None: the title and the abstract), its stems, its
#: stem pattern and the term
_Phrase = tuple[str | None, frozenset[str], str, Term]


class _Operands:
    """The operands of one AND or OR, sorted by how they are tested.

    Single words (no field) are one set operation on the document's stems; phrases of stems
    in the title and abstract, or in one of them, are substring tests on the joined stems,
    after a set test of their stems; the rest are collectors of their own. Phrases and
    collectors are filed under a stem they cannot match without (their gate) when they have
    one, so that one set intersection picks the few worth trying.
    """

    def __init__(self, children: tuple[Normal, ...]) -> None:
        self.stems: dict[str, Term] = {}
        self.phrases: dict[tuple[str | None, str], _Phrase] = {}
        self.gated: dict[str, list[Collector]] = {}
        self.wide: list[tuple[frozenset[str], Collector]] = []
        self.ungated: list[Collector] = []
        for child in children:
            if isinstance(child, Positive):
                term = child.term
                stems = _stems(term)
                if stems is not None and term.field in (None, "title", "abstract"):
                    if term.field is None and len(stems) == 1:
                        self.stems.setdefault(stems[0], term)
                    else:
                        pattern = stem_pattern(stems)
                        self.phrases.setdefault(
                            (term.field, pattern), (term.field, frozenset(stems), pattern, term)
                        )
                    continue
            self._other(child)

    def _other(self, child: Normal) -> None:
        collect = collector(child)
        gate = _gate(child)
        if gate is None:
            self.ungated.append(collect)
        elif len(gate) == 1:
            [stem] = gate
            self.gated.setdefault(stem, []).append(collect)
        else:
            self.wide.append((gate, collect))

    def gated_phrases(self) -> dict[str, list[_Phrase]]:
        """The phrases by their longest stem (long words are the rarer ones)."""
        found: dict[str, list[_Phrase]] = {}
        for phrase in self.phrases.values():
            found.setdefault(max(phrase[1], key=len), []).append(phrase)
        return found

    def collectors(self) -> list[Collector]:
        """Every operand that is not a single word or a phrase of stems."""
        return [
            *(c for found in self.gated.values() for c in found),
            *(c for _, c in self.wide),
            *self.ungated,
        ]


def _gate(node: Normal) -> frozenset[str] | None:
    """Stems of which a document matching ``node`` has at least one, or None if unknown."""
    if isinstance(node, Positive):
        if node.term.field not in (None, "title", "abstract"):
            return None
        required = [text for text, is_prefix in node.term.elements if text and not is_prefix]
        # the longest stem: long words are the rarer ones
        return frozenset([max(required, key=len)]) if required else None
    found = anchor(node)
    if found is None or found[1] or not found[0]:
        return None
    return found[0]


def _joined_of(doc: Document, name: str | None) -> str:
    if name is None:
        return doc.joined
    if name == "title":
        return doc.title_field.joined
    return doc.abstract_field.joined


def collector(node: Normal) -> Collector:
    """Whether a document matches ``node``, adding the terms that explain it to ``hits``.

    Only terms of satisfied branches explain a match: in "(a AND b) OR c" a paper with a and c
    but not b matched because of c alone. An OR has no short cut: every satisfied branch adds
    its terms.
    """
    if isinstance(node, Positive):
        term, test = node.term, term_test(node.term)

        def collect_term(doc: Document, hits: Hits) -> bool:
            if test(doc):
                add_hit(hits, term)
                return True
            return False

        return collect_term
    if isinstance(node, Negative):
        negated = term_test(node.term)
        return lambda doc, hits: not negated(doc)
    operands = _Operands(node.children)
    if isinstance(node, Every):
        return _collect_all(operands)
    return _collect_any(operands)


def _collect_all(operands: _Operands) -> Collector:
    phrases = list(operands.phrases.values())
    stems = frozenset(operands.stems).union(*(phrase[1] for phrase in phrases))
    fixed = [*operands.stems.values(), *(phrase[3] for phrase in phrases)]
    others = operands.collectors()

    def collect_all(doc: Document, hits: Hits) -> bool:
        if not stems <= doc.stems:
            return False
        for name, _, pattern, _ in phrases:
            if pattern not in _joined_of(doc, name):
                return False
        branch: Hits = {}
        for other in others:
            if not other(doc, branch):
                return False
        for term in fixed:
            add_hit(hits, term)
        for term in branch.values():
            add_hit(hits, term)
        return True

    return collect_all


def _collect_any(operands: _Operands) -> Collector:
    stem_terms = operands.stems
    stems = frozenset(stem_terms)
    phrases = operands.gated_phrases()
    phrase_gates = frozenset(phrases)
    gated = operands.gated
    gates = frozenset(gated)
    wide = operands.wide
    ungated = operands.ungated

    def collect_any(doc: Document, hits: Hits) -> bool:
        found = False
        present = doc.stems
        for key in stems & present:
            add_hit(hits, stem_terms[key])
            found = True
        # the phrases and other operands are tried only when the document has the stem they
        # are filed under
        for key in phrase_gates & present:
            for name, needed, pattern, term in phrases[key]:
                if needed <= present and pattern in _joined_of(doc, name):
                    add_hit(hits, term)
                    found = True
        for key in gates & present:
            for other in gated[key]:
                found = other(doc, hits) or found
        for gate, other in wide:
            if not gate.isdisjoint(present):
                found = other(doc, hits) or found
        for other in ungated:
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
