"""Which papers could match a query: a condition for the database's full-text index.

Matching every stored paper against a query costs a tokenised paper each; a full-text index
(SQLite FTS5, PostgreSQL tsvector) answers "which papers contain these words" at once. The
exact matcher (.query, .match) stays the only judge: the index only narrows the papers it is
run on, so scores, stemming and highlights cannot change. For that the condition must hold
for *every* paper the matcher accepts; it may hold for others too.

The index holds, per paper, the runs of ``[a-z0-9]`` in its title and abstract lower-cased with
apostrophes removed (:func:`paper_tokens`). Each word the matcher sees starts one such run as
far as its lower-cased ASCII letters go, so a query element becomes a prefix test:

- a stem (``model``, ``studi``) is the start of the paper's word as written, except that a
  stem may end in an ``i`` the word does not have ("study" -> "studi"): that ``i`` is dropped;
- a prefix (``token*``) is the start of the word as written.

A term needs all of its elements (their order and adjacency are left to the matcher), AND needs
all of its operands and OR any of them. Anything the condition cannot express safely means
"no narrowing" for its subtree: a negated term, a non-ASCII word, a field other than the title
or abstract, and any node type this module does not know. So query features added later are
still matched exactly, only without the index's help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from digestd.topics.query import And, CompiledQuery, Node, Not, Or, Term

__all__ = [
    "AllOf",
    "AnyOf",
    "Condition",
    "Prefix",
    "condition_for",
    "paper_tokens",
    "to_fts5",
    "to_tsquery",
]

_TOKEN_SPLIT_RE = re.compile(r"[^a-z0-9]+")
_ASCII_WORD_RE = re.compile(r"[a-z0-9]+")
#: fields whose text the index holds (a term without a field searches both)
_INDEXED_FIELDS = frozenset({None, "title", "abstract"})


@dataclass(frozen=True, slots=True)
class Prefix:
    """Some indexed token of the paper starts with ``text`` (``[a-z0-9]+``)."""

    text: str


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


Condition = Prefix | AllOf | AnyOf


def paper_tokens(title: str, abstract: str) -> list[str]:
    """The distinct index tokens of a paper, sorted (see the module docstring)."""
    text = f"{title} {abstract}".lower()
    if "'" in text or "’" in text:
        # the matcher removes apostrophes inside words ("don't" -> "dont")
        text = text.replace("'", "").replace("’", "")
    tokens = set(_TOKEN_SPLIT_RE.split(text))
    tokens.discard("")
    return sorted(tokens)


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


def _term(term: Term) -> Condition | None:
    if getattr(term, "field", None) not in _INDEXED_FIELDS:
        return None
    prefixes: list[Condition] = []
    for text, is_prefix in term.elements:
        if not is_prefix and text.endswith("i"):
            text = text[:-1]
        if not text or not _ASCII_WORD_RE.fullmatch(text):
            continue  # no narrowing by this element; the others still apply
        prefixes.append(Prefix(text))
    if not prefixes:
        return None
    return prefixes[0] if len(prefixes) == 1 else AllOf(tuple(prefixes))


def to_fts5(condition: Condition) -> str:
    """The condition as an SQLite FTS5 query."""
    if isinstance(condition, Prefix):
        return f'"{condition.text}"*'
    joiner = " AND " if isinstance(condition, AllOf) else " OR "
    return "(" + joiner.join(to_fts5(child) for child in condition.children) + ")"


def to_tsquery(condition: Condition) -> str:
    """The condition as a PostgreSQL tsquery literal."""
    if isinstance(condition, Prefix):
        return f"'{condition.text}':*"
    joiner = " & " if isinstance(condition, AllOf) else " | "
    return "(" + joiner.join(to_tsquery(child) for child in condition.children) + ")"
