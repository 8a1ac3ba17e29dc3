"""subscriber tokens stored as hashes

Revision ID: 0006_ops
Revises: 0005_relevance
Create Date: 2026-11-30 20:20:00.000000

Each existing token is kept as the SHA-256 hash of itself in subscriber_tokens, so every link
already handed out keeps working, and the plain token leaves the database. New tokens are
derived from a per-subscriber salt and a key kept outside the database.

The downgrade keeps every subscriber but cannot bring the plain tokens back (only their hashes
were kept): each subscriber gets a new random token, and links handed out before stop working.
"""

import hashlib
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0006_ops"
down_revision: str | None = "0005_relevance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriber_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_subscriber_tokens_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_subscriber_tokens")),
    )
    op.create_index(
        op.f("ix_subscriber_tokens_subscriber_id"), "subscriber_tokens", ["subscriber_id"]
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_salt", sa.String(length=32), nullable=True))

    connection = op.get_bind()
    subscribers = sa.table(
        "subscribers", sa.column("id", sa.Integer), sa.column("token", sa.String),
        sa.column("link_salt", sa.String), sa.column("created_at", UtcDateTime),
    )
    tokens = sa.table(
        "subscriber_tokens", sa.column("token_hash", sa.String),
        sa.column("subscriber_id", sa.Integer), sa.column("created_at", UtcDateTime),
    )
    rows = connection.execute(
        sa.select(subscribers.c.id, subscribers.c.token, subscribers.c.created_at)
    ).all()
    for subscriber_id, token, created_at in rows:
        connection.execute(
            tokens.insert().values(
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                subscriber_id=subscriber_id, created_at=created_at,
            )
        )
        connection.execute(
            subscribers.update().where(subscribers.c.id == subscriber_id)
            .values(link_salt=secrets.token_hex(16))
        )

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("link_salt", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint("uq_subscribers_token_lookup", type_="unique")
        batch_op.drop_column("token_lookup")
        batch_op.drop_column("token")


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("token_lookup", sa.String(length=16), nullable=True))

    connection = op.get_bind()
    subscribers = sa.table(
        "subscribers", sa.column("id", sa.Integer), sa.column("token", sa.String),
        sa.column("token_lookup", sa.String),
    )
    for (subscriber_id,) in connection.execute(sa.select(subscribers.c.id)).all():
        token = secrets.token_urlsafe(9)[:12] + secrets.token_urlsafe(32)
        connection.execute(
            subscribers.update().where(subscribers.c.id == subscriber_id)
            .values(token=token, token_lookup=token[:12])
        )

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("token", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("token_lookup", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint("uq_subscribers_token_lookup", ["token_lookup"])
        batch_op.drop_column("link_salt")
    op.drop_index(op.f("ix_subscriber_tokens_subscriber_id"), table_name="subscriber_tokens")
    op.drop_table("subscriber_tokens")
