"""What digest planning reads, set-wise: subscribers in two queries, papers as ids.

Planning looks at every active subscriber and, per distinct selection (the same topics since
the same batch), at the papers waiting. `SubscriberStore.subscribers` and `due_papers` build
full records (a query per subscriber for its topics, a private-link token each, whole papers
with their matches), which is what showing one subscriber needs and what planning a hundred
thousand cannot afford; these give the same answers in the few columns planning uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from digestd.store.db import Database
from digestd.store.models import Paper, PaperTopic, Subscriber, SubscriberTopic, Topic


@dataclass(frozen=True, slots=True)
class PlanSubscriber:
    """An active subscriber as planning sees them."""

    id: int
    email: str
    cadence: str
    timezone: str
    #: followed topics, in configuration order (as SubscriberRecord.topics)
    topics: tuple[str, ...]
    since_batch_id: int
    created_at: dt.datetime
    last_slot_at: dt.datetime | None


class PlanningStore(Database):
    def plan_subscribers(self) -> list[PlanSubscriber]:
        """Every active subscriber, in the order of `subscribers(status="active")`."""
        with self.read() as session:
            topics: dict[int, list[str]] = {}
            rows = session.execute(
                select(SubscriberTopic.subscriber_id, Topic.slug)
                .join(Topic, Topic.id == SubscriberTopic.topic_id)
                .join(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
                .where(Subscriber.status == "active")
                .order_by(SubscriberTopic.subscriber_id, Topic.position, Topic.slug)
            )
            for subscriber_id, slug in rows:
                topics.setdefault(subscriber_id, []).append(slug)
            query = (
                select(
                    Subscriber.id, Subscriber.email, Subscriber.cadence, Subscriber.timezone,
                    Subscriber.since_batch_id, Subscriber.created_at, Subscriber.last_slot_at,
                )
                .where(Subscriber.status == "active")
                .order_by(Subscriber.email_key)
            )
            return [
                PlanSubscriber(
                    row.id, row.email, row.cadence, row.timezone,
                    tuple(topics.get(row.id, ())), row.since_batch_id, row.created_at,
                    row.last_slot_at,
                )
                for row in session.execute(query)
            ]

    def due_paper_ids(
        self, topics: Iterable[str], *, since_batch: int, through_batch: int
    ) -> list[int]:
        """The ids `due_papers` selects for these topics, in its order, from one query."""
        slugs = list(topics)
        if not slugs or since_batch >= through_batch:
            return []
        normalise = self.topic_normaliser()  # type: ignore[attr-defined]
        with self.read() as session:
            rows = session.execute(
                select(
                    PaperTopic.paper_id, Topic.slug, PaperTopic.score, Paper.upvotes,
                    Paper.first_seen_at,
                )
                .join(Topic, Topic.id == PaperTopic.topic_id)
                .join(Paper, Paper.id == PaperTopic.paper_id)
                .where(
                    Topic.slug.in_(slugs),
                    Topic.active.is_(True),
                    Paper.batch_id > since_batch,
                    Paper.batch_id <= through_batch,
                )
            ).all()
        # paper id -> [best raw score, best normalised score, upvotes, first seen]
        papers: dict[int, list[object]] = {}
        for paper_id, slug, score, upvotes, first_seen in rows:
            normalised = normalise(slug, score)
            known = papers.get(paper_id)
            if known is None:
                papers[paper_id] = [score, normalised, upvotes, first_seen]
            else:
                known[0] = max(known[0], score)  # type: ignore[call-overload]
                known[1] = max(known[1], normalised)  # type: ignore[call-overload]
        # due_papers' SQL order (best raw score, upvotes, newest, id; all descending), then a
        # stable sort by the best normalised score
        ordered = sorted(
            papers.items(),
            key=lambda item: (
                item[1][0], item[1][2] if item[1][2] is not None else -1, item[1][3], item[0]
            ),
            reverse=True,
        )
        ordered.sort(key=lambda item: -item[1][1])  # type: ignore[operator]
        return [paper_id for paper_id, _ in ordered]
