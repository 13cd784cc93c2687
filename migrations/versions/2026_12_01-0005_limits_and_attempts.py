"""Reliability and limits: every upstream attempt and the spend on each exchange record, a
key's own limits, and an index for usage by key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db.base import JSONDocument

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges") as table:
        table.add_column(sa.Column("attempts", JSONDocument, nullable=True))
        table.add_column(sa.Column("cost", sa.Float(), nullable=True))
        table.add_column(sa.Column("currency", sa.String(8), nullable=True))
    op.create_index("ix_exchanges_key_received_at", "exchanges", ["key_id", "received_at"])
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("limits", JSONDocument, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("limits")
    op.drop_index("ix_exchanges_key_received_at", table_name="exchanges")
    with op.batch_alter_table("exchanges") as table:
        table.drop_column("currency")
        table.drop_column("cost")
        table.drop_column("attempts")
