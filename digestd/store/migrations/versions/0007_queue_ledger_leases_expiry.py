"""delivery queue: per-message claims, expiry, subscribers' last error and pause reason

Revision ID: 0007_queue
Revises: 0006_ops
Create Date: 2026-11-30 20:40:00.000000

Plain ADD/DROP COLUMN on both backends (SQLite >= 3.35 has DROP COLUMN): no table is
rebuilt, so no foreign key can cascade and every row stays.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0007_queue"
down_revision: str | None = "0006_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("claimed_by", sa.String(length=32), nullable=True))
    op.add_column("deliveries", sa.Column("queued_at", UtcDateTime(), nullable=True))
    op.add_column("subscribers", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("subscribers", sa.Column("pause_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # Older code knows no "expired" row: those are failed to it, and stay listed.
    op.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'expired'")
    for table, column in (
        ("subscribers", "pause_reason"),
        ("subscribers", "last_error"),
        ("deliveries", "queued_at"),
        ("deliveries", "claimed_by"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
