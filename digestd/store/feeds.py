"""The papers of a feed in arrival order: counts and pages for the current feeds and archives.

A feed is every stored paper (`slugs` None) or the papers matching any of `slugs`' active
topics. Arrival order is first-seen time, and within one batch the dump's own order (paper
ids grow in the order the dump listed them): newest first means the latest batch first and,
inside it, the first paper the dump listed first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, exists, func, select

from digestd.store.db import Database
from digestd.store.models import Paper, PaperTopic, Topic


def _in_feed(query: Select, slugs: Sequence[str] | None) -> Select:  # type: ignore[type-arg]
    if slugs is None:
        return query
    matched = (
        exists()
        .where(PaperTopic.paper_id == Paper.id)
        .where(PaperTopic.topic_id == Topic.id)
        .where(Topic.slug.in_(list(slugs)), Topic.active.is_(True))
    )
    return query.where(matched)


class FeedStore(Database):
    def feed_paper_count(self, slugs: Sequence[str] | None) -> int:
        """How many papers the feed of `slugs` (None: every paper) has ever held."""
        if slugs is not None and not slugs:
            return 0
        with self.read() as session:
            return session.scalar(_in_feed(select(func.count(Paper.id)), slugs)) or 0

    def feed_paper_ids(
        self, slugs: Sequence[str] | None, *, newest_first: bool, offset: int, limit: int
    ) -> list[int]:
        """A slice of the feed's paper ids in arrival order (or its reverse)."""
        if limit <= 0 or (slugs is not None and not slugs):
            return []
        if newest_first:
            order = (Paper.first_seen_at.desc(), Paper.batch_id.desc(), Paper.id.asc())
        else:
            order = (Paper.first_seen_at.asc(), Paper.batch_id.asc(), Paper.id.desc())
        query = _in_feed(select(Paper.id), slugs).order_by(*order).offset(offset).limit(limit)
        with self.read() as session:
            return list(session.scalars(query))

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
