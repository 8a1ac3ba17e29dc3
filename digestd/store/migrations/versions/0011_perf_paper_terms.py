"""full-text index of papers' words, for picking a topic's candidate papers

Revision ID: 0011_perf
Revises: 0010_sources
Create Date: 2026-11-30 21:00:00.000000

Additive: an FTS5 table (SQLite) or a tsvector table with a GIN index (PostgreSQL), plus the
state table that says which paper version is indexed. Nothing is filled here: the first
candidate query indexes every paper (see digestd.store.terms.refresh_terms). The downgrade
drops only these tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0011_perf"
down_revision: str | None = "0010_sources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "paper_terms_state",
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("paper_id", name=op.f("pk_paper_terms_state")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE paper_terms (paper_id INTEGER PRIMARY KEY, terms tsvector NOT NULL)"
        )
        op.execute("CREATE INDEX ix_paper_terms_terms ON paper_terms USING gin (terms)")
    else:
        # no content of its own (the papers table has the text), tokens are [a-z0-9]+ made by
        # digestd, and only "which rows" is asked: the smallest FTS5 index that answers it
        op.execute(
            "CREATE VIRTUAL TABLE paper_terms USING fts5(terms, content='', "
            "tokenize='ascii', detail=none, columnsize=0)"
        )


def downgrade() -> None:
    op.execute("DROP TABLE paper_terms")
    op.drop_table("paper_terms_state")
