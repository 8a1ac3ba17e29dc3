"""Subscribers, the topics they follow, and the selection of papers due in their next digest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digestd.bounce_score import BounceRules, BounceScore, Severity
from digestd.errors import OptedOutError, StoreError, SubscriberError
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
from digestd.store.tokens import TokenStore, derive_token, new_salt
from digestd.store.topics import PaperMatch


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
    #: the row's last change (topics, preferences, status): private feeds' Last-Modified
    updated_at: dt.datetime | None = None
    #: the last bounce's reply or report, and why the subscriber is paused
    last_error: str | None = None
    pause_reason: str | None = None
    #: the bounce score as it stands (bounce_count is the bounces in it), and when it goes
    #: back to zero if no bounce comes (None when it is zero)
    bounce_score: float = 0.0
    bounce_resets_at: dt.datetime | None = None
    #: whether their digests carry a "rising" section
    rising: bool = False

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
            "bounces": self.bounce_count,
            "bounce_score": self.bounce_score,
            "bounce_resets": self.bounce_resets_at.isoformat() if self.bounce_resets_at else None,
            "last_error": self.last_error,
            "pause_reason": self.pause_reason,
            "rising": self.rising,
        }


@dataclass(frozen=True, slots=True)
class SelectedPaper:
    """A paper due in a subscriber's digest, with the subscriber's topics it matched."""

    paper: PaperRecord
    matches: tuple[PaperMatch, ...]

    @property
    def score(self) -> float:
        return self.matches[0].score if self.matches else 0.0


def _bounce_rules(session: Session) -> BounceRules:
    return session.info.get("bounce_rules") or BounceRules()


def _stored_score(subscriber: Any) -> BounceScore:
    return BounceScore(
        subscriber.bounce_count, subscriber.bounce_score or 0.0, subscriber.last_bounce_at
    )


def subscriber_record_of(
    row: Any, topics: Sequence[str], link_key: bytes | None, rules: BounceRules,
    now: dt.datetime,
) -> SubscriberRecord:
    """The record of a subscriber row: an ORM `Subscriber` or a Core row of its table.

    The one place a record is made, so a field added to the record is read everywhere.
    """
    # as it stands now: a score whose window has passed is shown as the zero it has become
    bounces = _stored_score(row).current(rules, now)
    return SubscriberRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        cadence=row.cadence,
        timezone=row.timezone,
        # empty for a store opened without the link key (commands that make no links)
        token=derive_token(link_key, row.link_salt) if link_key else "",
        status=row.status,
        topics=tuple(topics),
        since_batch_id=row.since_batch_id,
        bounce_count=bounces.count,
        bounce_score=bounces.score,
        bounce_resets_at=bounces.resets_at(rules),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_slot_at=row.last_slot_at,
        updated_at=row.updated_at,
        last_error=row.last_error,
        pause_reason=row.pause_reason,
        rising=bool(row.rising),
    )


def _subscriber_record(session: Session, subscriber: Subscriber) -> SubscriberRecord:
    slugs = session.scalars(
        select(Topic.slug)
        .join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber.id)
        .order_by(Topic.position, Topic.slug)
    )
    return subscriber_record_of(
        subscriber, list(slugs), session.info.get("link_key"), _bounce_rules(session), utcnow()
    )


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(text.split())[:limit]


def record_bounce_in(
    session: Session,
    subscriber: Subscriber,
    *,
    error: str,
    pause_after: int,
    now: dt.datetime,
    severity: Severity = "hard",
) -> bool:
    """Add one bounce to `subscriber`'s score inside the caller's transaction (a score whose
    window has passed starts again from zero); pause them once it reaches `pause_after`.
    True when this bounce paused them."""
    rules = _bounce_rules(session)
    after = _stored_score(subscriber).add(severity, rules, now)
    subscriber.bounce_count, subscriber.bounce_score = after.count, after.score
    subscriber.last_bounce_at = after.last_at
    subscriber.last_error = _one_line(error)
    if after.reaches(pause_after) and subscriber.status == "active":
        subscriber.status = "paused"
        subscriber.updated_at = now
        days = rules.window / dt.timedelta(days=1)
        subscriber.pause_reason = _one_line(
            f"bounce score {after.score:g} of {pause_after} ({after.count} bounces, each within "
            f"{days:g} days of the one before); the last: {error}"
        )
        return True
    return False


def _set_topics(session: Session, subscriber_id: int, topic_ids: Sequence[int]) -> None:
    """The subscriber follows exactly these topics from now on."""
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    session.add_all(
        SubscriberTopic(subscriber_id=subscriber_id, topic_id=topic_id) for topic_id in topic_ids
    )
    session.flush()


def _clear_bounces(row: Subscriber) -> None:
    row.bounce_count = 0
    row.bounce_score = 0.0
    row.last_bounce_at = None


class SubscriberStore(TokenStore):
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
        resubscribe: bool = False,
        rising: bool | None = None,
    ) -> tuple[SubscriberRecord, bool]:
        """Add a subscriber, or update the one with this address; returns (record, created).

        A new subscriber starts after the newest batch: they get what comes next, not the
        archive. None leaves a field of an existing subscriber as it was. Someone who
        unsubscribed stays unsubscribed (`OptedOutError`) unless `resubscribe` is given; a
        `status` of "unsubscribed" records an opt-out, whatever the state was.
        """
        with self.write() as session:
            topic_ids = self._require_topics(session, topics)
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))
            created = row is None
            now = utcnow()
            if (
                row is not None and row.status == "unsubscribed" and status != "unsubscribed"
                and not resubscribe
            ):
                when = row.unsubscribed_at.date().isoformat() if row.unsubscribed_at else "?"
                raise OptedOutError(
                    f"{row.email} unsubscribed on {when}; not subscribed again without "
                    "--resubscribe"
                )
            if row is None:
                row = Subscriber(
                    email_key=email_key,
                    link_salt=new_salt(),
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
                if status == "unsubscribed":
                    row.unsubscribed_at = now
            elif status == "unsubscribed" and row.status != "unsubscribed":
                row.status = "unsubscribed"
                row.unsubscribed_at = now
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
            if rising is not None:
                row.rising = rising
            row.updated_at = now
            session.flush()
            if created:
                self._register_token(session, row.id, row.link_salt)
            if topics:
                _set_topics(session, row.id, topic_ids)
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
        """The subscriber a private link (manage, feed, unsubscribe) belongs to, or None."""
        subscriber_id = self.subscriber_id_by_token(token)
        if subscriber_id is None:
            return None
        with self.read() as session:
            row = session.get(Subscriber, subscriber_id)
            return _subscriber_record(session, row) if row else None

    def subscribers(
        self, *, status: str | None = None, bouncing: bool = False
    ) -> list[SubscriberRecord]:
        """Subscribers by address; `bouncing`: only those with a bounce score (which may have
        gone back to zero since: see `SubscriberRecord.bounce_score`)."""
        query = select(Subscriber).order_by(Subscriber.email_key)
        if status is not None:
            query = query.where(Subscriber.status == status)
        if bouncing:
            query = query.where(Subscriber.bounce_count > 0)
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
            if status != "paused":
                row.pause_reason = None

    def record_bounce(
        self,
        subscriber_id: int,
        *,
        error: str,
        pause_after: int,
        now: dt.datetime | None = None,
        severity: Severity = "hard",
    ) -> SubscriberRecord | None:
        """One bounce for this subscriber (a refused delivery, or a bounce report that came
        back by mail): its weight is added to the score, the error is kept, and at
        `pause_after` they are paused with the reason (see `record_bounce_in`)."""
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                return None
            record_bounce_in(
                session, row, error=error, pause_after=pause_after, now=now or utcnow(),
                severity=severity,
            )
            session.flush()
            return _subscriber_record(session, row)

    def rotate_token(self, subscriber_id: int) -> str:
        """Replace the link token: every old private link stops working at once."""
        if not self.link_key:
            raise StoreError("no link key: private links cannot be made")
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            self._replace_tokens(session, row)
            return self.link_token(row.link_salt)

    def resume_subscriber(self, subscriber_id: int) -> SubscriberRecord | None:
        """Paused or unsubscribed → active (through a private link, so no confirmation)."""
        now = utcnow()
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                return None
            if row.status == "unsubscribed":
                # Coming back: what came while away is not mailed all at once.
                self._activate(session, row, now)
            elif row.status == "paused":
                row.status = "active"
                _clear_bounces(row)
                row.pause_reason = None
                row.updated_at = now
            return _subscriber_record(session, row)

    @staticmethod
    def _activate(session: Session, row: Subscriber, now: dt.datetime) -> None:
        row.status = "active"
        row.since_batch_id = session.scalar(select(func.max(Batch.id))) or 0
        row.unsubscribed_at = None
        _clear_bounces(row)
        row.pause_reason = None
        row.updated_at = now

    def update_preferences(
        self,
        subscriber_id: int,
        *,
        name: str,
        cadence: str,
        timezone: str,
        topics: Sequence[str],
        rising: bool | None = None,
    ) -> SubscriberRecord:
        with self.write() as session:
            topic_ids = self._require_topics(session, topics)
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            row.name = name
            row.cadence = cadence
            row.timezone = timezone
            if rising is not None:
                row.rising = rising
            row.updated_at = utcnow()
            _set_topics(session, row.id, topic_ids)
            return _subscriber_record(session, row)

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

        Ranked by the best normalised score among the subscriber's topics (a stable sort over
        the best raw score, then upvotes, then newest); digestd.ranking.fair decides which of
        them a digest shows.
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
        selected = [
            SelectedPaper(p, tuple(m for m in matches[p.id] if m.slug in wanted)) for p in papers
        ]
        # raw scores are not comparable across topics: rank by the best normalised one
        selected.sort(key=lambda item: -item.matches[0].normalised if item.matches else 0.0)
        return selected
