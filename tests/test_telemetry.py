"""The tracer's pieces without a server: a record's policy and attempt spans under the span
its request ran in (shadow rules apart from enforcing ones, no content), which exporters the
environment chooses, and the resource OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES name."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.auth.keys import Principal
from gateway.checks.registry import default_registry
from gateway.config.observe import TelemetryConfig
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.decision import Evidence, Outcome
from gateway.policy.loader import load_policy
from gateway.records.status import Status
from gateway.telemetry.spans import ExchangeSpans
from gateway.telemetry.tracing import Tracing, exporters, resource, tracing_for

POLICIES = Path(__file__).resolve().parent / "policies"
MODELS = ["test-small", "test-large", "dead-model"]


def test_a_record_s_spans_hang_under_the_span_it_ran_in() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing([exporter])
    spans = ExchangeSpans(tracing, {"openai": "https://api.openai.com/v1"}, {"openai": "openai"})
    policy = load_policy(POLICIES / "test-context.yaml", default_registry(), MODELS)
    ctx = RequestContext.of(Principal("key_1", policy.context, "tests"), policy)
    with tracing.tracer.start_as_current_span("POST /v1/chat/completions") as server:
        log = ExchangeRecord(id="req_1", endpoint="chat.completions", ctx=ctx)  # in the span
    log.requested_model, log.backend, log.stream = "support-small", "openai", True
    log.prompt_tokens, log.completion_tokens, log.response_model = 12, 30, "gpt-4o-2024-08-06"
    log.request_body = {"messages": [{"role": "user", "content": "secret"}], "max_tokens": 99}
    log.upstream_started_at = log.received_at + timedelta(milliseconds=2)
    log.first_byte_at = log.received_at + timedelta(milliseconds=150)
    log.ended_at = log.received_at + timedelta(milliseconds=900)
    attempt = {"backend": "openai", "model": "gpt-4o", "alias": "support-small", "ms": 148.0}
    log.attempts.append(
        {**attempt, "started_at": log.upstream_started_at.isoformat(), "status": 200}
        | {"outcome": "ok", "error": None}
    )
    decision = ctx.decision
    decision.timings.update({"input:email-in": 1.5, "output:pii-out": 0.5})
    decision.add(
        Outcome(
            "pii-out", "pii", "output", "redact", [Evidence(0, 1, 5, "email")], enforced="redact"
        )
    )
    decision.add(
        Outcome(
            "model-check", "classifier", "input", "block", [Evidence(0, 0, 6, "injection")],
            enforced="shadow", mode="shadow",
        )
    )  # fmt: skip
    entry = log.entry()
    assert entry.row["trace_id"] == f"{server.get_span_context().trace_id:032x}"
    spans.observe(entry.row, entry.decision, entry.span)
    tracing.force_flush()
    kinds = {s.kind: s for s in exporter.get_finished_spans()}
    policy_span, attempt_span = kinds[SpanKind.INTERNAL], kinds[SpanKind.CLIENT]
    assert attempt_span.name == "chat gpt-4o"
    assert attempt_span.parent is not None
    assert attempt_span.parent.span_id == server.get_span_context().span_id
    found: dict[str, Any] = dict(attempt_span.attributes or {})
    assert found["gen_ai.provider.name"] == "openai"
    assert found["server.address"] == "api.openai.com" and found["server.port"] == 443
    assert found["gen_ai.request.max_tokens"] == 99
    assert found["gen_ai.usage.output_tokens"] == 30
    assert found["gen_ai.response.time_to_first_chunk"] == 0.148
    # a stream's serving try lasts until the stream ends (not its 148 ms to the first event)
    assert (attempt_span.end_time or 0) - (attempt_span.start_time or 0) == 898_000_000
    rules: dict[str, Any] = dict(policy_span.attributes or {})
    assert policy_span.name == "policy test-context"
    assert rules["gateway.policy.enforced"] == "redact"
    assert tuple(rules["gateway.policy.rules"]) == ("pii-out",)  # a shadow rule is apart
    assert tuple(rules["gateway.policy.shadow_rules"]) == ("model-check",)
    assert rules["gateway.policy.input_ms"] == 1.5 and rules["gateway.policy.output_ms"] == 0.5
    # the input rules' 1.5 ms, ending where the backend's try began
    assert (policy_span.end_time or 0) - (policy_span.start_time or 0) == 1_500_000
    assert "secret" not in repr([s.attributes for s in exporter.get_finished_spans()])
    tracing.shutdown()


def test_a_record_made_outside_any_span_has_no_trace() -> None:
    record = ExchangeRecord(id="req_2", endpoint="embeddings", status=Status.UPSTREAM_ERROR)
    assert trace.get_current_span().get_span_context().is_valid is False
    entry = record.entry()
    assert entry.row["trace_id"] is None and entry.span is None


def test_the_environment_chooses_the_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert exporters(TelemetryConfig()) == []
    assert exporters(TelemetryConfig(exporter="console")) == ["console"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    assert exporters(TelemetryConfig()) == ["otlp", "console"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert exporters(TelemetryConfig(exporter="otlp")) == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        exporters(TelemetryConfig())
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert exporters(TelemetryConfig(exporter="otlp")) == []

    async def off() -> None:
        async with tracing_for(TelemetryConfig(exporter="otlp")) as tracing:
            assert tracing is None  # no provider, no thread, no cost

    asyncio.run(off())


def test_the_service_is_named_as_the_operator_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource().attributes["service.name"] == "situate-gateway"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")
    named = resource().attributes
    assert named["service.name"] == "gateway-eu"
    assert named["deployment.environment.name"] == "prod"
    assert named["service.version"]
