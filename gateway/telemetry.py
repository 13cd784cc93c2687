"""OpenTelemetry: one span per model exchange, with the GenAI and policy attributes.

Off by default (no provider, no cost). With ``telemetry.exporter: console`` spans are printed;
an operator who wants OTLP installs an exporter and sets ``OTEL_*`` as usual for the SDK. The
span is written from the finished exchange record, so its times are the record's times and
nothing is added to the request path but one function call. Prompt and answer text never go
into spans (the GenAI conventions make content opt-in; this gateway does not opt in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.records.log import ExchangeLog
from gateway.version import __version__

OPERATION = {"chat.completions": "chat", "embeddings": "embeddings"}


class Telemetry:
    def __init__(self, exporter: SpanExporter) -> None:
        self._provider = TracerProvider(
            resource=Resource.create(
                {"service.name": "situate-gateway", "service.version": __version__}
            )
        )
        self._provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("situate.gateway", __version__)

    @classmethod
    def console(cls) -> Telemetry:
        return cls(ConsoleSpanExporter())

    def exchange(self, log: ExchangeLog) -> None:
        operation = OPERATION.get(log.endpoint, log.endpoint)
        ended = log.ended_at or log.received_at
        span = self._tracer.start_span(
            f"{operation} {log.requested_model or ''}".strip(),
            kind=SpanKind.CLIENT,
            start_time=_ns(log.received_at),
            attributes=attributes(log),
        )
        if log.http_status >= 400 or log.status.value in ("upstream_error", "gateway_error"):
            span.set_status(Status(StatusCode.ERROR, log.error_message or log.status.value))
        span.end(end_time=_ns(ended))

    def shutdown(self) -> None:
        self._provider.shutdown()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (a float timestamp loses the last digits)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def attributes(log: ExchangeLog) -> dict[str, Any]:
    found: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION.get(log.endpoint, log.endpoint),
        "gen_ai.provider.name": log.backend or "unknown",
        "gen_ai.request.model": log.requested_model or "",
        "gen_ai.request.stream": log.stream,
        "gateway.request_id": log.id,
        "gateway.context": log.context or "",
        "gateway.exchange.status": log.status.value,
        "http.response.status_code": log.http_status,
    }
    optional = {
        "gen_ai.response.model": log.response_model,
        "gen_ai.usage.input_tokens": log.prompt_tokens,
        "gen_ai.usage.output_tokens": log.completion_tokens,
        "error.type": log.error_type,
    }
    found.update({k: v for k, v in optional.items() if v is not None})
    if log.first_byte_at is not None and log.upstream_started_at is not None:
        found["gen_ai.response.time_to_first_chunk"] = (
            log.first_byte_at - log.upstream_started_at
        ).total_seconds()
    decision = log.decision
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
