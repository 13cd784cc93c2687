"""Traces through a running gateway: a SERVER span per request, a CLIENT span per upstream
attempt (GenAI names and attributes), a policy span, all in one trace that the exchange's
record names, and a caller's traceparent honoured. The gateway's spans go to an in-memory
exporter handed to its app (no global provider)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.telemetry.serving import (
    Traced,
    by_name,
    database_file,
    gateway_config,
    scripted_upstream,
    traced_gateway,
)

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traces")


@pytest.fixture(scope="module")
def upstream(folder: Path) -> Iterator[str]:
    with scripted_upstream(folder) as url:
        yield url


def _traced(folder: Path, upstream: str, name: str, **fields: Any) -> Iterator[Traced]:
    (folder / name).mkdir()
    config = gateway_config(folder / name, upstream, **fields)
    exporter = InMemorySpanExporter()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # ms: the batches go out at once
        with traced_gateway(config, exporter) as (url, keys):
            yield Traced(url, keys, database_file(config), exporter)


@pytest.fixture(scope="module")
def traced(folder: Path, upstream: str) -> Iterator[Traced]:
    yield from _traced(folder, upstream, "plain")


@pytest.fixture(scope="module")
def with_content(folder: Path, upstream: str) -> Iterator[Traced]:
    yield from _traced(folder, upstream, "content", telemetry={"content": True})


def _sdk(gateway: Traced, context: str = "test-context") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[context], max_retries=0)


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _call(gateway: Traced, count: int, **request: Any) -> tuple[str, list[ReadableSpan]]:
    """A chat call (its error, if any, swallowed): its trace id, from the record, and its
    spans once ``count`` arrived."""
    with _sdk(gateway) as sdk:
        try:
            raw = sdk.chat.completions.with_raw_response.create(**request)
            if request.get("stream"):
                list(raw.parse())
            request_id = raw.headers["x-request-id"]
        except openai.APIStatusError as exc:
            request_id = exc.response.headers["x-request-id"]
    trace_id = gateway.trace_id_of(request_id)
    assert trace_id is not None and len(trace_id) == 32
    return trace_id, gateway.spans(trace_id, count)


def _one(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    (found,) = [s for s in spans if s.kind == kind]
    return found


def _child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None
    return bool(child.parent.span_id == parent.context.span_id)


def test_a_chat_call_is_a_server_span_with_its_policy_and_attempt_spans(traced: Traced) -> None:
    trace_id, spans = _call(
        traced, 3, model="test-small", messages=HELLO, max_tokens=50, temperature=0.2, top_p=0.9
    )
    server = _one(spans, SpanKind.SERVER)
    assert server.name == "POST /v1/chat/completions" and server.parent is None
    assert _attributes(server)["http.response.status_code"] == 200
    (attempt,) = by_name(spans, "chat ")
    assert attempt.name == "chat mock-small" and attempt.kind == SpanKind.CLIENT
    (policy,) = by_name(spans, "policy ")
    assert policy.kind == SpanKind.INTERNAL and policy.name == "policy test-context"
    assert _child_of(attempt, server) and _child_of(policy, server)
    found = _attributes(attempt)
    assert found["gen_ai.operation.name"] == "chat"
    assert found["gen_ai.provider.name"] == "openai"
    assert found["gen_ai.request.model"] == "mock-small"
    assert found["gateway.model_alias"] == "test-small"
    assert found["gen_ai.request.stream"] is False
    assert found["gen_ai.request.max_tokens"] == 50
    assert found["gen_ai.request.temperature"] == 0.2 and found["gen_ai.request.top_p"] == 0.9
    assert found["gen_ai.response.id"].startswith("chatcmpl")
    assert tuple(found["gen_ai.response.finish_reasons"]) == ("stop",)
    assert found["gen_ai.usage.input_tokens"] > 0 and found["gen_ai.usage.output_tokens"] > 0
    assert found["server.address"] == "127.0.0.1" and isinstance(found["server.port"], int)
    assert "error.type" not in found and attempt.status.status_code == StatusCode.UNSET
    rules = _attributes(policy)
    assert rules["gateway.policy.verdict"] == "allow"
    assert rules["gateway.policy.enforced"] == "allow"
    assert rules["gateway.policy.decision_id"].startswith("dec_")
    assert len(rules["gateway.policy.revision"]) > 0
    assert "block-error" in rules["gateway.policy.evaluated"]
    assert policy.end_time is not None and attempt.start_time is not None
    assert policy.end_time <= attempt.start_time  # the input rules ran before the backend
    assert f"{server.context.trace_id:032x}" == trace_id  # the record's trace id
    # no content on any span by default: neither the prompt nor the answer
    text = json.dumps([_attributes(s) for s in spans])
    assert "capital of France" not in text and "Paris" not in text


def test_a_stream_s_server_span_ends_with_its_last_byte(traced: Traced) -> None:
    messages: Any = [{"role": "user", "content": "count SLOWLY please"}]  # six chunks, 20 ms apart
    with _sdk(traced, "plain-context") as sdk:  # no output rules: each chunk as it comes
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=messages, stream=True
        )
        chunks = iter(raw.parse())
        next(chunks)
        first_chunk = time.time_ns()
        rest = list(chunks)
        last_chunk = time.time_ns()
    assert len(rest) >= 5
    spans = traced.spans(traced.trace_id_of(raw.headers["x-request-id"]) or "", 3)
    server = _one(spans, SpanKind.SERVER)
    assert server.end_time is not None
    assert first_chunk < server.end_time <= last_chunk  # not at the response's start: its end
    (attempt,) = by_name(spans, "chat ")
    found = _attributes(attempt)
    assert found["gen_ai.request.stream"] is True
    assert tuple(found["gen_ai.response.finish_reasons"]) == ("stop",)
    assert 0 <= found["gen_ai.response.time_to_first_chunk"] < 1
    assert found["gen_ai.usage.output_tokens"] > 0
    # the serving try lasts the stream, not only until its first event
    assert (attempt.end_time or 0) - (attempt.start_time or 0) > 80_000_000


def test_an_upstream_error_is_an_attempt_span_in_error(traced: Traced) -> None:
    _, spans = _call(traced, 4, model="dead-model", messages=HELLO)
    server = _one(spans, SpanKind.SERVER)
    assert _attributes(server)["http.response.status_code"] == 502
    assert server.status.status_code == StatusCode.ERROR
    attempts = by_name(spans, "chat ")
    assert len(attempts) == 2  # two tries, both on the dead backend
    first, last = (_attributes(a) for a in attempts)
    assert [first["gateway.attempt"], last["gateway.attempt"]] == [1, 2]
    assert last["error.type"] == "upstream_unreachable"  # the exchange's own error
    assert first["error.type"] == "_OTHER"  # an earlier try's code is not recorded
    assert all(a.status.status_code == StatusCode.ERROR for a in attempts)
    assert all(_child_of(a, server) for a in attempts)


def test_a_policy_block_has_no_attempt_and_its_policy_span_says_block(traced: Traced) -> None:
    messages = [{"role": "user", "content": "this has the forbidden phrase in it"}]
    _, spans = _call(traced, 2, model="test-small", messages=messages)
    server = _one(spans, SpanKind.SERVER)
    assert _attributes(server)["http.response.status_code"] == 400
    assert server.status.status_code == StatusCode.UNSET  # a 4xx is the caller's
    assert by_name(spans, "chat ") == []
    (policy,) = by_name(spans, "policy ")
    found = _attributes(policy)
    assert found["gateway.policy.verdict"] == "block"
    assert found["gateway.policy.enforced"] == "block"
    assert tuple(found["gateway.policy.rules"]) == ("block-error",)


def test_a_retry_is_two_attempt_spans_the_first_in_error(traced: Traced) -> None:
    messages = [{"role": "user", "content": "FLAKY: what is the capital of France?"}]
    _, spans = _call(traced, 4, model="test-small", messages=messages)
    first, second = by_name(spans, "chat ")
    assert _attributes(first)["error.type"] == "500"
    assert _attributes(first)["http.response.status_code"] == 500
    assert _attributes(first)["gateway.attempt.outcome"] == "retried"
    assert first.status.status_code == StatusCode.ERROR
    assert "error.type" not in _attributes(second)
    assert _attributes(second)["gateway.attempt.outcome"] == "ok"
    assert "gen_ai.response.id" in _attributes(second)
    assert "gen_ai.response.id" not in _attributes(first)
    assert (first.end_time or 0) <= (second.start_time or 0)


def test_a_caller_s_traceparent_makes_the_gateway_its_child(traced: Traced) -> None:
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    trace_id, spans = _call(traced, 3, model="test-small", messages=HELLO, extra_headers=headers)
    assert trace_id == caller_trace  # the record joins the caller's trace
    server = _one(spans, SpanKind.SERVER)
    assert server.parent is not None and server.parent.is_remote
    assert f"{server.parent.span_id:016x}" == caller_span


def test_content_goes_on_the_attempt_span_only_when_opted_in(with_content: Traced) -> None:
    _, spans = _call(with_content, 3, model="test-small", messages=HELLO)
    (attempt,) = by_name(spans, "chat ")
    found = _attributes(attempt)
    (asked,) = json.loads(found["gen_ai.input.messages"])
    assert asked == {
        "role": "user",
        "parts": [{"type": "text", "content": "What is the capital of France?"}],
    }
    (answer,) = json.loads(found["gen_ai.output.messages"])
    assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
    assert answer["parts"] == [{"type": "text", "content": "The capital of France is Paris."}]
    # only on the attempt: the server and policy spans carry no text
    others = [_attributes(s) for s in spans if s is not attempt]
    assert "Paris" not in json.dumps(others) and "capital" not in json.dumps(others)
