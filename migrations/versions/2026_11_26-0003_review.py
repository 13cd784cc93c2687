"""Reviewers, review items, judgments and exports.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from gateway.db.base import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("pseudonym", sa.String(40), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("locale", sa.String(40), nullable=True),
        sa.Column("languages", JSONDocument, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_reviewers_pseudonym")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_reviewers_token_digest")),
    )
    op.create_table(
        "reviewer_queues",
        sa.Column("reviewer_id", sa.String(40), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewers.id"],
            ondelete="CASCADE",
            name=op.f("fk_reviewer_queues_reviewer_id_reviewers"),
        ),
        sa.PrimaryKeyConstraint("reviewer_id", "context", "queue", name=op.f("pk_reviewer_queues")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("exchange_id", sa.String(40), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("rule_ids", JSONDocument, nullable=False),
        sa.Column("policy_revision", sa.String(64), nullable=False),
        sa.Column("guideline_revision", sa.String(64), nullable=True),
        sa.Column("guideline_path", sa.Text(), nullable=True),
        sa.Column("reviewers_needed", sa.Integer(), nullable=False),
        sa.Column("judgments_done", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(40), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("alternative", JSONDocument, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            ondelete="CASCADE",
            name=op.f("fk_review_items_exchange_id_exchanges"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index(
        "ix_review_items_queue_state", "review_items", ["context", "queue", "state", "created_at"]
    )
    op.create_index("ix_review_items_exchange_id", "review_items", ["exchange_id"])
    op.create_index("ix_review_items_claimed_by", "review_items", ["claimed_by"])
    op.create_index("ix_review_items_done_at", "review_items", ["done_at"])
    # Counting a queue's waiting items reads only this index (an index-only scan).
    op.create_index(
        "ix_review_items_open",
        "review_items",
        ["context", "queue"],
        postgresql_where=sa.text("state = 'open'"),
        sqlite_where=sa.text("state = 'open'"),
    )
    op.create_table(
        "judgments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(40), nullable=False),
        sa.Column("reviewer_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("rule_verdicts", JSONDocument, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("preferred_source", sa.String(16), nullable=True),
        sa.Column("preferred_text", sa.Text(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("guideline_revision", sa.String(64), nullable=True),
        sa.Column("guideline_acknowledged", sa.Boolean(), nullable=False),
        sa.Column("seconds_spent", sa.Float(), nullable=True),
        sa.Column("supersedes", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            ondelete="CASCADE",
            name=op.f("fk_judgments_item_id_review_items"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["reviewers.id"], name=op.f("fk_judgments_reviewer_id_reviewers")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes"], ["judgments.id"], name=op.f("fk_judgments_supersedes_judgments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judgments")),
    )
    op.create_index(op.f("ix_judgments_item_id"), "judgments", ["item_id"])
    op.create_index(op.f("ix_judgments_reviewer_id"), "judgments", ["reviewer_id"])
    op.create_table(
        "guideline_revisions",
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("context", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_guideline_revisions")),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("exported_by", sa.String(200), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("filter", JSONDocument, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )


def downgrade() -> None:
    op.drop_table("exports")
    op.drop_table("guideline_revisions")
    op.drop_table("judgments")
    op.drop_table("review_items")
    op.drop_table("reviewer_queues")
    op.drop_table("reviewers")
