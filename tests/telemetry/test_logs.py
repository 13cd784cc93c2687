"""Structured logs: a running gateway's stderr is JSON lines, one access line per request with
its request id, context, status, action and timings; no key and no prompt or answer in any
line. And the pieces: the formatter, its masking, the access middleware under a span."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import Message, Receive, Scope, Send

from gateway.config.observe import LoggingConfig
from gateway.policy.decision import Decision
from gateway.telemetry.access import AccessLogMiddleware
from gateway.telemetry.logs import JsonFormatter, configure, mask
from tests.servers import UPSTREAM_SECRET, Gateway


def _lines(gateway: Gateway) -> list[dict[str, Any]]:
    text = (gateway.config.parent / "gateway.log").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:300]}") from None
    return parsed


def _access(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    found = [n for n in lines if n["logger"] == "gateway.access" and n["request_id"] == request_id]
    assert len(found) == 1, found  # one line per request, ours (not uvicorn's too)
    return found[0]


def test_a_served_gateway_logs_json_with_one_access_line_and_no_secrets(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    said = f"tell me about the marmot {secrets.token_hex(6)}"
    whole = client.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": said}]
    )
    answer = whole.parse().choices[0].message.content or ""
    streamed = client.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": said}], stream=True
    )
    for _ in streamed.parse():
        pass
    with pytest.raises(openai.BadRequestError) as blocked:
        client.chat.completions.create(
            model="test-small", messages=[{"role": "user", "content": "a forbidden phrase"}]
        )
    ids = [r.headers["x-request-id"] for r in (whole, streamed, blocked.value.response)]
    for request_id in ids:
        gateway.record(request_id)  # written: every line about it is in the log by now

    lines = _lines(gateway)
    assert all({"time", "level", "logger", "message"} <= set(n) for n in lines)
    ok = _access(lines, ids[0])
    assert ok["method"] == "POST" and ok["path"] == "/v1/chat/completions"
    assert ok["status"] == 200 and ok["context"] == "test-context" and ok["action"] == "allow"
    assert ok["exchange_status"] == "ok"
    assert ok["duration_ms"] >= ok["ttfb_ms"] > 0
    stream = _access(lines, ids[1])
    assert stream["status"] == 200 and stream["ttfb_ms"] <= stream["duration_ms"]
    refused = _access(lines, ids[2])
    assert refused["status"] == 400 and refused["action"] == "block"
    assert not any(n["logger"] == "uvicorn.access" for n in lines)

    text = (gateway.config.parent / "gateway.log").read_text(encoding="utf-8")
    for secret in (*gateway.keys.values(), UPSTREAM_SECRET, said, answer):
        assert secret not in text
    assert "Bearer " not in text


def test_the_formatter_writes_one_object_with_the_extras() -> None:
    record = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "hi %s", ("you",), None)
    record.request_id = "req_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hi you" and line["level"] == "warning"
    assert line["logger"] == "gateway.x" and line["request_id"] == "req_1"
    assert line["time"].endswith("+00:00")
    try:
        raise ValueError("Authorization: Bearer sk-gw-abcdefghijklmnop")
    except ValueError as error:
        failed = logging.LogRecord("g", logging.ERROR, __file__, 1, "failed", (), (
            type(error), error, error.__traceback__))  # fmt: skip
    out = json.loads(JsonFormatter().format(failed))
    assert "ValueError" in out["exception"] and "sk-gw-abcdefghijklmnop" not in out["exception"]


def test_mask_hides_tokens_and_keys() -> None:
    assert mask("Authorization: Bearer abc.def") == "Authorization: Bearer [masked]"
    assert mask("key sk-gw-0123456789abcdef used") == "key [masked] used"
    assert mask("sk-upstream-secret") == "[masked]"
    assert mask("a risk-free task") == "a risk-free task"


def test_configure_sets_the_format_the_level_and_the_access_line(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        out = io.StringIO()
        configure(LoggingConfig(level="warning", format="text", access=False), out)
        logging.getLogger("gateway.y").warning("plain %d", 7)
        logging.getLogger("gateway.y").info("not at warning")
        assert out.getvalue().rstrip().endswith("WARNING gateway.y plain 7")
        assert "not at warning" not in out.getvalue()
        assert logging.getLogger("gateway.access").disabled
        configure(LoggingConfig(), out)
        assert not logging.getLogger("gateway.access").disabled
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.getLogger("gateway.access").disabled = False


class _Exchange:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.status = "ok"


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    scope["state"]["exchange"] = _Exchange(Decision("rev1", "ctx-a"))
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"x", "more_body": True})
    await send({"type": "http.response.body", "body": b"y"})


def test_the_access_line_under_a_span(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()  # the test's own: never the global one
    span = provider.get_tracer("t").start_span("server")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "query_string": b"api_key=sk-gw-secretsecret",
        "headers": [(b"authorization", b"Bearer sk-gw-secretsecret")],
        "state": {"request_id": "req_9"},
    }
    async def call() -> None:
        with trace.use_span(span):
            await AccessLogMiddleware(_answer)(scope, receive, send)

    with caplog.at_level(logging.INFO, "gateway.access"):
        asyncio.run(call())
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["request_id"] == "req_9" and line["status"] == 201
    assert line["context"] == "ctx-a" and line["action"] == "allow"
    assert line["path"] == "/v1/models" and "secret" not in json.dumps(line)
    assert len(sent) == 3
    span.end()
    provider.shutdown()
