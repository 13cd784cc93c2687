"""API keys and exchange records.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.db.base import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("display", sa.String(40), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )
    op.create_index(op.f("ix_api_keys_context"), "api_keys", ["context"])
    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("upstream_started_at", UTCDateTime(), nullable=True),
        sa.Column("first_byte_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("context", sa.String(128), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=True),
        sa.Column("backend", sa.String(128), nullable=True),
        sa.Column("upstream_model", sa.String(200), nullable=True),
        sa.Column("response_model", sa.String(200), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("request_body", JSONDocument, nullable=True),
        sa.Column("response_body", JSONDocument, nullable=True),
        sa.Column("gateway_version", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_exchanges_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchanges")),
    )
    op.create_index(op.f("ix_exchanges_received_at"), "exchanges", ["received_at"])
    op.create_index("ix_exchanges_context_received_at", "exchanges", ["context", "received_at"])
    op.create_index("ix_exchanges_status_received_at", "exchanges", ["status", "received_at"])


def downgrade() -> None:
    op.drop_table("exchanges")
    op.drop_table("api_keys")
