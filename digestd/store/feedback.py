"""Readers' ratings ("more/less like this") and the per-reader models learned from them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digestd.store.db import Database
from digestd.store.models import FeedbackModel, Paper, Rating, utcnow


@dataclass(frozen=True, slots=True)
class RatingRecord:
    paper_id: int
    paper_slug: str
    paper_title: str
    #: +1 "more like this", -1 "less like this"
    value: int
    rated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StoredModel:
    subscriber_id: int
    indexes: bytes
    weights: bytes
    intercept: float
    ratings: int
    trained_at: dt.datetime


class FeedbackStore(Database):
    def set_rating(
        self, subscriber_id: int, paper_id: int, value: int, *, now: dt.datetime | None = None
    ) -> bool:
        """Record +1, -1, or 0 (clear) for a paper; True when that changed anything."""
        if value not in (-1, 0, 1):
            raise ValueError(f"a rating is -1, 0 or 1, not {value!r}")
        with self.write() as session:
            row = session.get(Rating, (subscriber_id, paper_id))
            if value == 0:
                if row is None:
                    return False
                session.delete(row)
                return True
            if row is not None and row.value == value:
                return False
            if row is None:
                session.add(
                    Rating(
                        subscriber_id=subscriber_id, paper_id=paper_id, value=value,
                        rated_at=now or utcnow(),
                    )
                )
            else:
                row.value = value
                row.rated_at = now or utcnow()
            return True

    def ratings(self, subscriber_id: int) -> list[RatingRecord]:
        """A subscriber's ratings, newest first."""
        with self.read() as session:
            rows = session.execute(
                select(Rating, Paper.slug, Paper.title)
                .join(Paper, Paper.id == Rating.paper_id)
                .where(Rating.subscriber_id == subscriber_id)
                .order_by(Rating.rated_at.desc(), Rating.paper_id.desc())
            ).all()
            return [
                RatingRecord(r.paper_id, slug, title, r.value, r.rated_at)
                for r, slug, title in rows
            ]

    def rating_counts(self, subscriber_ids: Iterable[int]) -> dict[int, int]:
        ids = list(subscriber_ids)
        with self.read() as session:
            return dict(
                session.execute(
                    select(Rating.subscriber_id, func.count())
                    .where(Rating.subscriber_id.in_(ids))
                    .group_by(Rating.subscriber_id)
                ).all()
            )

    def save_model(self, model: StoredModel) -> None:
        with self.write() as session:
            _delete_model(session, model.subscriber_id)
            session.add(
                FeedbackModel(
                    subscriber_id=model.subscriber_id, indexes=model.indexes,
                    weights=model.weights, intercept=model.intercept, ratings=model.ratings,
                    trained_at=model.trained_at,
                )
            )

    def drop_model(self, subscriber_id: int) -> None:
        with self.write() as session:
            _delete_model(session, subscriber_id)

    def feedback_model(self, subscriber_id: int) -> StoredModel | None:
        with self.read() as session:
            row = session.get(FeedbackModel, subscriber_id)
            if row is None:
                return None
            return StoredModel(
                row.subscriber_id, row.indexes, row.weights, row.intercept, row.ratings,
                row.trained_at,
            )


def _delete_model(session: Session, subscriber_id: int) -> None:
    session.execute(delete(FeedbackModel).where(FeedbackModel.subscriber_id == subscriber_id))
