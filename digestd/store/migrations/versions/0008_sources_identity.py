"""sources: arXiv identity, authors, links and other paper fields; revisions; skipped items

Revision ID: 0005_sources
Revises: 0007_queue
Create Date: 2026-11-30 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0005_sources"
down_revision: str | None = "0007_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAPER_JSON = ("authors", "keywords", "categories")


def upgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_key", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("arxiv_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("arxiv_version", sa.Integer(), nullable=True))
        for name in _PAPER_JSON:
            batch_op.add_column(sa.Column(name, sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ai_summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("github_repo", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("github_stars", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("project_page", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("comments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("source_links", sa.JSON(), nullable=True))
    # Every paper stored so far was known by its normalised title only.
    papers = sa.table(
        "papers",
        sa.column("key", sa.String),
        sa.column("title_key", sa.String),
        *(sa.column(name, sa.JSON) for name in _PAPER_JSON),
        sa.column("source_links", sa.JSON),
    )
    op.execute(
        papers.update().values(
            title_key=papers.c.key,
            **{name: sa.literal([], sa.JSON) for name in _PAPER_JSON},
            source_links=sa.literal({}, sa.JSON),
        )
    )
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.alter_column("title_key", existing_type=sa.String(length=1024), nullable=False)
        for name in _PAPER_JSON:
            batch_op.alter_column(name, existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("source_links", existing_type=sa.JSON(), nullable=False)
        batch_op.create_index(batch_op.f("ix_papers_title_key"), ["title_key"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_papers_arxiv_id"), ["arxiv_id"])

    with op.batch_alter_table("dumps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skipped_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("skipped_notes", sa.Text(), nullable=True))
    with op.batch_alter_table("dumps", schema=None) as batch_op:
        batch_op.alter_column("skipped_count", existing_type=sa.Integer(), server_default=None)

    op.create_table(
        "paper_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("replaced_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_revisions_paper_id_papers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_revisions")),
    )
    op.create_index(
        op.f("ix_paper_revisions_paper_id"), "paper_revisions", ["paper_id"], unique=False
    )


def downgrade() -> None:
    # Papers keyed by arXiv id go back to their title key, so that every row survives. Two
    # papers whose normalised titles collide keep the id in the key rather than lose a row.
    bind = op.get_bind()
    papers = sa.table(
        "papers",
        sa.column("id", sa.Integer),
        sa.column("key", sa.String),
        sa.column("title_key", sa.String),
        sa.column("arxiv_id", sa.String),
    )
    rows = bind.execute(
        sa.select(papers.c.id, papers.c.title_key).where(papers.c.arxiv_id.is_not(None))
    ).all()
    taken = set(bind.execute(sa.select(papers.c.key)).scalars())
    for paper_id, title_key in rows:
        if title_key not in taken:
            bind.execute(papers.update().where(papers.c.id == paper_id).values(key=title_key))
            taken.add(title_key)
    op.drop_index(op.f("ix_paper_revisions_paper_id"), table_name="paper_revisions")
    op.drop_table("paper_revisions")
    with op.batch_alter_table("dumps", schema=None) as batch_op:
        batch_op.drop_column("skipped_notes")
        batch_op.drop_column("skipped_count")
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_papers_arxiv_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_papers_title_key"))
        for name in (
            "source_links", "comments", "project_page", "github_stars", "github_repo",
            "ai_summary", *_PAPER_JSON, "arxiv_version", "arxiv_id", "title_key",
        ):
            batch_op.drop_column(name)
