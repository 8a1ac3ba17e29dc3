"""rising papers: each paper's first known upvote count, and the per-subscriber rising section

Revision ID: 0012_rising
Revises: 0016_bounce_score
Create Date: 2026-12-01 02:40:00.000000

Additive. ``papers.first_upvotes``/``first_upvotes_at`` keep the count of the first sighting
that carried one, so "+12 since Tuesday" survives retention purging old sightings; they are
filled from the sightings already stored. ``subscribers.rising`` (off) asks for a "rising"
section in digests. An index on ``sightings.seen_at`` serves the rising window (and retention).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0012_rising"
down_revision: str | None = "0016_bounce_score"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_upvotes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_upvotes_at", UtcDateTime(), nullable=True))
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rising", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_sightings_seen_at", "sightings", ["seen_at"], unique=False)

    # The baseline of papers stored before: their earliest sighting that carried a count.
    sightings = sa.table(
        "sightings", sa.column("id", sa.Integer), sa.column("paper_id", sa.Integer),
        sa.column("upvotes", sa.Integer), sa.column("seen_at", UtcDateTime()),
    )
    papers = sa.table(
        "papers", sa.column("id", sa.Integer), sa.column("first_upvotes", sa.Integer),
        sa.column("first_upvotes_at", UtcDateTime()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(sightings.c.paper_id, sightings.c.upvotes, sightings.c.seen_at)
        .where(sightings.c.upvotes.is_not(None))
        .order_by(sightings.c.paper_id, sightings.c.seen_at, sightings.c.id)
    )
    first: dict[int, tuple[int, object]] = {}
    for paper_id, upvotes, seen_at in rows:
        first.setdefault(paper_id, (upvotes, seen_at))
    values = [
        {"pid": paper_id, "n": upvotes, "at": seen_at}
        for paper_id, (upvotes, seen_at) in first.items()
    ]
    if values:
        bind.execute(
            papers.update()
            .where(papers.c.id == sa.bindparam("pid"))
            .values(first_upvotes=sa.bindparam("n"), first_upvotes_at=sa.bindparam("at")),
            values,
        )


def downgrade() -> None:
    op.drop_index("ix_sightings_seen_at", table_name="sightings")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("rising")
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_column("first_upvotes_at")
        batch_op.drop_column("first_upvotes")
