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
from dataclasses import dataclass

from digestd.errors import QueryError
from digestd.topics.document import Document
from digestd.topics.query import CompiledQuery, QueryMatch, compile_query
from digestd.topics.words import FieldWords

__all__ = [
    "CompiledTopic",
    "Document",
    "FieldWords",
    "TopicDefinition",
    "TopicMatch",
    "compile_topics",
    "highlights",
    "match_document",
    "match_paper",
    "paper_document",
]


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
    #: verbatim pieces of the title, then of the abstract, to highlight; no duplicates; None
    #: when matched without them (:func:`highlights` makes them for a match being shown)
    highlights: tuple[str, ...] | None


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


def match_document(
    doc: Document, topics: Sequence[CompiledTopic], *, highlight: bool = True,
    anchored: bool = False,
) -> list[TopicMatch]:
    """The topics ``doc`` matches, best score first (ties keep the order of ``topics``).

    Without ``highlight`` each match's ``highlights`` is None: re-matching stored papers in
    bulk leaves them to be made for the few matches that are shown (:func:`highlights`).
    ``anchored`` says ``doc`` has one of each topic's anchor words (see .classify).
    """
    matches: list[TopicMatch] = []
    if not highlight:
        for topic in topics:
            scored = topic.query.scored(doc, topic.definition.min_score, anchored=anchored)
            if scored is not None:
                matches.append(TopicMatch(topic.definition.slug, scored[0], scored[1], None))
        matches.sort(key=lambda m: -m.score)
        return matches
    for topic in topics:
        found = topic.query.match(
            doc, topic.definition.min_score, highlight=highlight, anchored=anchored
        )
        if found is None or found.score < topic.definition.min_score:
            continue
        highlights = _highlights(found)
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


def _highlights(found: QueryMatch) -> tuple[str, ...] | None:
    if found.title_terms is None or found.abstract_terms is None:
        return None
    return tuple(dict.fromkeys(found.title_terms + found.abstract_terms))


def highlights(doc: Document, query: CompiledQuery) -> tuple[str, ...]:
    """The pieces of ``doc`` to highlight for ``query``: what a match made with highlights
    holds; empty if ``doc`` does not match (the query changed since the match was made)."""
    found = query.match(doc)
    return () if found is None else _highlights(found) or ()


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
