"""All tables. Typed with ``Mapped[]``; relationships, where any, are ``lazy="raise"``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base, JSONDocument, UTCDateTime


class ApiKey(Base):
    """A caller's key, stored only as a SHA-256 digest, bound to one deployment context."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    display: Mapped[str] = mapped_column(String(40))
    context: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the key's own rate limits and budgets (``gateway.policy.schema.RateLimits``), if any
    limits: Mapped[Any] = mapped_column(JSONDocument, nullable=True)


class Exchange(Base):
    """One row per request to a model endpoint, whatever happened to it."""

    __tablename__ = "exchanges"
    __table_args__ = (
        Index("ix_exchanges_context_received_at", "context", "received_at"),
        Index("ix_exchanges_status_received_at", "status", "received_at"),
        Index("ix_exchanges_key_received_at", "key_id", "received_at"),
        Index("ix_exchanges_response_id", "response_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    upstream_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_byte_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    context: Mapped[str | None] = mapped_column(String(128))
    requested_model: Mapped[str | None] = mapped_column(String(200))
    backend: Mapped[str | None] = mapped_column(String(128))
    upstream_model: Mapped[str | None] = mapped_column(String(200))
    response_model: Mapped[str | None] = mapped_column(String(200))
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(24))
    http_status: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    request_body: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    response_body: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    gateway_version: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str | None] = mapped_column(String(40))
    policy_revision: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    #: every upstream attempt: backend, status, timing, why it stopped (a list of objects)
    attempts: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    #: what the exchange cost, in ``currency``, from the price table of its alias
    cost: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(8))
    #: the Responses API's id of the answer (``resp_…``): how ``GET /v1/responses/{id}`` and
    #: ``previous_response_id`` find this exchange, within its context only
    response_id: Mapped[str | None] = mapped_column(String(200))
    #: when the client deleted that response (``DELETE``): it is no longer served
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the W3C trace id (32 hex digits) of the request's server span, when tracing is on
    trace_id: Mapped[str | None] = mapped_column(String(32))
    #: when the request and answer text were erased (retention or a person's request); the
    #: erasure event on the audit chain says by whom and why
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PolicyRevision(Base):
    """The text of every policy revision the gateway has loaded (and so could decide with)."""

    __tablename__ = "policy_revisions"

    revision: Mapped[str] = mapped_column(String(64), primary_key=True)
    context: Mapped[str] = mapped_column(String(128), index=True)
    path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Finding(Base):
    """A rule that fired on an exchange: the queryable side of the decision on its record."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_context_rule_received_at", "context", "rule", "received_at"),
        Index("ix_findings_rule_received_at", "rule", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exchange_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("exchanges.id", ondelete="CASCADE"), index=True
    )
    decision_id: Mapped[str] = mapped_column(String(40))
    policy_revision: Mapped[str] = mapped_column(String(64))
    context: Mapped[str] = mapped_column(String(128))
    rule: Mapped[str] = mapped_column(String(128))
    detector: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    enforced: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Reviewer(Base):
    """A person (or a model) who judges review items; authenticated by a token digest."""

    __tablename__ = "reviewers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    pseudonym: Mapped[str] = mapped_column(String(40), unique=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # human | model
    organisation: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(40))
    languages: Mapped[Any] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewerQueue(Base):
    """Which queues (context, queue) a reviewer may see."""

    __tablename__ = "reviewer_queues"

    reviewer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("reviewers.id", ondelete="CASCADE"), primary_key=True
    )
    context: Mapped[str] = mapped_column(String(128), primary_key=True)
    queue: Mapped[str] = mapped_column(String(128), primary_key=True)


class ReviewItem(Base):
    """An exchange waiting for (or done with) human review in one queue."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_queue_state", "context", "queue", "state", "created_at"),
        Index("ix_review_items_exchange_id", "exchange_id"),
        Index("ix_review_items_claimed_by", "claimed_by"),
        Index("ix_review_items_done_at", "done_at"),
        Index(
            "ix_review_items_open",
            "context",
            "queue",
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("exchanges.id", ondelete="CASCADE")
    )
    context: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(16))  # flagged | sampled
    rule_ids: Mapped[Any] = mapped_column(JSONDocument)
    policy_revision: Mapped[str] = mapped_column(String(64))
    guideline_revision: Mapped[str | None] = mapped_column(String(64))
    guideline_path: Mapped[str | None] = mapped_column(Text)
    reviewers_needed: Mapped[int] = mapped_column(Integer)
    judgments_done: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # open | escalated | done
    claimed_by: Mapped[str | None] = mapped_column(String(40))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    alternative: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    escalation_note: Mapped[str | None] = mapped_column(Text)  # why a reviewer asked a lead
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Judgment(Base):
    """One reviewer's judgment of one item. Append-only: a correction supersedes, never edits."""

    __tablename__ = "judgments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("review_items.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[str] = mapped_column(String(40), ForeignKey("reviewers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # human | model
    purpose: Mapped[str] = mapped_column(String(16))  # review | adjudication
    rule_verdicts: Mapped[Any] = mapped_column(JSONDocument)
    verdict: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    preferred_source: Mapped[str | None] = mapped_column(String(16))
    preferred_text: Mapped[str | None] = mapped_column(Text)
    rationale: Mapped[str] = mapped_column(Text)
    guideline_revision: Mapped[str | None] = mapped_column(String(64))
    guideline_acknowledged: Mapped[bool] = mapped_column(Boolean)
    seconds_spent: Mapped[float | None] = mapped_column(Float)
    supersedes: Mapped[str | None] = mapped_column(String(40), ForeignKey("judgments.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GuidelineRevision(Base):
    """The text of every guideline revision a queue has used: what a reviewer was shown."""

    __tablename__ = "guideline_revisions"

    revision: Mapped[str] = mapped_column(String(64), primary_key=True)
    context: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExportRecord(Base):
    """Every preference export: who exported what, when, with which filter."""

    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    exported_by: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    filter: Mapped[Any] = mapped_column(JSONDocument)
    rows: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A reviewer signed in to the web page: the cookie's digest, its CSRF token, its end."""

    __tablename__ = "web_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("reviewers.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewSkip(Base):
    """An item a reviewer gave back: it comes back to them only when nothing else waits."""

    __tablename__ = "review_skips"

    reviewer_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("reviewers.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("review_items.id", ondelete="CASCADE"), primary_key=True
    )
    skipped_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditChain(Base):
    """One hash chain's head: its sequencer. Appending locks this row (an UPDATE first, on
    every dialect), so two writers never take the same sequence number."""

    __tablename__ = "audit_chains"

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: entries so far: the next entry's sequence number
    size: Mapped[int] = mapped_column(BigInteger)
    #: the last entry's hash (hex); 64 zeros while the chain is empty
    head: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One entry of a chain: an exchange record or an event, as the canonical JSON that was
    hashed (``leaf``: RFC 8785, with its chain, sequence number and previous hash in it)."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_ref", "ref"),
        Index("ix_audit_entries_kind_created_at", "kind", "created_at"),
    )

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: "exchange", or the event's type ("erasure", "key.created", "policy.revision"…)
    kind: Mapped[str] = mapped_column(String(40))
    #: the exchange's id, or the event's
    ref: Mapped[str] = mapped_column(String(40))
    leaf: Mapped[str] = mapped_column(Text)
    #: SHA-256(0x00 || leaf), hex: the RFC 6962 leaf hash
    entry_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditCheckpoint(Base):
    """A signed checkpoint: the Merkle root over a chain's first ``size`` entries, as the
    C2SP signed note written out (``note``), and the tree's compact range at that size
    (``frontier``), from which the next checkpoint goes on."""

    __tablename__ = "audit_checkpoints"

    chain_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    frontier: Mapped[Any] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
