"""A set of compiled topics as one classifier: match a paper, or only some of the topics.

The store calls it for every paper it matches; for bulk work it also reads each topic's
candidate condition (see .candidates) and asks only for the topics a paper is a candidate
of, so the exact matcher runs where the full-text index says it might succeed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import cached_property

from digestd.topics.candidates import Condition, ScoreBound, condition_for, score_bound
from digestd.topics.extension import helpers
from digestd.topics.match import (
    CompiledTopic,
    Document,
    TopicMatch,
    match_document,
    paper_document,
)


class Classifier:
    def __init__(self, topics: Iterable[CompiledTopic]) -> None:
        self.topics: list[CompiledTopic] = list(topics)

    def __call__(self, title: str, abstract: str, **fields: str) -> Sequence[TopicMatch]:
        """Every topic the paper matches, best score first (see `match_paper`)."""
        return self.match_document(paper_document(title, abstract, **fields))

    def match_some(
        self, title: str, abstract: str, slugs: Collection[str], **fields: str
    ) -> Sequence[TopicMatch]:
        """The same as calling the classifier, with only the topics named in `slugs`."""
        if not any(t.slug in slugs for t in self.topics):
            return []
        return self.match_document(paper_document(title, abstract, **fields), slugs)

    def match_document(
        self, doc: Document, slugs: Collection[str] | None = None, *, highlight: bool = True
    ) -> Sequence[TopicMatch]:
        """The same for a paper prepared already, with all topics or those in `slugs`;
        without `highlight`, the matches' highlights are None (see `match_document`)."""
        if slugs is None:
            topics = self._screen(doc)
            return match_document(doc, topics, highlight=highlight, anchored=True)
        # a few topics (a paper's candidates, in bulk): testing each one's anchor costs less
        # than screening all of them
        topics, at = self.topics, self._positions
        chosen = [topics[i] for i in sorted(at[s] for s in slugs if s in at)]
        return match_document(doc, chosen, highlight=highlight) if chosen else []

    def _screen(self, doc: Document) -> list[CompiledTopic]:
        """The topics one of whose anchor words `doc` has, in order: one set intersection
        for the stems of all topics instead of a test per topic."""
        by_stem, by_prefix, unanchored, stems = self._anchors
        wanted = set(unanchored)
        line = doc.stems_line
        if line is not None and helpers.common is not None:
            # read from kept words: one walk of its sorted stems and the sorted anchor stems,
            # without making its stem set
            sorted_stems, indexes = self._sorted_anchors
            for at in helpers.common(line, sorted_stems):
                wanted.update(indexes[at])
        else:
            for stem in doc.stems & stems:
                wanted.update(by_stem[stem])
        for prefix, indexes in by_prefix.items():
            if not wanted.issuperset(indexes) and doc.has_prefix(prefix):
                wanted.update(indexes)
        topics = self.topics
        return [topics[i] for i in sorted(wanted)]

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {t.slug: i for i, t in enumerate(self.topics)}

    @cached_property
    def _anchors(
        self,
    ) -> tuple[dict[str, list[int]], dict[str, list[int]], list[int], frozenset[str]]:
        """Topic indexes by anchor stem and by anchor prefix, those without an anchor, and
        every anchor stem (see CompiledQuery.anchor)."""
        by_stem: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        unanchored: list[int] = []
        for i, topic in enumerate(self.topics):
            anchor = topic.query.anchor
            if anchor is None:
                unanchored.append(i)
                continue
            for stem in anchor[0]:
                by_stem.setdefault(stem, []).append(i)
            for prefix in anchor[1]:
                by_prefix.setdefault(prefix, []).append(i)
        return by_stem, by_prefix, unanchored, frozenset(by_stem)

    @cached_property
    def _sorted_anchors(self) -> tuple[tuple[str, ...], tuple[list[int], ...]]:
        """Every anchor stem in code point order, and the topic indexes of each."""
        by_stem = self._anchors[0]
        ordered = tuple(sorted(by_stem))
        return ordered, tuple(by_stem[stem] for stem in ordered)

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
