"""One span per exchange, with the GenAI attribute names and the policy decision, no content."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.auth.keys import Principal
from gateway.checks.registry import default_registry
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.decision import Evidence, Outcome
from gateway.policy.loader import load_policy
from gateway.records.status import Status
from gateway.telemetry.spans import Telemetry

POLICIES = Path(__file__).resolve().parent / "policies"
MODELS = ["test-small", "test-large", "dead-model"]


def test_an_exchange_becomes_a_genai_span_with_its_decision() -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(exporter, batch=False)
    policy = load_policy(POLICIES / "test-context.yaml", default_registry(), MODELS)
    ctx = RequestContext.of(Principal("key_1", policy.context, "tests"), policy)
    log = ExchangeRecord(
        id="req_1",
        endpoint="chat.completions",
        ctx=ctx,
        requested_model="support-small",
        backend="openai",
        stream=True,
        response_model="gpt-4o-2024-08-06",
        prompt_tokens=12,
        completion_tokens=30,
        request_body={"messages": [{"content": "secret"}]},
    )
    log.upstream_started_at = log.received_at + timedelta(milliseconds=2)
    log.first_byte_at = log.received_at + timedelta(milliseconds=150)
    log.ended_at = log.received_at + timedelta(milliseconds=900)
    decision = ctx.decision
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
    telemetry.exchange(entry.row, entry.decision)
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat support-small" and span.kind == SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["gen_ai.response.time_to_first_chunk"] == 0.148
    assert attributes["gateway.policy.revision"] == policy.revision
    assert attributes["gateway.context"] == policy.context
    assert attributes["gateway.policy.enforced"] == "redact"
    assert tuple(attributes["gateway.policy.rules"]) == ("pii-out",)  # a shadow rule is apart
    assert tuple(attributes["gateway.policy.shadow_rules"]) == ("model-check",)
    assert "secret" not in repr(attributes)  # no content in spans
    assert (span.end_time - span.start_time) == 900_000_000  # type: ignore[operator]

    failed = ExchangeRecord(
        id="req_2",
        endpoint="embeddings",
        status=Status.UPSTREAM_ERROR,
        http_status=502,
        error_type="upstream_unreachable",
    )
    telemetry.exchange(failed.entry().row)
    assert exporter.get_finished_spans()[-1].status.status_code == StatusCode.ERROR
    telemetry.shutdown()
