"""Negation normal form: NOT pushed down to the terms (De Morgan), nested AND/OR flattened.

On that form it is easy to tell whether a query can match without any of its words, and
which terms are the positive ones that explain a match.
"""

from __future__ import annotations

from dataclasses import dataclass

from digestd.topics.syntax import And, Node, Not, Term

__all__ = [
    "Every",
    "Negative",
    "Normal",
    "Positive",
    "Some",
    "all_terms",
    "normal_form",
    "unanchored",
]


@dataclass(frozen=True)
class Positive:
    term: Term


@dataclass(frozen=True)
class Negative:
    term: Term
    not_position: int


@dataclass(frozen=True)
class Every:
    children: tuple[Normal, ...]


@dataclass(frozen=True)
class Some:
    children: tuple[Normal, ...]


Normal = Positive | Negative | Every | Some


def normal_form(node: Node, negated: bool = False, not_position: int = 0) -> Normal:
    if isinstance(node, Term):
        return Negative(node, not_position) if negated else Positive(node)
    if isinstance(node, Not):
        return normal_form(node.operand, not negated, node.position)
    conjunctive = isinstance(node, And) != negated
    kind: type[Every] | type[Some] = Every if conjunctive else Some
    children: list[Normal] = []
    for operand in node.operands:
        child = normal_form(operand, negated, not_position)
        if isinstance(child, kind):
            children.extend(child.children)
        else:
            children.append(child)
    return kind(tuple(children))


def all_terms(node: Normal) -> list[Term]:
    if isinstance(node, (Positive, Negative)):
        return [node.term]
    return [term for child in node.children for term in all_terms(child)]


def unanchored(node: Normal) -> Negative | None:
    """A negated term through which ``node`` matches papers lacking all its words, if any."""
    if isinstance(node, Positive):
        return None
    if isinstance(node, Negative):
        return node
    culprits = [unanchored(child) for child in node.children]
    if isinstance(node, Every):
        return None if None in culprits else culprits[0]
    return next((c for c in culprits if c is not None), None)
