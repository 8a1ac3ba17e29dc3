"""a paper whose text changes is forgotten by the full-text index at once, by the database

Revision ID: 0020_perf_forget
Revises: 0019_perf_repeats
Create Date: 2026-12-01 20:45:00.000000

Until now every candidate query first compared each paper's `updated_at` and text size with
what `paper_terms_state` recorded when the paper was indexed: a scan reading the text of
every paper (about 0.1 s for 50,000 on SQLite), and one that re-indexed every paper whose
upvotes changed (which bumps `updated_at`) and missed a rewrite of the same length by a writer
that left `updated_at` alone. Now triggers on `papers` delete a paper's state row when its
title, abstract or keywords change or the paper is deleted, so "not indexed as it is now" is
"no state row", an anti-join on ids (digestd.store.terms.refresh_terms).

The upgrade first deletes the state rows the old comparison calls stale, so that nothing
waiting to be indexed is forgotten. The state rows keep their `updated_at` and `size`, still
written, so the downgrade (which drops the triggers) leaves the older code a state it reads
right.

On SQLite a batch migration that rebuilds `papers` drops its triggers with the old table: a
later migration that does so must create them again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_perf_forget"
down_revision: str | None = "0019_perf_repeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the state rows the comparison before this revision called stale (no such paper any more,
# another updated_at, another text size); a NULL anywhere counts as stale too
_FORGET_STALE = """
DELETE FROM paper_terms_state WHERE NOT EXISTS (
    SELECT 1 FROM papers
    WHERE papers.id = paper_terms_state.paper_id
      AND papers.updated_at = paper_terms_state.updated_at
      AND paper_terms_state.size = length(papers.title) + length(papers.abstract)
          + coalesce(length(CAST(papers.keywords AS TEXT)), 0)
)
"""

_SQLITE = [
    # a change of the words the index holds; `IS NOT` is SQLite's NULL-safe "differs"
    """
    CREATE TRIGGER paper_terms_forget_changed AFTER UPDATE ON papers
    WHEN OLD.id IS NOT NEW.id OR OLD.title IS NOT NEW.title
      OR OLD.abstract IS NOT NEW.abstract OR OLD.keywords IS NOT NEW.keywords
    BEGIN
        DELETE FROM paper_terms_state WHERE paper_id = OLD.id;
    END
    """,
    """
    CREATE TRIGGER paper_terms_forget_deleted AFTER DELETE ON papers
    BEGIN
        DELETE FROM paper_terms_state WHERE paper_id = OLD.id;
    END
    """,
]

_POSTGRES = [
    # the schema the tables are in, fixed when the function is made (not the caller's path)
    """
    CREATE FUNCTION paper_terms_forget() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        DELETE FROM paper_terms_state WHERE paper_id = OLD.id;
        RETURN NULL;
    END
    $$
    """,
    # json has no equality operator: its text is compared
    """
    CREATE TRIGGER paper_terms_forget_changed AFTER UPDATE ON papers FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.title IS DISTINCT FROM NEW.title
          OR OLD.abstract IS DISTINCT FROM NEW.abstract
          OR CAST(OLD.keywords AS TEXT) IS DISTINCT FROM CAST(NEW.keywords AS TEXT))
    EXECUTE FUNCTION paper_terms_forget()
    """,
    """
    CREATE TRIGGER paper_terms_forget_deleted AFTER DELETE ON papers FOR EACH ROW
    EXECUTE FUNCTION paper_terms_forget()
    """,
]


def upgrade() -> None:
    op.execute(_FORGET_STALE)
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES if postgres else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER paper_terms_forget_deleted ON papers")
        op.execute("DROP TRIGGER paper_terms_forget_changed ON papers")
        op.execute("DROP FUNCTION paper_terms_forget()")
    else:
        op.execute("DROP TRIGGER paper_terms_forget_deleted")
        op.execute("DROP TRIGGER paper_terms_forget_changed")
