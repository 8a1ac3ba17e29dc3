"""the full-text index holds the matcher's stems and words, and the title's apart

Revision ID: 0014_perf
Revises: 0012_rising
Create Date: 2026-12-01 03:00:00.000000

Data only: the index's tokens changed (digestd.topics.candidates.paper_tokens), so what it
holds is dropped together with the state that says which papers are indexed, and the next
candidate query indexes every paper again (see digestd.store.terms.refresh_terms). The
downgrade does the same, so the older code indexes the papers its own way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_perf"
down_revision: str | None = "0012_rising"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _forget_index() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DELETE FROM paper_terms")
    else:
        # a contentless FTS5 table is emptied with its own command
        op.execute("INSERT INTO paper_terms (paper_terms) VALUES ('delete-all')")
    op.execute("DELETE FROM paper_terms_state")


def upgrade() -> None:
    _forget_index()


def downgrade() -> None:
    _forget_index()
