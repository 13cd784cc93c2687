"""Policy revisions, the decision on each exchange, and queryable findings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.db.base import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "policy_revisions",
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_policy_revisions")),
    )
    op.create_index(op.f("ix_policy_revisions_context"), "policy_revisions", ["context"])
    with op.batch_alter_table("exchanges") as batch:
        batch.add_column(sa.Column("decision_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("policy_revision", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decision", JSONDocument, nullable=True))
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("exchange_id", sa.String(40), nullable=False),
        sa.Column("decision_id", sa.String(40), nullable=False),
        sa.Column("policy_revision", sa.String(64), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("enforced", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_findings_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index(op.f("ix_findings_exchange_id"), "findings", ["exchange_id"])
    op.create_index(
        "ix_findings_context_rule_received_at", "findings", ["context", "rule", "received_at"]
    )
    op.create_index("ix_findings_rule_received_at", "findings", ["rule", "received_at"])


def downgrade() -> None:
    op.drop_table("findings")
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("decision")
        batch.drop_column("policy_revision")
        batch.drop_column("decision_id")
    op.drop_table("policy_revisions")
