"""dump ledger, papers, batches and sightings

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:48:34.495362
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digestd.store.models import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dumps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("layout", sa.String(length=32), nullable=True),
        sa.Column("papers_count", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("ingested_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dumps")),
        sa.UniqueConstraint("path", name=op.f("uq_dumps_path")),
    )
    with op.batch_alter_table("dumps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dumps_content_hash"), ["content_hash"], unique=False)

    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dump_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["dump_id"], ["dumps.id"], name=op.f("fk_batches_dump_id_dumps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_batches_dump_id"), ["dump_id"], unique=False)

    op.create_table(
        "papers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("authors_count", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("organization", sa.String(length=255), nullable=True),
        sa.Column("published", sa.Date(), nullable=True),
        sa.Column("upvotes", sa.Integer(), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_papers_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_papers")),
        sa.UniqueConstraint("key", name=op.f("uq_papers_key")),
        sa.UniqueConstraint("slug", name=op.f("uq_papers_slug")),
    )
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_papers_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index("ix_papers_first_seen", ["first_seen_at", "id"], unique=False)

    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("dump_id", sa.Integer(), nullable=False),
        sa.Column("upvotes", sa.Integer(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dump_id"], ["dumps.id"], name=op.f("fk_sightings_dump_id_dumps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["paper_id"],
            ["papers.id"],
            name=op.f("fk_sightings_paper_id_papers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
        sa.UniqueConstraint("paper_id", "dump_id", name="uq_sightings_paper_dump"),
    )
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sightings_dump_id"), ["dump_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sightings_paper_id"), ["paper_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sightings_paper_id"))
        batch_op.drop_index(batch_op.f("ix_sightings_dump_id"))

    op.drop_table("sightings")
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index("ix_papers_first_seen")
        batch_op.drop_index(batch_op.f("ix_papers_batch_id"))

    op.drop_table("papers")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_dump_id"))
        batch_op.drop_index(batch_op.f("ix_batches_created_at"))

    op.drop_table("batches")
    with op.batch_alter_table("dumps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dumps_content_hash"))

    op.drop_table("dumps")
