"""bounce score: a weighted score per subscriber, forgotten a window after the last bounce

Revision ID: 0016_bounce_score
Revises: 0011_perf
Create Date: 2026-12-01 03:00:00.000000

Additive: two columns on subscribers. A count kept before this revision becomes a score of
one per bounce (every bounce counted then was a hard one), dated now, so it is forgotten a
window after the upgrade unless another bounce comes. The downgrade drops the two columns.
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0016_bounce_score"
down_revision: str | None = "0011_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(
            sa.Column("bounce_score", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_bounce_at", UtcDateTime(), nullable=True))
    subscribers = sa.table(
        "subscribers",
        sa.column("bounce_count", sa.Integer()),
        sa.column("bounce_score", sa.Float()),
        sa.column("last_bounce_at", UtcDateTime()),
    )
    op.execute(
        subscribers.update()
        .where(subscribers.c.bounce_count > 0)
        .values(
            bounce_score=sa.cast(subscribers.c.bounce_count, sa.Float()),
            last_bounce_at=dt.datetime.now(dt.UTC),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("last_bounce_at")
        batch.drop_column("bounce_score")
