"""ratings and feedback_models: "more/less like this" and each reader's learned model

Revision ID: 0009_relevance
Revises: 0005_sources
Create Date: 2026-11-30 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0009_relevance"
down_revision: str | None = "0005_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("rated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_ratings_paper_id_papers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_ratings_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "paper_id", name=op.f("pk_ratings")),
    )
    op.create_table(
        "feedback_models",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("indexes", sa.LargeBinary(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("intercept", sa.Float(), nullable=False),
        sa.Column("ratings", sa.Integer(), nullable=False),
        sa.Column("trained_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_feedback_models_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", name=op.f("pk_feedback_models")),
    )


def downgrade() -> None:
    # Dropping the tables loses ratings; the downgrade exists for going back to an older
    # version, which cannot read them anyway.
    op.drop_table("feedback_models")
    op.drop_table("ratings")
