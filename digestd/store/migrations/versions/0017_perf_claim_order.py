"""the delivery ledger's status index also holds the row id, for claims in id order

Revision ID: 0017_perf_claims
Revises: 0014_perf
Create Date: 2026-12-01 05:45:00.000000

A claim asks for the first due rows of one status in id order. With an index on the status
alone, PostgreSQL walked the primary key from the first row, past every row sent already,
on each claim (a third of a second per claim half-way through 100,000 rows). The index on
(status, id) hands them out in order; queries on the status alone use it too, so it takes
the old index's place. The downgrade puts the old index back.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_perf_claims"
down_revision: str | None = "0014_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_id", "deliveries", ["status", "id"])
    op.drop_index("ix_deliveries_status", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.drop_index("ix_deliveries_status_id", table_name="deliveries")
