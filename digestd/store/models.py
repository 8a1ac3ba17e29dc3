"""SQLAlchemy models: the schema every other module reaches only through the store.

The Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares
the two so they cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dump(Base):
    """The dump ledger: one row per path, recording what became of its latest content."""

    __tablename__ = "dumps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    #: "ingested" or "failed"
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    layout: Mapped[str | None] = mapped_column(String(32))
    #: listings in the dump (a paper listed twice counts twice)
    papers_count: Mapped[int] = mapped_column(Integer, default=0)
    #: papers this content brought that were never stored before
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    #: items of the dump that could not be read (a partly bad structured dump)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the first causes of those, one per line
    skipped_notes: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    ingested_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Batch(Base):
    """The new papers one ingest of one dump brought; feeds and digests publish per batch."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dump_id: Mapped[int] = mapped_column(ForeignKey("dumps.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    new_count: Mapped[int] = mapped_column(Integer)
    #: set once feeds were rebuilt for this batch
    published_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    papers: Mapped[list[Paper]] = relationship(back_populates="batch")


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: identity: "arxiv:<id>" once any source gave the arXiv id, else the normalised title
    #: (see digestd.parse.identity)
    key: Mapped[str] = mapped_column(String(1024), unique=True)
    #: the normalised title, always: how a listing without an id finds the paper
    title_key: Mapped[str] = mapped_column(String(1024), index=True)
    #: versionless arXiv id
    arxiv_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: the latest arXiv version seen
    arxiv_version: Mapped[int | None] = mapped_column(Integer)
    #: URL path segment of the paper's page; derived from the key, so it never changes
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    authors_count: Mapped[int | None] = mapped_column(Integer)
    organization_id: Mapped[str | None] = mapped_column(String(255))
    organization: Mapped[str | None] = mapped_column(String(255))
    published: Mapped[dt.date | None] = mapped_column(Date)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    #: the count of the first sighting that carried one, and when: what "+12 since Tuesday"
    #: is measured from (kept here, since retention lets old sightings go)
    first_upvotes: Mapped[int | None] = mapped_column(Integer)
    first_upvotes_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    links: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the authors' names, in order
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the source's own one-line summary (Hugging Face)
    ai_summary: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    github_repo: Mapped[str | None] = mapped_column(Text)
    github_stars: Mapped[int | None] = mapped_column(Integer)
    project_page: Mapped[str | None] = mapped_column(Text)
    comments: Mapped[int | None] = mapped_column(Integer)
    #: arXiv categories, the primary one first
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: links the sources gave, by kind: "abs", "pdf", "hf", "doi"
    source_links: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="papers")

    __table_args__ = (Index("ix_papers_first_seen", "first_seen_at", "id"),)


class PaperRevision(Base):
    """What a paper said before a newer version or listing changed its abstract or title."""

    __tablename__ = "paper_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    #: the arXiv version the old text belonged to, when known
    version: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text)
    #: when the newer text replaced it
    replaced_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class PaperAlias(Base):
    """The page slug of a paper that was merged into another: old links lead to the survivor."""

    __tablename__ = "paper_aliases"

    slug: Mapped[str] = mapped_column(String(128), primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)


class Sighting(Base):
    """A paper listed in a dump, with what that listing said at the time."""

    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    dump_id: Mapped[int] = mapped_column(ForeignKey("dumps.id", ondelete="CASCADE"), index=True)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    #: 1-based line of the listing's title in the dump
    line: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("paper_id", "dump_id", name="uq_sightings_paper_dump"),
        Index("ix_sightings_seen_at", "seen_at"),
    )


