"""The record of one exchange, filled in as the request moves through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.clock import now
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.records.views import redacted_record
from gateway.version import __version__


class Status(StrEnum):
    """How an exchange ended (docs/api.md, "Records", says when each applies)."""

    OK = "ok"
    REJECTED = "rejected"  # authentication, validation, the context's limits: a 4xx
    BLOCKED = "blocked"  # a policy rule refused it, as an error or as a refusal answer
    UPSTREAM_FILTERED = "upstream_filtered"  # the backend's own filter ended an answer
    UPSTREAM_ERROR = "upstream_error"
    INCOMPLETE = "incomplete"
    CLIENT_DISCONNECTED = "client_disconnected"
    GATEWAY_ERROR = "gateway_error"  # a fault of the gateway itself, answered with a 500


@dataclass(slots=True)
class ExchangeLog:
    id: str
    endpoint: str
    received_at: datetime = field(default_factory=now)
    upstream_started_at: datetime | None = None
    first_byte_at: datetime | None = None
    ended_at: datetime | None = None
    key_id: str | None = None
    context: str | None = None
    requested_model: str | None = None
    backend: str | None = None
    upstream_model: str | None = None
    response_model: str | None = None
    stream: bool = False
    status: Status = Status.OK
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    request_body: Any = None
    response_body: Any = None
    gateway_version: str = __version__
    decision: Decision | None = None
    content: str = "full"  # the policy's record.content: full | redacted | none
    policy: CompiledPolicy | None = None  # the revision that decided, for review routing

    def fail(self, status: Status, http_status: int, error_type: str, message: str) -> None:
        self.status = status
        self.http_status = http_status
        self.error_type = error_type
        self.error_message = message

    def take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        self.completion_tokens = _int_or_none(usage.get("completion_tokens"))
        self.total_tokens = _int_or_none(usage.get("total_tokens"))

    def row(self) -> dict[str, Any]:
        # Shallow on purpose: the bodies are never mutated after this point, and a deep copy
        # of every request and answer would cost more than the rest of the record.
        values = {name: getattr(self, name) for name in _COLUMNS}
        values["status"] = str(self.status)
        values["ended_at"] = self.ended_at or now()
        decision = self.decision
        values["decision"] = decision.as_dict() if decision else None
        values["decision_id"] = decision.id if decision else None
        values["policy_revision"] = decision.policy_revision if decision else None
        if self.content == "none":
            values["request_body"] = values["response_body"] = None
        elif self.content == "redacted":  # chat messages and embeddings inputs alike
            kept = redacted_record(self.request_body, self.response_body, decision, self.policy)
            values["request_body"], values["response_body"] = kept.request, kept.answer
            if values["decision"] is not None:  # where each removal was, for the review page
                values["decision"]["removed_from_record"] = [r.as_dict() for r in kept.removed]
        return values

    def finding_rows(self) -> list[dict[str, Any]]:
        decision = self.decision
        if decision is None:
            return []
        return [
            {
                "exchange_id": self.id,
                "decision_id": decision.id,
                "policy_revision": decision.policy_revision,
                "context": decision.context,
                "rule": o.rule,
                "detector": o.detector,
                "stage": o.stage,
                "action": o.action,
                "enforced": o.enforced,
                "received_at": self.received_at,
            }
            for o in decision.outcomes
        ]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_NOT_COLUMNS = ("decision", "content", "policy")
_COLUMNS = tuple(f.name for f in fields(ExchangeLog) if f.name not in _NOT_COLUMNS)
