"""What a request carries through the stages: who asked, under which policy revision, and
the record of what happened.

``RequestContext`` is fixed once the request is authenticated and its policy snapshotted: the
principal, the compiled revision that decides, and that revision's ``Decision`` (which the
stages fill). ``ExchangeRecord`` is what the stages write down as they go (times, models,
status, bodies); its rows are built by the recorder's writer task (``entry``), off the request
path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from opentelemetry.trace import SpanContext

from gateway.auth.keys import Principal
from gateway.clock import now
from gateway.pipeline.review_route import ReviewRoute
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.records.recorder import Entry
from gateway.records.shapes import VIEWED, as_chat
from gateway.records.status import Status
from gateway.records.views import Redacted, redacted_record
from gateway.telemetry.spans import ExchangeTrace, request_params, response_facts
from gateway.telemetry.tracing import current_span_context
from gateway.version import __version__


@dataclass(frozen=True, slots=True)
class RequestContext:
    principal: Principal
    policy: CompiledPolicy
    decision: Decision

    @classmethod
    def of(cls, principal: Principal, policy: CompiledPolicy) -> RequestContext:
        return cls(principal, policy, Decision(policy.revision, policy.context))


@dataclass(slots=True)
class ExchangeRecord:
    id: str
    endpoint: str
    received_at: datetime = field(default_factory=now)
    ctx: RequestContext | None = None
    upstream_started_at: datetime | None = None
    first_byte_at: datetime | None = None
    ended_at: datetime | None = None
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
    #: where the review stage sends the exchange (empty: nowhere)
    reviews: list[ReviewRoute] = field(default_factory=list)
    #: why a review made this exchange, when it did (an alternative answer for an item)
    made_for: str | None = None
    #: every upstream attempt (backend, status, timing, why it stopped), in order
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: the fallback alias that served, when the requested one's backends all failed
    served_alias: str | None = None
    #: the key was served on a lookup older than the cache while the database was unreachable
    #: (seconds since the database last vouched for it), said in the record's decision
    stale_key_seconds: float | None = None
    #: what the exchange cost and in which currency (None: no price for its alias)
    cost: float | None = None
    currency: str | None = None
    #: why the backend's token counts are recorded as unknown (out of range), in the decision
    usage_unknown: str | None = None
    #: the Responses API's id of the answer (``resp_…``), for ``GET /v1/responses/{id}``
    response_id: str | None = None
    #: what the record says about its response (``gateway.records.responses``): in the
    #: decision, under ``responses``
    response_notes: dict[str, Any] | None = None
    #: called once, as the exchange ends, before it is recorded (a limit's settlement)
    on_finish: list[Callable[[ExchangeRecord], None]] = field(default_factory=list)
    #: the server span the request runs in (``gateway.telemetry.asgi``; None: tracing off):
    #: the record's ``trace_id``, and the parent of its policy and attempt spans
    trace: SpanContext | None = field(default_factory=current_span_context)

    @property
    def decision(self) -> Decision | None:
        return self.ctx.decision if self.ctx else None

    def fail(self, status: Status, http_status: int, error_type: str, message: str) -> None:
        self.status = status
        self.http_status = http_status
        self.error_type = error_type
        self.error_message = message

    def end(self, status: Status, error_type: str | None, message: str | None) -> None:
        self.status, self.error_type, self.error_message = status, error_type, message

    def take_usage(self, usage: Any) -> None:
        """The backend's token counts; all unknown (None, as when it sends none) when one is
        negative or past what JSON holds exactly (2**53 - 1): the record's chain entry could
        not be written with it, and the count is no count. The decision says why."""
        if not isinstance(usage, dict):
            return
        counts = [_int_or_none(usage.get(name)) for name in _USAGE]
        wrong = [name for name, n in zip(_USAGE, counts, strict=True)
                 if n is not None and not 0 <= n <= MAX_COUNT]
        if wrong:
            self.usage_unknown = (f"the backend's usage is out of range ({', '.join(wrong)}): "
                                  "recorded as unknown")
            counts = [None] * len(_USAGE)
        self.prompt_tokens, self.completion_tokens, self.total_tokens = counts

    def entry(self) -> Entry:
        """The rows to write: built by the recorder's task, not on the request path. Should
        building them fail (a bug), the exchange is still recorded, as a gateway error that
        says why, without its bodies and decision."""
        try:
            row = self._row()
            ctx = self.ctx
            reviews = (
                [r.row(self.id, ctx.policy, ctx.decision) for r in self.reviews] if ctx else []
            )
            return Entry(
                row, self._finding_rows(), reviews, decision=self.decision, span=self._span(row)
            )
        except Exception as exc:
            return Entry(self._fallback_row(exc), [])

    def _fallback_row(self, exc: Exception) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(self, name) for name in _COLUMNS}
        ctx = self.ctx
        values.update(
            request_body=None,
            response_body=None,
            status=str(Status.GATEWAY_ERROR),
            error_type="record_unbuildable",
            error_message=f"the record could not be built: {type(exc).__name__}: {exc}"[:2000],
            ended_at=self.ended_at or now(),
            gateway_version=__version__,
            key_id=(ctx.principal.key_id or None) if ctx else None,
            context=ctx.principal.context if ctx else None,
            decision=None,
            decision_id=None,
            policy_revision=ctx.policy.revision if ctx else None,
            trace_id=self.trace_id,
        )
        return values

    @property
    def trace_id(self) -> str | None:
        return f"{self.trace.trace_id:032x}" if self.trace is not None else None

    def _span(self, row: dict[str, Any]) -> ExchangeTrace | None:
        """What the tracer needs beyond the row, for a sampled trace only."""
        if self.trace is None or not self.trace.trace_flags.sampled:
            return None
        return ExchangeTrace(
            self.trace,
            request_params(self.request_body),
            response_facts(self.response_body),
            partial(self._kept, row),
        )

    def _kept(self, row: dict[str, Any]) -> tuple[Any, Any]:
        """The bodies as the record keeps them, in the chat view (what content spans say)."""
        request, answer = row["request_body"], row["response_body"]
        content = self.ctx.policy.policy.record.content if self.ctx else "full"
        if self.endpoint in VIEWED and content != "redacted":  # redacted ones are viewed
            request, answer = as_chat(self.endpoint, request, answer)
        return request, answer

    def _row(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in _COLUMNS}
        values["status"] = str(self.status)
        values["ended_at"] = self.ended_at or now()
        values["gateway_version"] = __version__
        values["trace_id"] = self.trace_id
        ctx = self.ctx
        values["key_id"] = (ctx.principal.key_id or None) if ctx else None  # "": no key
        values["context"] = ctx.principal.context if ctx else None
        if ctx is None:
            values.update(decision=None, decision_id=None, policy_revision=None)
            return values
        decision = ctx.decision
        values["decision"] = decision.as_dict()
        values["decision_id"] = decision.id
        values["policy_revision"] = decision.policy_revision
        if self.made_for is not None:
            values["decision"]["made_for"] = self.made_for
        if self.stale_key_seconds is not None:
            values["decision"]["key_checked_seconds_ago"] = round(self.stale_key_seconds, 1)
        if self.usage_unknown is not None:
            values["decision"]["usage_unknown"] = self.usage_unknown
        content = ctx.policy.policy.record.content
        if content == "none":
            values["request_body"] = values["response_body"] = None
        elif content == "redacted":  # chat messages and embeddings inputs alike
            self._redacted(values, decision, ctx.policy)
        if self.response_notes is not None:
            values["decision"]["responses"] = self.response_notes
        return values

    def _redacted(self, values: dict[str, Any], decision: Decision, policy: CompiledPolicy) -> None:
        kept = self.redacted(decision, policy)
        values["request_body"], values["response_body"] = kept.request, kept.answer
        values["decision"]["removed_from_record"] = [r.as_dict() for r in kept.removed]

    def redacted(self, decision: Decision, policy: CompiledPolicy) -> Redacted:
        """The bodies without their sensitive spans; another endpoint's as its chat view
        (``records.shapes``), which the decision's evidence indexes refer to."""
        request, answer = self.request_body, self.response_body
        if self.endpoint in VIEWED:
            request, answer = as_chat(self.endpoint, request, answer)
        return redacted_record(request, answer, decision, policy)

    def _finding_rows(self) -> list[dict[str, Any]]:
        if self.ctx is None:
            return []
        decision = self.ctx.decision
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


#: the usage's counts, as the record's columns name them
_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")
#: the largest count JSON (RFC 8785, the chain's entries) writes exactly
MAX_COUNT = 2**53 - 1


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_COLUMNS = (
    "id",
    "endpoint",
    "received_at",
    "upstream_started_at",
    "first_byte_at",
    "requested_model",
    "backend",
    "upstream_model",
    "response_model",
    "stream",
    "http_status",
    "error_type",
    "error_message",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "request_body",
    "response_body",
    "attempts",
    "cost",
    "currency",
    "response_id",
)