class Topic(Base):
    """A topic from the configuration, mirrored so papers and subscribers can refer to it."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    query: Mapped[str] = mapped_column(Text)
    #: matches scoring under this are not stored (the topic's min_score)
    min_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: order in the configuration, for listings
    position: Mapped[int] = mapped_column(Integer, default=0)
    #: false once the topic left the configuration; kept so subscriptions are not lost
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class PaperTopic(Base):
    """A paper matched by a topic, with the score and the terms that matched (for "why")."""

    __tablename__ = "paper_topics"

    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    score: Mapped[float] = mapped_column(Float)
    terms: Mapped[list[str]] = mapped_column(JSON, default=list)
    highlights: Mapped[list[str]] = mapped_column(JSON, default=list)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: as the subscriber wrote it (normalised by email-validator)
    email: Mapped[str] = mapped_column(String(320))
    #: lower-cased, for uniqueness: the same address added twice is one subscriber
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    #: "immediate", "daily" or "weekly"
    cadence: Mapped[str] = mapped_column(String(16), default="daily")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: the link token (feed, preferences, unsubscribe) is derived from this and the link key,
    #: which is kept outside the database; a new salt revokes every link. Only hashes of
    #: tokens are stored (subscriber_tokens), so the database alone hands out no link.
    link_salt: Mapped[str] = mapped_column(String(32))
    #: whether digests carry a "rising" section (papers of their topics gaining upvotes)
    rising: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: "pending", "active", "paused" or "unsubscribed"
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    #: papers of batches up to this id were delivered (or predate the subscription)
    since_batch_id: Mapped[int] = mapped_column(Integer, default=0)
    #: bounces since the score last reset; every reset (a delivery that succeeded, a resume)
    #: clears it, and a score without a count is none (see digestd.bounce_score)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the weighted sum of those bounces; the subscriber is paused at a threshold
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: when the last of them came: the score is forgotten a window after it
    last_bounce_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: the last bounce (refusal or delivery status notification), for operators
    last_error: Mapped[str | None] = mapped_column(Text)
    #: why the subscriber is paused (cleared when they are active again)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    #: the last daily/weekly slot that was handled (mailed, or found with nothing to mail)
    last_slot_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: when the last confirmation mail of a web sign-up went out; a pending sign-up
    #: expires this long after it (subscribe.confirm_hours)
    confirm_sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class RateEvent(Base):
    """One counted action (a sign-up, a confirmation mail) for the web's hourly limits.

    Kept in the database rather than in memory so that limits hold across every digestd
    process sharing it. `key` is a hash of what is limited (an address, a client IP).
    """

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_rate_events_kind_key_at", "kind", "key", "at"),)


class SiteKey(Base):
    """Secrets generated once per installation (signing confirmation links, CSRF tokens).

    In the database so that every process sharing it signs and checks with the same key.
    """

    __tablename__ = "site_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class SubscriberToken(Base):
    """A valid private-link token of a subscriber, by its SHA-256 hash.

    A subscriber may have several: the one derived from each link key in use, and a token
    from before tokens were derived, kept so links already handed out keep working.
    """

    __tablename__ = "subscriber_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Delivery(Base):
    """The delivery ledger: one row per subscriber and digest, so nothing is sent twice.

    A digest covers the subscriber's papers of batches (since_batch_id, through_batch_id]. The
    row is marked sent only after the transport accepted the message; a crash between the
    two is the one window in which a message can go out twice.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    #: identifies the digest for this subscriber: "<since>-<through>" batch ids
    digest_key: Mapped[str] = mapped_column(String(64))
    since_batch_id: Mapped[int] = mapped_column(Integer)
    through_batch_id: Mapped[int] = mapped_column(Integer)
    #: the papers the digest holds, fixed when the row is created
    paper_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    #: "pending", "sending", "sent", "failed" or "expired" (queued past
    #: delivery.max_queue_hours without being handed over)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    #: a pending row is not tried again before this time (retry backoff)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    #: a "sending" row whose claim expired belongs to a process that died: retry it
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    #: the sending run that holds the claim; only it may take the row in hand
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    #: when the row last entered the queue (planned, or retried by an operator); it expires
    #: delivery.max_queue_hours later. None: created_at.
    queued_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("subscriber_id", "digest_key", name="uq_deliveries_subscriber_digest"),
        # claims take the first due rows of a status in id order (store/claims.py)
        Index("ix_deliveries_status_id", "status", "id"),
    )


class Rating(Base):
    """A reader's "more like this" (+1) or "less like this" (-1) on one paper."""

    __tablename__ = "ratings"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(
        ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class FeedbackModel(Base):
    """A subscriber's learned preference: a sparse linear model over hashed TF-IDF features.

    Stored as little-endian int32 feature indexes and float32 weights: the features present in
    the papers the subscriber rated, a few thousand at most.
    """

    __tablename__ = "feedback_models"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    indexes: Mapped[bytes] = mapped_column(LargeBinary)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    intercept: Mapped[float] = mapped_column(Float, default=0.0)
    #: how many ratings it was trained on
    ratings: Mapped[int] = mapped_column(Integer, default=0)
    trained_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
