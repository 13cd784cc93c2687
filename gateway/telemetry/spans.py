"""An exchange's spans under its request's server span: the policy's evaluation and each
upstream attempt, named and attributed by the OpenTelemetry GenAI conventions.

They are built from the finished record, in the recorder's writer task (``ExchangeSpans`` is
one of its observers), not where the work happened: the record already holds each attempt's
backend, model, start, duration, status and outcome, and each rule's time, so the request
path pays for none of it (the server span, started live by ``gateway.telemetry.asgi``, is
the only span a request makes as it runs). The record carries the server span's context
(``ExchangeTrace.parent``), which makes these its children. An attempt span is CLIENT,
``{gen_ai.operation.name} {gen_ai.request.model}`` (the model asked of the backend); a
stream's serving attempt lasts until the stream's end. The policy span is INTERNAL and lasts
the input rules' measured time, ending as the first attempt starts (or as the exchange ends,
when nothing went upstream); the output rules' time is an attribute (a stream's output is
judged piece by piece, interleaved with the answer).

Prompt and answer text go on spans only with ``telemetry.content`` (the GenAI opt-in), and
then only as the context's record keeps them (``record.content``: none, redacted, full).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

from gateway.policy.decision import Decision
from gateway.telemetry.content import input_messages, output_messages
from gateway.telemetry.tracing import Tracing

OPERATION = {
    "chat.completions": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
PROVIDER = {"openai": "openai", "demo": "situate.demo"}
_ERROR_STATUSES = frozenset({"upstream_error", "gateway_error", "incomplete"})
#: the request's generation settings, by attribute, and the body keys that hold them
_PARAMS = {
    "gen_ai.request.max_tokens": ("max_completion_tokens", "max_tokens", "max_output_tokens"),
    "gen_ai.request.temperature": ("temperature",),
    "gen_ai.request.top_p": ("top_p",),
}


@dataclass(frozen=True, slots=True)
class ExchangeTrace:
    """What an exchange's spans need beyond its row (``records.entries.Entry.span``)."""

    #: the server span the request ran in
    parent: SpanContext
    #: the generation settings the caller asked for (``request_params``)
    params: dict[str, Any]
    #: the backend's answer: its id and finish reasons (``response_facts``)
    response: dict[str, Any]
    #: the bodies as the record keeps them, in the chat view (asked only with content on)
    content: Callable[[], tuple[Any, Any]] | None = None


