"""Subscribers, the topics they follow, and the selection of papers due in their next digest."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digestd.errors import SubscriberError
from digestd.store.db import Database
from digestd.store.models import (
    Batch,
    Paper,
    PaperTopic,
    Subscriber,
    SubscriberTopic,
    Topic,
    utcnow,
)
from digestd.store.papers import _record
from digestd.store.records import PaperRecord
from digestd.store.topics import PaperMatch

TOKEN_LOOKUP_CHARS = 12


def new_token() -> str:
    """An unguessable link token: 12 lookup characters, then 32 bytes of secret."""
    return secrets.token_urlsafe(9)[:TOKEN_LOOKUP_CHARS] + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    id: int
    email: str
    name: str
    cadence: str
    timezone: str
    token: str
    status: str
    topics: tuple[str, ...]
    since_batch_id: int
    bounce_count: int
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    last_slot_at: dt.datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "email": self.email,
            "name": self.name,
            "topics": list(self.topics),
            "cadence": self.cadence,
            "timezone": self.timezone,
            "status": self.status,
            "created": self.created_at.isoformat(),
            "confirmed": self.confirmed_at.isoformat() if self.confirmed_at else None,
        }


@dataclass(frozen=True, slots=True)
class SelectedPaper:
    """A paper due in a subscriber's digest, with the subscriber's topics it matched."""

    paper: PaperRecord
    matches: tuple[PaperMatch, ...]

    @property
    def score(self) -> float:
        return self.matches[0].score if self.matches else 0.0


def _subscriber_record(session: Session, subscriber: Subscriber) -> SubscriberRecord:
    slugs = session.scalars(
        select(Topic.slug)
        .join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber.id)
        .order_by(Topic.position, Topic.slug)
    )
    return SubscriberRecord(
        id=subscriber.id,
        email=subscriber.email,
        name=subscriber.name,
        cadence=subscriber.cadence,
        timezone=subscriber.timezone,
        token=subscriber.token,
        status=subscriber.status,
        topics=tuple(slugs),
        since_batch_id=subscriber.since_batch_id,
        bounce_count=subscriber.bounce_count,
        created_at=subscriber.created_at,
        confirmed_at=subscriber.confirmed_at,
        last_slot_at=subscriber.last_slot_at,
    )


class SubscriberStore(Database):
    def save_subscriber(
        self,
        *,
        email: str,
        email_key: str,
        name: str | None,
        cadence: str | None,
        timezone: str | None,
        topics: Sequence[str],
        status: str = "active",
    ) -> tuple[SubscriberRecord, bool]:
        """Add a subscriber, or update the one with this address; returns (record, created).

        A new subscriber starts after the newest batch: they get what comes next, not the
        archive. None leaves a field of an existing subscriber as it was.
        """
        with self.write() as session:
            topic_ids = self._require_topics(session, topics)
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))
            created = row is None
            now = utcnow()
            if row is None:
                token = new_token()
                row = Subscriber(
                    email_key=email_key,
                    token=token,
                    token_lookup=token[:TOKEN_LOOKUP_CHARS],
                    since_batch_id=session.scalar(select(func.max(Batch.id))) or 0,
                    created_at=now,
                    status=status,
                    bounce_count=0,
                    confirmed_at=now if status == "active" else None,
                    name="",
                    cadence="daily",
                    timezone="UTC",
                )
                session.add(row)
            elif row.status == "unsubscribed" and status == "active":
                # Coming back: start after the newest batch, like a new subscriber.
                row.status = "active"
                row.since_batch_id = session.scalar(select(func.max(Batch.id))) or 0
                row.unsubscribed_at = None
            row.email = email
            if name is not None:
                row.name = name
            if cadence is not None:
                row.cadence = cadence
            if timezone is not None:
                row.timezone = timezone
            row.updated_at = now
            session.flush()
            if topics:
                session.execute(
                    delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == row.id)
                )
                session.add_all(
                    SubscriberTopic(subscriber_id=row.id, topic_id=topic_id)
                    for topic_id in topic_ids
                )
                session.flush()
            return _subscriber_record(session, row), created

    @staticmethod
    def _require_topics(session: Session, slugs: Sequence[str]) -> list[int]:
        known = dict(
            session.execute(select(Topic.slug, Topic.id).where(Topic.active.is_(True))).all()
        )
        unknown = [s for s in slugs if s not in known]
        if unknown:
            raise SubscriberError(
                f"unknown topic {unknown[0]!r}; known topics: {', '.join(sorted(known))}"
            )
        return list(dict.fromkeys(known[s] for s in slugs))

    def subscriber(self, email_key: str) -> SubscriberRecord | None:
        with self.read() as session:
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))
            return _subscriber_record(session, row) if row else None

    def subscriber_by_token(self, token: str) -> SubscriberRecord | None:
        """The subscriber a private link belongs to; constant-time on the secret part."""
        if len(token) <= TOKEN_LOOKUP_CHARS or len(token) > 64:
            return None
        with self.read() as session:
            row = session.scalar(
                select(Subscriber).where(Subscriber.token_lookup == token[:TOKEN_LOOKUP_CHARS])
            )
            if row is None or not hmac.compare_digest(row.token.encode(), token.encode()):
                return None
            return _subscriber_record(session, row)

    def subscribers(self, *, status: str | None = None) -> list[SubscriberRecord]:
        query = select(Subscriber).order_by(Subscriber.email_key)
        if status is not None:
            query = query.where(Subscriber.status == status)
        with self.read() as session:
            return [_subscriber_record(session, row) for row in session.scalars(query)]

    def subscriber_counts(self) -> dict[str, int]:
        with self.read() as session:
            rows = session.execute(
                select(Subscriber.status, func.count(Subscriber.id)).group_by(Subscriber.status)
            )
            return {status: count for status, count in rows}

    def remove_subscriber(self, email_key: str) -> bool:
        with self.write() as session:
            result = session.execute(delete(Subscriber).where(Subscriber.email_key == email_key))
            return bool(result.rowcount)

    def set_subscriber_status(self, subscriber_id: int, status: str) -> None:
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            row.status = status
            row.updated_at = utcnow()
            if status == "unsubscribed":
                row.unsubscribed_at = row.updated_at
            if status == "active" and row.confirmed_at is None:
                row.confirmed_at = row.updated_at

    def rotate_token(self, subscriber_id: int) -> str:
        """Replace the link token: every old private link stops working at once."""
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            row.token = new_token()
            row.token_lookup = row.token[:TOKEN_LOOKUP_CHARS]
            return row.token

    def mark_slot_handled(self, subscriber_id: int, slot: dt.datetime) -> None:
        """Record that the daily/weekly slot was dealt with (mailed, or nothing to mail)."""
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is not None and (row.last_slot_at is None or row.last_slot_at < slot):
                row.last_slot_at = slot

    def latest_batch_id(self) -> int:
        with self.read() as session:
            return session.scalar(select(func.max(Batch.id))) or 0

    def due_papers(
        self,
        subscriber: SubscriberRecord,
        *,
        through_batch: int | None = None,
        limit: int | None = None,
    ) -> list[SelectedPaper]:
        """Papers stored after the subscriber's last digest that match their topics.

        Ranked by the best score among the subscriber's topics, then upvotes, then newest.
        `through_batch` bounds the selection so a digest describes a fixed set of batches
        even while new dumps arrive.
        """
        with self.read() as session:
            best = (
                select(
                    PaperTopic.paper_id,
                    func.max(PaperTopic.score).label("best"),
                )
                .join(SubscriberTopic, SubscriberTopic.topic_id == PaperTopic.topic_id)
                .join(Topic, Topic.id == PaperTopic.topic_id)
                .where(SubscriberTopic.subscriber_id == subscriber.id, Topic.active.is_(True))
                .group_by(PaperTopic.paper_id)
                .subquery()
            )
            query = (
                select(Paper, best.c.best)
                .join(best, best.c.paper_id == Paper.id)
                .where(Paper.batch_id > subscriber.since_batch_id)
                .order_by(
                    best.c.best.desc(),
                    func.coalesce(Paper.upvotes, -1).desc(),
                    Paper.first_seen_at.desc(),
                    Paper.id.desc(),
                )
            )
            if through_batch is not None:
                query = query.where(Paper.batch_id <= through_batch)
            if limit is not None:
                query = query.limit(limit)
            papers = [_record(p) for p, _score in session.execute(query)]
        matches = self.paper_matches(p.id for p in papers)  # type: ignore[attr-defined]
        wanted = set(subscriber.topics)
        return [
            SelectedPaper(p, tuple(m for m in matches[p.id] if m.slug in wanted)) for p in papers
        ]
