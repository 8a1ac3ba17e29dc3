"""The only module that talks to the database: models, migrations, and the queries others need.

`Store` gathers one mixin per concern (the dump ledger, papers, ...) over a shared `Database`
that owns the engine and the sessions; callers get plain records back, never ORM objects.
"""

from __future__ import annotations

from digestd.store.claims import ClaimStore
from digestd.store.db import Database, create_store_engine
from digestd.store.deliveries import ClaimedDelivery, DeliveryRecord, DeliveryStore
from digestd.store.dumps import DumpLedger
from digestd.store.feedback import FeedbackStore, RatingRecord, StoredModel
from digestd.store.feeds import FeedStore
from digestd.store.keys import SiteKeyStore
from digestd.store.leadership import Leadership, open_leadership
from digestd.store.limits import RateLimitStore
from digestd.store.papers import PaperStore, paper_slug
from digestd.store.plan_rows import PlanRowStore
from digestd.store.planning import PlanningStore, PlanSubscriber
from digestd.store.records import LedgerEntry, PaperRecord, StoredDump
from digestd.store.retention import RetentionStore
from digestd.store.rising import RisingStore
from digestd.store.signups import SignupOutcome, SignupStore
from digestd.store.stats import StatsStore, StoreStats
from digestd.store.subscribers import SelectedPaper, SubscriberRecord
from digestd.store.topics import PaperMatch, TopicRecord, TopicStore


class Store(
    FeedbackStore, PlanningStore, PlanRowStore, ClaimStore, DeliveryStore, SignupStore,
    RateLimitStore,
    SiteKeyStore, TopicStore,
    PaperStore, FeedStore, DumpLedger, StatsStore, RetentionStore, RisingStore, Database,
):
    """All of digestd's persistent state, behind methods."""

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, link_key: bytes | None = None) -> Store:
        """A store on `url`; with `migrate`, its schema is created or brought to the newest."""
        store = cls(create_store_engine(url))
        store.link_key = link_key
        if migrate:
            store.migrate()
        return store


__all__ = [
    "ClaimedDelivery",
    "DeliveryRecord",
    "Leadership",
    "LedgerEntry",
    "PaperMatch",
    "PaperRecord",
    "PlanSubscriber",
    "RatingRecord",
    "SelectedPaper",
    "SignupOutcome",
    "Store",
    "StoreStats",
    "StoredDump",
    "StoredModel",
    "SubscriberRecord",
    "TopicRecord",
    "open_leadership",
    "paper_slug",
]
