"""OpenTelemetry: one span per model exchange, with the GenAI and policy attributes.

Off by default (no provider, no cost). With ``telemetry.exporter: console`` spans are printed;
an operator who wants OTLP installs an exporter and sets ``OTEL_*`` as usual for the SDK. The
span is written from the finished exchange's row, in the recorder's writer task (an observer of
the recorder), so its times are the record's times and nothing is added to the request path;
spans are exported in batches by the SDK's own thread. Prompt and answer text never go into
spans (the GenAI conventions make content opt-in; this gateway does not opt in).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.policy.decision import Decision
from gateway.version import __version__

OPERATION = {"chat.completions": "chat", "embeddings": "embeddings"}


class Telemetry:
    def __init__(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        self._provider = TracerProvider(
            resource=Resource.create(
                {"service.name": "situate-gateway", "service.version": __version__}
            )
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("situate.gateway", __version__)

    @classmethod
    def console(cls) -> Telemetry:
        return cls(ConsoleSpanExporter())

    def exchange(self, row: Mapping[str, Any], decision: Decision | None = None) -> None:
        """One exchange's span, from its record's row (and the decision behind it)."""
        operation = OPERATION.get(row["endpoint"], row["endpoint"])
        span = self._tracer.start_span(
            f"{operation} {row['requested_model'] or ''}".strip(),
            kind=SpanKind.CLIENT,
            start_time=_ns(row["received_at"]),
            attributes=attributes(row, decision),
        )
        if row["http_status"] >= 400 or row["status"] in ("upstream_error", "gateway_error"):
            span.set_status(Status(StatusCode.ERROR, row["error_message"] or row["status"]))
        span.end(end_time=_ns(row["ended_at"] or row["received_at"]))

    def shutdown(self) -> None:
        self._provider.shutdown()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (a float timestamp loses the last digits)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def attributes(row: Mapping[str, Any], decision: Decision | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION.get(row["endpoint"], row["endpoint"]),
        "gen_ai.provider.name": row["backend"] or "unknown",
        "gen_ai.request.model": row["requested_model"] or "",
        "gen_ai.request.stream": row["stream"],
        "gateway.request_id": row["id"],
        "gateway.context": row["context"] or "",
        "gateway.exchange.status": row["status"],
        "http.response.status_code": row["http_status"],
    }
    optional = {
        "gen_ai.response.model": row["response_model"],
        "gen_ai.usage.input_tokens": row["prompt_tokens"],
        "gen_ai.usage.output_tokens": row["completion_tokens"],
        "error.type": row["error_type"],
    }
    found.update({k: v for k, v in optional.items() if v is not None})
    first, started = row["first_byte_at"], row["upstream_started_at"]
    if first is not None and started is not None:
        found["gen_ai.response.time_to_first_chunk"] = (first - started).total_seconds()
    if decision is not None:
        found.update(
            {
                "gateway.policy.decision_id": decision.id,
                "gateway.policy.revision": decision.policy_revision,
                "gateway.policy.verdict": decision.verdict,
                "gateway.policy.enforced": decision.enforced,
                "gateway.policy.rules": [o.rule for o in decision.enforcing],
                "gateway.policy.shadow_rules": [o.rule for o in decision.shadow],
            }
        )
    return found
