"""Topics mirrored from the configuration, and which papers each topic matched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, func, select

from digestd.gcpause import collector_paused
from digestd.ranking import TopicNormaliser
from digestd.store.db import Database
from digestd.store.highlights import Highlighter, Wanted
from digestd.store.matching import (
    Classify,
    Narrowing,
    active_topic_ids,
    insert_matches,
    match_row,
    match_rows,
    papers_to_match,
)
from digestd.store.models import Batch, Paper, PaperTopic, Topic, utcnow
from digestd.store.terms import mostly_indexed

if TYPE_CHECKING:
    from digestd.topics import TopicDefinition

#: a topic's scores are normalised against its this many newest matches
RECENT_MATCHES = 1000


@dataclass(frozen=True, slots=True)
class TopicRecord:
    id: int
    slug: str
    name: str
    description: str
    query: str
    active: bool
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class PaperMatch:
    """Why a paper is in a topic."""

    slug: str
    score: float
    terms: tuple[str, ...]
    highlights: tuple[str, ...]
    #: the score's percentile among the topic's recent matches (digestd.ranking.normalise):
    #: comparable across topics, unlike the raw score
    normalised: float = 0.5


def _topic_record(topic: Topic) -> TopicRecord:
    return TopicRecord(
        topic.id, topic.slug, topic.name, topic.description, topic.query, topic.active,
        topic.min_score or 0.0,
    )


class TopicStore(Database):
    def sync_topics(self, definitions: Sequence[TopicDefinition]) -> list[str]:
        """Mirror the configured topics; return the slugs that are new or whose query changed.

        Topics no longer configured are deactivated, not deleted, so a subscriber following
        one keeps the subscription should the topic come back.
        """
        if not self._topics_differ(definitions):
            # Nothing to write: a read-only command on a read-only database works, and an
            # unchanged configuration costs no write transaction.
            return []
        changed = []
        with self.write() as session:
            rows = {t.slug: t for t in session.scalars(select(Topic))}
            for position, definition in enumerate(definitions):
                row = rows.pop(definition.slug, None)
                if row is None:
                    row = Topic(slug=definition.slug, query="")
                    session.add(row)
                if (
                    row.query != definition.query
                    or (row.min_score or 0.0) != definition.min_score
                    or not row.active
                ):
                    changed.append(definition.slug)
                row.name = definition.name
                row.description = definition.description
                row.query = definition.query
                row.min_score = definition.min_score
                row.position = position
                row.active = True
                row.updated_at = utcnow()
            for gone in rows.values():
                gone.active = False
        return changed

    def _topics_differ(self, definitions: Sequence[TopicDefinition]) -> bool:
        """Whether the stored topics differ from `definitions` in anything sync_topics sets."""
        with self.read() as session:
            rows = {
                t.slug: (t.name, t.description, t.query, t.min_score or 0.0, t.position, t.active)
                for t in session.scalars(select(Topic))
            }
        for position, definition in enumerate(definitions):
            stored = rows.pop(definition.slug, None)
            wanted = (definition.name, definition.description, definition.query,
                      definition.min_score, position, True)
            if stored != wanted:
                return True
        return any(stored[-1] for stored in rows.values())

    def topics(self, *, include_inactive: bool = False) -> list[TopicRecord]:
        query = select(Topic).order_by(Topic.position, Topic.slug)
        if not include_inactive:
            query = query.where(Topic.active.is_(True))
        with self.read() as session:
            return [_topic_record(t) for t in session.scalars(query)]

    def topic_paper_counts(self, since: dt.datetime | None = None) -> dict[str, int]:
        """Papers matched per topic; with `since`, only papers first stored since then."""
        query = (
            select(Topic.slug, func.count(PaperTopic.paper_id))
            .join(PaperTopic, PaperTopic.topic_id == Topic.id)
            .group_by(Topic.slug)
        )
        if since is not None:
            query = query.join(Paper, Paper.id == PaperTopic.paper_id).where(
                Paper.first_seen_at >= since
            )
        with self.read() as session:
            return {slug: count for slug, count in session.execute(query)}

    def rematch_topics(self, slugs: Iterable[str], classify: Classify, page: int = 2000) -> int:
        """Recompute the matches of these topics over every stored paper; returns matches.

        `classify` must match at least these topics. One that can narrow (a `Narrowing`, as
        the runtime passes) is run only on each topic's candidate papers from the full-text
        index when a few topics changed; the result is the same.
        """
        slugs = set(slugs)
        if not slugs:
            return 0
        total = 0
        with self.write() as session, collector_paused():
            topic_ids = active_topic_ids(session)
            live = {s for s in slugs if s in topic_ids}
            # Most topics changed (a new database, a new topic set): nearly every paper is
            # some topic's candidate, so matching each paper directly is cheaper than building
            # the index first; narrowing still pays when the index is there already.
            narrow = isinstance(classify, Narrowing) and (
                len(live) * 2 <= len(topic_ids) or mostly_indexed(session)
            )
            session.execute(
                delete(PaperTopic).where(PaperTopic.topic_id.in_([topic_ids[s] for s in live]))
            )
            for rows, wanted in papers_to_match(session, classify, live, page, narrow=narrow):
                values = [
                    match_row(paper_id, topic_ids[m.slug], m)
                    for paper_id, matches in match_rows(session, classify, rows, wanted)
                    for m in matches
                    if m.slug in live
                ]
                insert_matches(session, values)
                total += len(values)
        return total

    def newest_paper_ids(self, slugs: Iterable[str], limit: int) -> dict[str, list[int]]:
        """Each active topic's newest `limit` paper ids, newest first by first-seen time.

        Walks the papers newest first (ix_papers_first_seen) probing paper_topics' key: a common
        topic stops after a few hundred probes, a rare one reads the index once, and no topic
        sorts all of its papers. The feeds are built from this after every batch.
        """
        result: dict[str, list[int]] = {}
        with self.read() as session:
            topic_ids = active_topic_ids(session)
            for slug in slugs:
                if slug not in topic_ids:
                    result[slug] = []
                    continue
                matched = exists().where(
                    PaperTopic.paper_id == Paper.id, PaperTopic.topic_id == topic_ids[slug]
                )
                query = (
                    select(Paper.id)
                    .where(matched)
                    .order_by(Paper.first_seen_at.desc(), Paper.id.desc())
                    .limit(limit)
                )
                result[slug] = list(session.scalars(query))
        return result

    def topic_normaliser(self) -> TopicNormaliser:
        """Each active topic's percentile function over its RECENT_MATCHES newest matches.

        Remembered until a batch arrives or the topics are synced (which is when matches
        change), so planning thousands of digests reads the scores once.
        """
        with self.read() as session:
            key = (
                session.scalar(select(func.max(Batch.id))),
                session.scalar(select(func.max(Topic.updated_at))),
            )
            cached: tuple[object, TopicNormaliser] | None = getattr(self, "_normaliser", None)
            if cached is not None and cached[0] == key:
                return cached[1]
            scores: dict[str, list[float]] = {}
            for slug, topic_id in active_topic_ids(session).items():
                scores[slug] = list(
                    session.scalars(
                        select(PaperTopic.score)
                        .join(Paper, Paper.id == PaperTopic.paper_id)
                        .where(PaperTopic.topic_id == topic_id)
                        .order_by(Paper.first_seen_at.desc(), Paper.id.desc())
                        .limit(RECENT_MATCHES)
                    )
                )
        normaliser = TopicNormaliser(scores)
        self._normaliser = (key, normaliser)
        return normaliser

    def paper_matches(self, paper_ids: Iterable[int]) -> dict[int, list[PaperMatch]]:
        """The active topics each paper is in, best normalised score first.

        Matches are stored without highlights; they are made here (.highlights).
        """
        ids = list(paper_ids)
        result: dict[int, list[PaperMatch]] = {i: [] for i in ids}
        normalise = self.topic_normaliser() if ids else None
        with self.read() as session:
            found: list[tuple[int, PaperMatch, Wanted | None]] = []
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(PaperTopic, Topic.slug, Topic.query, Paper.updated_at)
                    .join(Topic, Topic.id == PaperTopic.topic_id)
                    .join(Paper, Paper.id == PaperTopic.paper_id)
                    .where(PaperTopic.paper_id.in_(ids[start : start + 500]))
                    .where(Topic.active.is_(True))
                )
                for match, slug, query, updated_at in rows:
                    assert normalise is not None
                    stored = match.highlights
                    found.append((
                        match.paper_id,
                        PaperMatch(
                            slug, match.score, tuple(match.terms),
                            () if stored is None else tuple(stored),
                            normalise(slug, match.score),
                        ),
                        (match.paper_id, updated_at, query) if stored is None else None,
                    ))
            wanted = {key for _, _, key in found if key is not None}
            made = self._highlighter(session, wanted) if wanted else {}
        for paper_id, paper_match, key in found:
            if key is not None:
                # a paper deleted since its match was read has nothing to highlight
                paper_match = replace(paper_match, highlights=made.get(key, ()))
            result[paper_id].append(paper_match)
        for matches in result.values():
            matches.sort(key=lambda m: (-m.normalised, -m.score, m.slug))
        return result

    @cached_property
    def _highlighter(self) -> Highlighter:
        return Highlighter()
