"""A set of compiled topics as one classifier: match a paper, or only some of the topics.

The store calls it for every paper it matches; for bulk work it also reads each topic's
candidate condition (see .candidates) and asks only for the topics a paper is a candidate
of, so the exact matcher runs where the full-text index says it might succeed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cached_property

from digestd.topics.candidates import Condition, ScoreBound, condition_for, score_bound
from digestd.topics.match import CompiledTopic, Document, TopicMatch, match_document, match_paper


class Classifier:
    def __init__(self, topics: Iterable[CompiledTopic]) -> None:
        self.topics: list[CompiledTopic] = list(topics)

    def __call__(self, title: str, abstract: str, **fields: str) -> Sequence[TopicMatch]:
        """Every topic the paper matches, best score first (see `match_paper`)."""
        return match_paper(title, abstract, self.topics, **fields)

    def match_some(
        self, title: str, abstract: str, slugs: Collection[str], **fields: str
    ) -> Sequence[TopicMatch]:
        """The same as calling the classifier, with only the topics named in `slugs`."""
        topics = [t for t in self.topics if t.slug in slugs]
        if not topics:
            return []
        return match_paper(title, abstract, topics, **fields)

    def match_document(
        self, doc: Document, slugs: Collection[str] | None = None, *, highlight: bool = True
    ) -> Sequence[TopicMatch]:
        """The same for a paper prepared already, with all topics or those in `slugs`;
        without `highlight`, the matches' highlights are None (see `match_document`)."""
        if slugs is None:
            return match_document(doc, self.topics, highlight=highlight)
        topics = [t for t in self.topics if t.slug in slugs]
        return match_document(doc, topics, highlight=highlight) if topics else []

    def subset(self, slugs: Collection[str]) -> Classifier:
        """A classifier of only these topics."""
        return Classifier(t for t in self.topics if t.slug in slugs)

    @cached_property
    def fields(self) -> frozenset[str]:
        """The fields some topic's query names: a paper's other fields matter only for these."""
        return frozenset().union(*(t.query.fields for t in self.topics))

    @cached_property
    def conditions(self) -> Mapping[str, Condition | None]:
        """Each topic's candidate condition; None where every paper is a candidate."""
        return {t.slug: condition_for(t.query) for t in self.topics}

    @cached_property
    def score_bounds(self) -> Mapping[str, tuple[float, ScoreBound]]:
        """Each topic with a ``min_score``: it, and the most a paper can score on its query."""
        return {
            t.slug: (t.definition.min_score, score_bound(t.query))
            for t in self.topics
            if t.definition.min_score > 0
        }
