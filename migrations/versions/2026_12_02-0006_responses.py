"""Agents in scope: the Responses API's response id on each exchange record, by which
``GET /v1/responses/{id}`` and ``previous_response_id`` find it (only within its context),
and when it was deleted (``DELETE``: the record stays, the response is no longer served).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges") as table:
        table.add_column(sa.Column("response_id", sa.String(200), nullable=True))
        table.add_column(sa.Column("deleted_at", UTCDateTime(), nullable=True))
    op.create_index("ix_exchanges_response_id", "exchanges", ["response_id"])


def downgrade() -> None:
    op.drop_index("ix_exchanges_response_id", table_name="exchanges")
    with op.batch_alter_table("exchanges") as table:
        table.drop_column("deleted_at")
        table.drop_column("response_id")
