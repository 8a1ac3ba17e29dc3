"""each paper's words as the matcher reads them, kept so they are cut and stemmed once

Revision ID: 0018_perf_words
Revises: 0017_perf_claims
Create Date: 2026-12-01 05:40:00.000000

Additive: one table, paper id -> the packed words (digestd.topics.packed). Papers stored
before it have none: the next time a paper is matched (a re-match, or the full-text index
being built) its words are made from its text and kept. A kept string is only used for the
text it was made from, so nothing here has to be filled for the matches to stay right. The
downgrade drops the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_perf_words"
down_revision: str | None = "0017_perf_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paper_terms_words",
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("words", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("paper_id", name=op.f("pk_paper_terms_words")),
    )


def downgrade() -> None:
    op.drop_table("paper_terms_words")
