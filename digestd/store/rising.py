"""What rising papers are computed from: the counted sightings of recently re-counted papers,
and when a reader last got a digest."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from digestd.ranking.rising import Count
from digestd.store.db import Database
from digestd.store.models import Delivery, Sighting

CHUNK = 500


class RisingStore(Database):
    def upvote_histories(self, since: dt.datetime) -> dict[int, list[Count]]:
        """Paper id -> its counted sightings, oldest first, for every paper with a counted
        sighting after `since` (those before `since` too: the baseline may be one of them)."""
        with self.read() as session:
            recent = select(Sighting.paper_id).where(
                Sighting.seen_at > since, Sighting.upvotes.is_not(None)
            ).distinct()
            ids = list(session.scalars(recent))
            histories: dict[int, list[Count]] = {}
            for start in range(0, len(ids), CHUNK):
                rows = session.execute(
                    select(Sighting.paper_id, Sighting.seen_at, Sighting.upvotes)
                    .where(
                        Sighting.paper_id.in_(ids[start : start + CHUNK]),
                        Sighting.upvotes.is_not(None),
                    )
                    .order_by(Sighting.paper_id, Sighting.seen_at, Sighting.id)
                )
                for paper_id, seen_at, upvotes in rows:
                    histories.setdefault(paper_id, []).append(Count(seen_at, upvotes))
            return histories

    def last_digest_sent_at(self, subscriber_id: int) -> dt.datetime | None:
        """When the reader's most recent digest was handed over (None: never)."""
        with self.read() as session:
            return session.scalar(
                select(func.max(Delivery.sent_at)).where(
                    Delivery.subscriber_id == subscriber_id, Delivery.status == "sent"
                )
            )
