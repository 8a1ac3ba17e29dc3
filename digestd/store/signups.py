"""Web sign-ups: pending until the confirmation link is used, and forgotten when it is not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from sqlalchemy import delete, func, select, update

from digestd.store.models import Subscriber, utcnow
from digestd.store.subscribers import (
    SubscriberRecord,
    SubscriberStore,
    _set_topics,
    _subscriber_record,
)
from digestd.store.tokens import new_salt

#: what a web sign-up found: a new address, an unconfirmed one signing up again, a former
#: subscriber coming back (all three get a confirmation mail), or a current subscriber
#: (who gets their manage link instead, and nothing is changed)
SignupOutcome = Literal["new", "pending", "returning", "existing"]


class SignupStore(SubscriberStore):
    def request_signup(
        self,
        *,
        email: str,
        email_key: str,
        name: str,
        cadence: str,
        timezone: str,
        topics: Sequence[str],
        now: dt.datetime | None = None,
        rising: bool = False,
    ) -> tuple[SubscriberRecord, SignupOutcome]:
        """Record a sign-up from the web as pending, unless the address already subscribes.

        A current (active or paused) subscriber is left exactly as they are: whoever typed
        the address may not be its owner. Anybody else becomes or stays "pending" with the
        choices just made, until the confirmation link is used.
        """
        now = now or utcnow()
        with self.write() as session:
            topic_ids = self._require_topics(session, topics)
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))
            outcome: SignupOutcome
            if row is not None and row.status in ("active", "paused"):
                return _subscriber_record(session, row), "existing"
            if row is None:
                outcome = "new"
                row = Subscriber(
                    email_key=email_key, link_salt=new_salt(),
                    since_batch_id=0, created_at=now, status="pending", bounce_count=0,
                    rising=rising,
                )
                session.add(row)
            else:
                outcome = "pending" if row.status == "pending" else "returning"
                row.status = "pending"
            row.email = email
            row.name = name
            row.cadence = cadence
            row.timezone = timezone
            row.confirm_sent_at = now
            row.updated_at = now
            session.flush()
            if outcome == "new":
                self._register_token(session, row.id, row.link_salt)
            _set_topics(session, row.id, topic_ids)
            return _subscriber_record(session, row), outcome

    def confirm_subscriber(
        self, subscriber_id: int, now: dt.datetime | None = None
    ) -> SubscriberRecord | None:
        """Pending → active, starting after the newest batch; other states are left alone."""
        now = now or utcnow()
        with self.write() as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                return None
            if row.status == "pending":
                self._activate(session, row, now)
                row.confirmed_at = now
                row.confirm_sent_at = None
            return _subscriber_record(session, row)


    def purge_expired_signups(self, hours: float, now: dt.datetime | None = None) -> int:
        """Forget sign-ups not confirmed within `hours`; returns how many.

        A never-confirmed address is deleted; a former subscriber whose sign-up expired goes
        back to "unsubscribed". Counted web actions older than a day go too.
        """
        now = now or utcnow()
        cutoff = now - dt.timedelta(hours=hours)
        with self.write() as session:
            expired = Subscriber.status == "pending", func.coalesce(
                Subscriber.confirm_sent_at, Subscriber.created_at
            ) < cutoff
            deleted = session.execute(
                delete(Subscriber).where(*expired, Subscriber.confirmed_at.is_(None))
            ).rowcount or 0
            returned = session.execute(
                update(Subscriber)
                .where(*expired, Subscriber.confirmed_at.is_not(None))
                .values(status="unsubscribed", confirm_sent_at=None, updated_at=now)
            ).rowcount or 0
        self.purge_rate_events(now - dt.timedelta(days=1))  # type: ignore[attr-defined]
        return int(deleted) + int(returned)
