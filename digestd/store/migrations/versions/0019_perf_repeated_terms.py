"""the full-text index also says which stems and pairs a paper repeats

Revision ID: 0019_perf_repeats
Revises: 0018_perf_words
Create Date: 2026-12-01 18:00:00.000000

Data only: the index's tokens gained the repeated stems and pairs of each part
(digestd.topics.candidates.REPEAT_MARK), which the score bound now relies on: a paper indexed
without them would be bounded as if it repeated nothing. So what the index holds is dropped
with the state that says which papers are indexed, and the next candidate query indexes every
paper again from its kept words (see digestd.store.terms.refresh_terms). The downgrade does
the same, so the older code indexes the papers its own way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_perf_repeats"
down_revision: str | None = "0018_perf_words"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# 0014's own steps, written out again: a migration stays as it was written, so two of them
# share no code that a later change could alter under one of them
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
