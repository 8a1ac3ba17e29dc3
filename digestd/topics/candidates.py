"""Which papers could match a query: a condition for the database's full-text index.

Matching every stored paper against a query costs a tokenised paper each; a full-text index
(SQLite FTS5, PostgreSQL tsvector) answers "which papers contain these words" at once. The
exact matcher (.query, .match) stays the only judge: the index only narrows the papers it is
run on, so scores, stemming and highlights cannot change. For that the condition must hold
for *every* paper the matcher accepts; it may hold for others too.

The index holds, per paper, the matcher's own view of its words (:func:`paper_tokens`): the
stem and the lower-cased word of every word of the title and the abstract, and the same for the
title alone behind a marker (:data:`TITLE_MARK`). So a query element becomes a test the
matcher itself would pass:

- a stem (``model``, ``studi``) is one of the paper's tokens exactly (a word that only
  *starts* with it, such as "modest", is not a candidate);
- a prefix (``token*``) starts one of the paper's tokens;
- two words next to each other in a phrase are a token of their own (:data:`PAIR_MARK`, the
  two stems), made for every pair of adjacent words within one clause, as the matcher pairs
  them: "chain of thought" needs the pairs "chain of" and "of thought", not merely the words
  somewhere in the paper; a stem followed by a prefix ("reasoning model*") is a token of the
  stem, :data:`WORD_PAIR_MARK` and the next word, which must start with the prefix;
- in ``title:`` terms all of these look at the title's tokens only;
- a stem or a pair of stems that occurs twice or more in the abstract is also a token behind
  :data:`REPEAT_MARK` (in the title: behind both marks), so that the score bound can tell a
  term mentioned once from one mentioned twice (see :class:`ScoreBound`).

A term needs all of its elements (their order and adjacency are left to the matcher), AND needs
all of its operands and OR any of them. Anything the condition cannot express safely means
"no narrowing" for its subtree: a negated term, a non-ASCII word, a field other than the title
or abstract, and any node type this module does not know. So query features added later are
still matched exactly, only without the index's help.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from itertools import pairwise

from digestd.topics.fields import FIELDS
from digestd.topics.match import Document, FieldWords
from digestd.topics.query import (
    ABSTRACT_POINTS,
    MAX_COUNTED,
    TITLE_POINTS,
    And,
    CompiledQuery,
    Node,
    Not,
    Or,
    Term,
)

__all__ = [
    "PAIR_MARK",
    "REPEAT_MARK",
    "TITLE_MARK",
    "WORD_PAIR_MARK",
    "AllOf",
    "AnyOf",
    "Condition",
    "Exact",
    "Prefix",
    "ScoreBound",
    "condition_for",
    "document_tokens",
    "paper_tokens",
    "score_bound",
    "to_fts5",
    "to_tsquery",
]

#: put in front of the title's tokens; no word starts with it and no stem is it, since the
#: matcher's words are letters and digits (were one to, it would only add candidates)
TITLE_MARK = "0t"
#: a pair of adjacent stems is PAIR_MARK, the first stem, "0", the second stem
PAIR_MARK = "0p"
#: a stem and the next word (lower case, not stemmed): WORD_PAIR_MARK, the stem, "0", the word
WORD_PAIR_MARK = "0q"
#: a stem or a pair of stems that occurs at least twice in one part: REPEAT_MARK and the token
REPEAT_MARK = "0r"
_ASCII_WORD_RE = re.compile(r"[a-z0-9]+")
#: fields whose text the index holds (a term without a field searches both)
_INDEXED_FIELDS = frozenset({None, "title", "abstract"})


@dataclass(frozen=True, slots=True)
class Prefix:
    """Some indexed token of the paper starts with ``text`` (``[a-z0-9]+``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Exact:
    """Some indexed token of the paper is ``text`` (``[a-z0-9]+``)."""

    text: str


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


Condition = Prefix | Exact | AllOf | AnyOf


def _pair(first: str, second: str, mark: str = PAIR_MARK) -> str:
    return f"{mark}{first}0{second}"


def _tokens(words: FieldWords) -> tuple[set[str], list[str]]:
    """A field's stems, lower-cased words and adjacent pairs, as the matcher sees them; and,
    behind REPEAT_MARK, its stems and pairs of stems that occur twice or more (positions
    counted, as the matcher counts a phrase's occurrences)."""
    stems = words.stems
    lowered = words.words
    tokens = set(stems)
    tokens.update(lowered)
    # pairs never span a clause break, as phrases do not (see FieldWords.find): clause by
    # clause, so that map makes them in C
    pair, word_pair = f"{PAIR_MARK}{{}}0{{}}".format, f"{WORD_PAIR_MARK}{{}}0{{}}".format
    pairs: list[str] = []
    ends = [0, *sorted(words.breaks), len(stems)]
    for start, end in pairwise(ends):
        clause = stems[start:end]
        pairs += map(pair, clause, clause[1:])
        tokens.update(map(word_pair, clause, lowered[start + 1 : end]))
    tokens.update(pairs)
    tokens.discard("")  # a word of apostrophes only
    counts = Counter(stems)
    counts.update(pairs)
    repeated = [REPEAT_MARK + token for token, count in counts.items() if count > 1 and token]
    return tokens, repeated


def paper_tokens(title: str, abstract: str) -> list[str]:
    """The distinct index tokens of a paper, sorted (see the module docstring)."""
    return sorted(document_tokens(Document.from_text(title, abstract)))


def document_tokens(doc: Document) -> set[str]:
    """The distinct index tokens of a prepared paper (the index wants them in no order)."""
    in_title, repeated_in_title = _tokens(doc.title_field)
    in_abstract, repeated_in_abstract = _tokens(doc.abstract_field)
    tokens = in_title | in_abstract
    tokens.update(TITLE_MARK + token for token in in_title)
    # repeats are counted per part: an unmarked one says the abstract has it twice
    tokens.update(repeated_in_abstract)
    tokens.update(TITLE_MARK + token for token in repeated_in_title)
    return tokens


def condition_for(query: CompiledQuery) -> Condition | None:
    """A condition every paper matching `query` meets, or None when none can be said."""
    return _condition(query.tree, negated=False)


def _condition(node: Node, negated: bool) -> Condition | None:
    kind = type(node)
    if kind is Term:
        return None if negated else _term(node)  # type: ignore[arg-type]
    if kind is Not:
        return _condition(node.operand, not negated)  # type: ignore[union-attr]
    if kind is And or kind is Or:
        # De Morgan: NOT (a AND b) is (NOT a) OR (NOT b)
        conjunctive = (kind is And) != negated
        children = [_condition(child, negated) for child in node.operands]  # type: ignore[union-attr]
        if conjunctive:
            known = tuple(c for c in children if c is not None)
            if not known:
                return None
            return known[0] if len(known) == 1 else AllOf(known)
        if any(c is None for c in children):
            return None
        return AnyOf(tuple(c for c in children if c is not None))
    return None  # a node this module does not know: no narrowing


def _term(term: Term, *, repeated: bool = False) -> Condition | None:
    """The term's condition; ``repeated``: that it occurs twice or more in its part (the
    title, or the abstract for a term without a field)."""
    field = getattr(term, "field", None)
    if field not in _INDEXED_FIELDS:
        return None
    mark = TITLE_MARK if field == "title" else ""
    # two occurrences of a term are two of each of its stems and pairs of stems; the word
    # after a stem and a prefix are not counted, only asked to be there
    again = mark + REPEAT_MARK if repeated else mark
    elements = term.elements
    usable = [
        bool(text) and _ASCII_WORD_RE.fullmatch(text) is not None for text, _ in elements
    ]
    tests: list[Condition] = []
    paired: set[int] = set()
    # adjacent stems of a phrase as pair tokens: a pair says more than its two words
    for i in range(len(elements) - 1):
        (first, first_prefix), (second, second_prefix) = elements[i], elements[i + 1]
        if usable[i] and usable[i + 1] and not first_prefix:
            if second_prefix:
                tests.append(Prefix(mark + _pair(first, second, WORD_PAIR_MARK)))
                if repeated:
                    tests.append(Exact(again + first))
            else:
                tests.append(Exact(again + _pair(first, second)))
            paired.update((i, i + 1))
    for i, (text, is_prefix) in enumerate(elements):
        if not usable[i] or i in paired:
            continue  # no narrowing by this element; the others still apply
        tests.append(Prefix(mark + text) if is_prefix else Exact(again + text))
    tests = list(dict.fromkeys(tests))  # "of the" twice in a phrase is one test
    if not tests:
        return None
    return tests[0] if len(tests) == 1 else AllOf(tuple(tests))


@dataclass(frozen=True, slots=True)
class ScoreBound:
    """The most a paper can score on a query, told by the index: ``fixed`` plus, for each
    condition in ``parts`` the paper meets, its points.

    A query term scores at most :data:`MAX_COUNTED` occurrences in the title and as many in
    the abstract; it can score in the title only if the paper's title meets the term's title
    condition, and at all only if the paper meets its condition; more than once in a part only
    if the part repeats each stem and pair of stems of the term (:data:`REPEAT_MARK`), when the
    term has any. A term inside an AND scores only when the whole AND matched (only satisfied
    branches explain a match, see .evaluate.collector), so its condition includes those of the
    AND's other operands. A paper whose bound is under a topic's ``min_score`` cannot be in the
    topic, however well its words match.
    """

    fixed: float
    parts: tuple[tuple[Condition, float], ...]


def score_bound(query: CompiledQuery) -> ScoreBound:
    """The bound of `query`'s score; a term the index cannot test counts its most points."""
    places: dict[tuple[object, ...], tuple[Term, list[tuple[Condition, ...]]]] = {}
    _places(query.tree, False, (), places)
    fixed = 0.0
    # one part per distinct condition, each asked of the index once
    parts: dict[Condition, float] = {}
    for term in query.positive_terms():
        # a term the walk did not reach (under a node it does not know) scores anywhere
        contexts = places[term.key][1] if term.key in places else [()]
        if term.field is None:
            in_title = replace(term, field="title")
            scored = [
                (_term(in_title), _term(in_title, repeated=True), TITLE_POINTS),
                # anywhere: the abstract's words and more; repeated: in the abstract
                (_term(term), _term(term, repeated=True), ABSTRACT_POINTS),
            ]
        else:
            field_spec = FIELDS.get(term.field)
            # a field the index does not hold has no condition: its points always count
            points = field_spec.points if field_spec else float("inf")
            scored = [(_term(term), _term(term, repeated=True), points)]
        for term_condition, repeated, points in scored:
            condition = _in_context(term_condition, contexts)
            if condition is None:
                fixed += points * MAX_COUNTED
            elif repeated is None or term_condition is None:
                parts[condition] = parts.get(condition, 0.0) + points * MAX_COUNTED
            else:
                # the first occurrence where the term is met, the others where it repeats
                again = _in_context(repeated, contexts)
                assert again is not None  # a context adds to a condition, never takes it
                parts[condition] = parts.get(condition, 0.0) + points
                parts[again] = parts.get(again, 0.0) + points * (MAX_COUNTED - 1)
    return ScoreBound(fixed, tuple(parts.items()))


def _places(
    node: Node, negated: bool, context: tuple[Condition, ...],
    places: dict[tuple[object, ...], tuple[Term, list[tuple[Condition, ...]]]],
) -> None:
    """Every place a positive term holds in the query, with the conditions of the operands
    of the ANDs around it (those that can be said), in query order; as .normal does, NOT is
    pushed down to the terms."""
    kind = type(node)
    if kind is Term:
        if not negated:
            term: Term = node  # type: ignore[assignment]
            places.setdefault(term.key, (term, []))[1].append(context)
        return
    if kind is Not:
        _places(node.operand, not negated, context, places)  # type: ignore[union-attr]
        return
    if kind is not And and kind is not Or:
        return  # a node this module does not know: its terms score anywhere (score_bound)
    operands = node.operands  # type: ignore[union-attr]
    if (kind is And) == negated:  # a disjunction: its operands need nothing of each other
        for child in operands:
            _places(child, negated, context, places)
        return
    conditions = [_condition(child, negated) for child in operands]
    for i, child in enumerate(operands):
        others = tuple(c for j, c in enumerate(conditions) if j != i and c is not None)
        _places(child, negated, context + others, places)


def _in_context(
    condition: Condition | None, contexts: list[tuple[Condition, ...]]
) -> Condition | None:
    """A term's condition where it scores: in any of its places, with the place's context."""
    if any(not context for context in contexts):
        return condition  # one place asks for nothing more: the others add nothing
    alternatives: list[Condition] = []
    for context in contexts:
        needed = ((condition,) if condition is not None else ()) + context
        if not needed:
            return None  # one place where nothing can be said: no narrowing
        alternatives.append(needed[0] if len(needed) == 1 else AllOf(needed))
    alternatives = list(dict.fromkeys(alternatives))
    return alternatives[0] if len(alternatives) == 1 else AnyOf(tuple(alternatives))


def to_fts5(condition: Condition) -> str:
    """The condition as an SQLite FTS5 query."""
    if isinstance(condition, Prefix):
        return f'"{condition.text}"*'
    if isinstance(condition, Exact):
        return f'"{condition.text}"'
    joiner = " AND " if isinstance(condition, AllOf) else " OR "
    return "(" + joiner.join(to_fts5(child) for child in condition.children) + ")"


def to_tsquery(condition: Condition) -> str:
    """The condition as a PostgreSQL tsquery literal."""
    if isinstance(condition, Prefix):
        return f"'{condition.text}':*"
    if isinstance(condition, Exact):
        return f"'{condition.text}'"
    joiner = " & " if isinstance(condition, AllOf) else " | "
    return "(" + joiner.join(to_tsquery(child) for child in condition.children) + ")"