def request_params(body: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if not isinstance(body, dict):
        return found
    for attribute, keys in _PARAMS.items():
        value = next((body[k] for k in keys if _number(body.get(k))), None)
        if value is not None:
            found[attribute] = value
    return found


def response_facts(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    found: dict[str, Any] = {}
    if isinstance(body.get("id"), str):
        found["gen_ai.response.id"] = body["id"]
    choices = body.get("choices")
    if isinstance(choices, list):
        ends = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
        if any(ends):
            found["gen_ai.response.finish_reasons"] = [str(r) for r in ends if r]
    elif isinstance(body.get("status"), str):  # a Response: its status says how it ended
        found["gen_ai.response.finish_reasons"] = [body["status"]]
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ExchangeSpans:
    """The recorder's observer that turns each traced exchange into its spans."""

    def __init__(
        self, tracing: Tracing, base_urls: Mapping[str, str], kinds: Mapping[str, str]
    ) -> None:
        self._tracing = tracing
        self._servers = {name: _server(url) for name, url in base_urls.items()}
        self._providers = {name: PROVIDER.get(kind, kind) for name, kind in kinds.items()}

    def observe(self, row: Mapping[str, Any], decision: Decision | None, trace: object) -> None:
        if not isinstance(trace, ExchangeTrace) or not trace.parent.trace_flags.sampled:
            return
        parent = set_span_in_context(NonRecordingSpan(trace.parent))
        tried = [a for a in row.get("attempts") or () if a.get("outcome") != "ejected_skip"]
        if decision is not None:
            self._policy(parent, row, decision, _started(tried[0]) if tried else None)
        content = trace.content() if self._tracing.content and trace.content else None
        for index, attempt in enumerate(tried):
            last = index == len(tried) - 1
            self._attempt(parent, row, trace, attempt, (index, last), content)

    def _policy(
        self, parent: Context, row: Mapping[str, Any], decision: Decision, upstream: datetime | None
    ) -> None:
        stage_ms = {"input": 0.0, "output": 0.0}
        for key, ms in decision.timings.items():
            stage = key.split(":", 1)[0]
            stage_ms[stage] = stage_ms.get(stage, 0.0) + ms
        end = upstream or row["upstream_started_at"] or row["ended_at"] or row["received_at"]
        start = max(row["received_at"], end - timedelta(milliseconds=stage_ms["input"]))
        attributes = {
            "gateway.policy.decision_id": decision.id,
            "gateway.policy.revision": decision.policy_revision,
            "gateway.policy.context": decision.context,
            "gateway.policy.verdict": decision.verdict,
            "gateway.policy.enforced": decision.enforced,
            "gateway.policy.rules": [o.rule for o in decision.enforcing],
            "gateway.policy.shadow_rules": [o.rule for o in decision.shadow],
            "gateway.policy.evaluated": sorted({k.split(":", 1)[1] for k in decision.timings}),
            "gateway.policy.input_ms": round(stage_ms["input"], 3),
            "gateway.policy.output_ms": round(stage_ms["output"], 3),
            "gateway.request_id": row["id"],
        }
        errors = [o.rule for o in decision.outcomes if o.error]
        if errors:
            attributes["gateway.policy.errors"] = errors
        span = self._tracing.tracer.start_span(
            f"policy {decision.context}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=_ns(start),
            attributes=attributes,
        )
        span.end(end_time=_ns(end))

    def _attempt(
        self,
        parent: Context,
        row: Mapping[str, Any],
        trace: ExchangeTrace,
        attempt: Mapping[str, Any],
        place: tuple[int, bool],
        content: tuple[Any, Any] | None,
    ) -> None:
        """One try's span; ``place``: its index, and whether it was the last."""
        index, last = place
        serving = last and attempt.get("outcome") == "ok"
        operation = OPERATION.get(row["endpoint"], row["endpoint"])
        model = attempt.get("model") or row["requested_model"] or ""
        start = _started(attempt)
        attributes = self._attempt_attributes(row, trace, attempt, index, operation, model)
        if serving:
            attributes.update(_served(row, trace, start))
        error = _error_type(row, attempt, serving, last=last)
        if error is not None:
            attributes["error.type"] = error
        if content is not None:
            attributes.update(_content(content, serving))
        span = self._tracing.tracer.start_span(
            f"{operation} {model}".strip(),
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=_ns(start),
            attributes=attributes,
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_ns(_ended(row, attempt, start, serving)))

    def _attempt_attributes(
        self,
        row: Mapping[str, Any],
        trace: ExchangeTrace,
        attempt: Mapping[str, Any],
        index: int,
        operation: str,
        model: str,
    ) -> dict[str, Any]:
        backend = str(attempt.get("backend") or row["backend"] or "")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._providers.get(backend, "openai"),
            "gen_ai.request.model": model,
            "gen_ai.request.stream": bool(row["stream"]),
            **trace.params,
            "gateway.backend": backend,
            "gateway.model_alias": attempt.get("alias") or "",
            "gateway.attempt": index + 1,
            "gateway.attempt.outcome": attempt.get("outcome") or "",
            "gateway.request_id": row["id"],
        }
        server = self._servers.get(backend)
        if server is not None:
            attributes["server.address"], attributes["server.port"] = server
        if attempt.get("status") is not None:
            attributes["http.response.status_code"] = attempt["status"]
        return attributes


def _served(row: Mapping[str, Any], trace: ExchangeTrace, start: datetime) -> dict[str, Any]:
    """What the serving attempt's answer says: its id, model, finish reasons, usage."""
    found = dict(trace.response)
    optional = {
        "gen_ai.response.model": row["response_model"],
        "gen_ai.usage.input_tokens": row["prompt_tokens"],
        "gen_ai.usage.output_tokens": row["completion_tokens"],
    }
    found.update({k: v for k, v in optional.items() if v is not None})
    if row["stream"] and row["first_byte_at"] is not None:
        found["gen_ai.response.time_to_first_chunk"] = max(
            0.0, (row["first_byte_at"] - start).total_seconds()
        )
    return found


def _error_type(
    row: Mapping[str, Any], attempt: Mapping[str, Any], serving: bool, *, last: bool
) -> str | None:
    """Why a try failed, in few values: the backend's HTTP status, else the exchange's error
    code for its last try, else ``_OTHER`` (the conventions' fallback). A serving try whose
    stream broke afterwards carries the exchange's error."""
    if serving:
        broke = row["status"] in _ERROR_STATUSES and row["error_type"]
        return str(row["error_type"]) if broke else None
    if attempt.get("outcome") == "cancelled":
        return "cancelled"
    if attempt.get("status") is not None:
        return str(attempt["status"])
    return str(row["error_type"]) if last and row["error_type"] else "_OTHER"


def _content(content: tuple[Any, Any], serving: bool) -> dict[str, str]:
    request, answer = content
    found: dict[str, str] = {}
    messages = input_messages(request)
    if messages:
        found["gen_ai.input.messages"] = json.dumps(messages, ensure_ascii=False)
    outputs = output_messages(answer) if serving else []
    if outputs:
        found["gen_ai.output.messages"] = json.dumps(outputs, ensure_ascii=False)
    return found


def _started(attempt: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(attempt["started_at"]))


def _ended(
    row: Mapping[str, Any], attempt: Mapping[str, Any], start: datetime, serving: bool
) -> datetime:
    """A stream's serving try lasts until the stream's end; any other, its measured time."""
    if (serving and row["stream"]) or attempt.get("ms") is None:
        return max(start, row["ended_at"] or start)
    return start + timedelta(milliseconds=float(attempt["ms"]))


def _server(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (a float timestamp loses the last digits)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
