"""Many subscribers at once, for the delivery benchmarks (one executemany per thousand)."""

from __future__ import annotations

import datetime as dt
import random
import secrets

from sqlalchemy import insert, select

from digestd.store import Store
from digestd.store.models import Subscriber, SubscriberTopic, Topic


def add_subscribers(store: Store, count: int, seed: int = 1) -> None:
    """`count` confirmed immediate subscribers, each on one to three random active topics."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    with store.write() as session:
        topic_ids = list(session.scalars(select(Topic.id).where(Topic.active.is_(True))))
        first = (session.scalar(select(Subscriber.id).order_by(Subscriber.id.desc())) or 0) + 1
        for start in range(0, count, 1000):
            numbers = range(start, min(start + 1000, count))
            session.execute(
                insert(Subscriber),
                [
                    {
                        "id": first + number,
                        "email": f"reader{number}@example.org",
                        "email_key": f"reader{number}@example.org",
                        "name": f"Reader {number}",
                        "cadence": "immediate",
                        "timezone": "UTC",
                        "link_salt": secrets.token_hex(16),
                        "status": "active",
                        "since_batch_id": 0,
                        "bounce_count": 0,
                        "created_at": now,
                        "updated_at": now,
                        "confirmed_at": now,
                    }
                    for number in numbers
                ],
            )
            session.execute(
                insert(SubscriberTopic),
                [
                    {"subscriber_id": first + number, "topic_id": topic_id}
                    for number in numbers
                    for topic_id in rng.sample(topic_ids, rng.randint(1, 3))
                ],
            )
