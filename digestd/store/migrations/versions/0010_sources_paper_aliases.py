"""sources: page slugs of merged papers lead to the paper they were merged into

Revision ID: 0010_sources
Revises: 0009_relevance
Create Date: 2026-11-30 21:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_sources"
down_revision: str | None = "0009_relevance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paper_aliases",
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_aliases_paper_id_papers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_paper_aliases")),
    )
    op.create_index(
        op.f("ix_paper_aliases_paper_id"), "paper_aliases", ["paper_id"], unique=False
    )


def downgrade() -> None:
    # The aliases are only old URLs; the papers they point to stay.
    op.drop_index(op.f("ix_paper_aliases_paper_id"), table_name="paper_aliases")
    op.drop_table("paper_aliases")
