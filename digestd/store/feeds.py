"""The papers of a feed in arrival order: counts and pages for the current feeds and archives.

A feed is every stored paper (`slugs` None) or the papers matching any of `slugs`' active
topics. Arrival order is batch order (a batch is what one ingest of one dump stored, at one
time), and within a batch the dump's own order (paper ids grow in the order the dump listed
them): newest first means the latest batch first and, inside it, the dump's first paper first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from digestd.store.db import Database
from digestd.store.models import Paper, PaperTopic, Topic


def _topic_ids(session: Session, slugs: Sequence[str]) -> list[int]:
    query = select(Topic.id).where(Topic.slug.in_(list(slugs)), Topic.active.is_(True))
    return list(session.scalars(query))


def _in_feed(query: Select, topic_ids: list[int] | None) -> Select:  # type: ignore[type-arg]
    if topic_ids is None:
        return query
    # resolved to ids first: the probe is then paper_topics' primary key alone
    matched = exists().where(PaperTopic.paper_id == Paper.id, PaperTopic.topic_id.in_(topic_ids))
    return query.where(matched)


def _batch_counts(topic_ids: list[int] | None) -> Select:  # type: ignore[type-arg]
    """(batch id, papers of the feed in it), oldest batch first."""
    if topic_ids is None:
        return select(Paper.batch_id, func.count(Paper.id)).group_by(Paper.batch_id).order_by(
            Paper.batch_id
        )
    return (
        select(Paper.batch_id, func.count(func.distinct(Paper.id)))
        .join(PaperTopic, PaperTopic.paper_id == Paper.id)
        .where(PaperTopic.topic_id.in_(topic_ids))
        .group_by(Paper.batch_id)
        .order_by(Paper.batch_id)
    )


class FeedStore(Database):
    def feed_paper_count(self, slugs: Sequence[str] | None) -> int:
        """How many papers the feed of `slugs` (None: every paper) has ever held."""
        with self.read() as session:
            if slugs is None:
                return session.scalar(select(func.count(Paper.id))) or 0
            topic_ids = _topic_ids(session, slugs)
            if not topic_ids:
                return 0
            counted = func.count(func.distinct(PaperTopic.paper_id))
            query = select(counted).where(PaperTopic.topic_id.in_(topic_ids))
            return session.scalar(query) or 0

    def feed_paper_ids(
        self, slugs: Sequence[str] | None, *, newest_first: bool, offset: int, limit: int
    ) -> list[int]:
        """A slice of the feed's paper ids in arrival order (or its reverse).

        Oldest first (archive pages) walks the per-batch counts to the batch where the slice
        starts, so a page deep in a large feed costs a few index lookups, not a sort of every
        paper before it.
        """
        if limit <= 0:
            return []
        with self.read() as session:
            topic_ids = None if slugs is None else _topic_ids(session, slugs)
            if topic_ids == []:
                return []
            if newest_first:
                query = _in_feed(select(Paper.id), topic_ids).order_by(
                    Paper.batch_id.desc(), Paper.id.asc()
                )
                return list(session.scalars(query.offset(offset).limit(limit)))
            ids: list[int] = []
            position = 0
            for batch_id, count in session.execute(_batch_counts(topic_ids)):
                if position + count > offset:
                    query = (
                        _in_feed(select(Paper.id).where(Paper.batch_id == batch_id), topic_ids)
                        .order_by(Paper.id.desc())
                        .offset(max(0, offset - position))
                        .limit(limit - len(ids))
                    )
                    ids += session.scalars(query)
                    if len(ids) >= limit:
                        break
                position += count
            return ids

    def paper_topic_slugs(self, paper_ids: Iterable[int]) -> dict[int, list[str]]:
        """The active topics each paper is in, best score first: what a feed item shows."""
        ids = list(paper_ids)
        result: dict[int, list[tuple[float, str]]] = {i: [] for i in ids}
        with self.read() as session:
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(PaperTopic.paper_id, PaperTopic.score, Topic.slug)
                    .join(Topic, Topic.id == PaperTopic.topic_id)
                    .where(PaperTopic.paper_id.in_(ids[start : start + 500]))
                    .where(Topic.active.is_(True))
                )
                for paper_id, score, slug in rows:
                    result[paper_id].append((-score, slug))
        return {i: [slug for _, slug in sorted(found)] for i, found in result.items()}

    def batch_first_ids(self, batch_ids: Iterable[int]) -> dict[int, int]:
        """The smallest paper id of each batch: a paper's place in its dump is its id minus it."""
        wanted = sorted(set(batch_ids))
        result: dict[int, int] = {}
        with self.read() as session:
            for start in range(0, len(wanted), 500):
                rows = session.execute(
                    select(Paper.batch_id, func.min(Paper.id))
                    .where(Paper.batch_id.in_(wanted[start : start + 500]))
                    .group_by(Paper.batch_id)
                )
                result.update({batch: first for batch, first in rows})
        return result

    def topics_changed_at(self, slugs: Iterable[str]) -> list[dt.datetime]:
        """When each of these topics' rows last changed (name, description, query)."""
        wanted = list(slugs)
        if not wanted:
            return []
        with self.read() as session:
            return list(session.scalars(select(Topic.updated_at).where(Topic.slug.in_(wanted))))
