"""Accountability: the audit hash chains (a head row per chain, its entries, its signed
checkpoints), and on each exchange its trace id and when its content was erased.

Existing exchanges are not chained: the chain starts with the records written after this
migration (``gateway audit verify`` says how many records precede it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db.base import JSONDocument, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges") as table:
        table.add_column(sa.Column("trace_id", sa.String(32), nullable=True))
        table.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
    op.create_table(
        "audit_chains",
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_audit_chains")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(40), nullable=False),
        sa.Column("leaf", sa.Text(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "seq", name=op.f("pk_audit_entries")),
    )
    op.create_index("ix_audit_entries_ref", "audit_entries", ["ref"])
    op.create_index("ix_audit_entries_kind_created_at", "audit_entries", ["kind", "created_at"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("chain_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("frontier", JSONDocument, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "size", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_entries_kind_created_at", table_name="audit_entries")
    op.drop_index("ix_audit_entries_ref", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("audit_chains")
    with op.batch_alter_table("exchanges") as table:
        table.drop_column("erased_at")
        table.drop_column("trace_id")
