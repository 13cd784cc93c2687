"""The mock upstream, exercised over real HTTP under uvicorn (as the gateway will see it)."""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError

from gateway.mock import Fault, Script, load_script

SLOW_WORDS = 200
SCRIPT: dict[str, Any] = {
    "token_delay": 0,
    "embedding_dimensions": 8,
    "rules": [
        {"contains": "SLOW", "token_delay": 0.05, "reply": " ".join(["w"] * SLOW_WORDS)},
        {"contains": "F_429", "fault": {"status": 429}},
        {"contains": "F_BODY", "fault": {"status": 503, "body": {"detail": "custom"}}},
        {"contains": "F_DROP", "reply": "one two three four five", "fault": {"drop_after": 2}},
        {"contains": "F_BAD", "reply": "one two three four", "fault": {"malformed_after": 2}},
        {"contains": "F_ERR", "reply": "one two three", "fault": {"error_frame_after": 1}},
        {"contains": "F_LATE", "reply": "late reply", "fault": {"first_byte_delay": 0.3}},
        {"model": "mock-canned", "reply": "Canned  reply\nwith   spacing."},
    ],
}
DEFAULT_PREFIX = "Hello! This is the Situate demo backend. You said: "


@dataclass
class Mock:
    url: str
    client: httpx.Client
    stderr: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mock]:
    workdir = tmp_path_factory.mktemp("mock")
    script = workdir / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPT), encoding="utf-8")
    stderr = workdir / "stderr.log"
    port = _free_port()
    code = (
        "from pathlib import Path; from gateway.mock import serve_mock; "
        f"serve_mock('127.0.0.1', {port}, Path({str(script)!r}), None)"
    )
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as client:
            _wait_healthy(client, proc)
            yield Mock(url, client, stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_healthy(client: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, "mock server exited during startup"
        try:
            if client.get("/healthz").json() == {"status": "ok"}:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("mock server did not become healthy")


def _chat(content: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": extra.pop("model", "mock-small"),
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": content},
        ],
        **extra,
    }


def _stream(mock: Mock, body: dict[str, Any]) -> list[str]:
    with mock.client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def _chunks(mock: Mock, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parsed chunks of a stream that must end normally with [DONE]."""
    frames = _stream(mock, {**body, "stream": True})
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def _open_stream(mock: Mock, content: str, request_id: str) -> Any:
    body = _chat(content, stream=True)
    headers = {"x-request-id": request_id}
    return mock.client.stream("POST", "/v1/chat/completions", json=body, headers=headers)


def _content(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content", "")
        for c in chunks
        if c["choices"] and c["choices"][0]["index"] == index
    )


def _log_entry(mock: Mock, request_id: str) -> dict[str, Any]:
    """The request's log entry, waiting briefly since it is written when the request ends."""
    deadline = time.monotonic() + 3
    while True:
        log = mock.client.get("/_mock/requests").json()
        entries: list[dict[str, Any]] = [e for e in log if e["request_id"] == request_id]
        if entries or time.monotonic() > deadline:
            assert len(entries) == 1
            return entries[0]
        time.sleep(0.02)


# --- chat completions -------------------------------------------------------------------


def test_default_reply_non_streaming(mock: Mock) -> None:
    response = mock.client.post("/v1/chat/completions", json=_chat("hi there friend"))
    assert response.status_code == 200
    body = response.json()
    text = DEFAULT_PREFIX + "hi there friend"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert {k: v for k, v in body.items() if k not in ("id", "created")} == {
        "object": "chat.completion",
        "model": "mock-small",
        "system_fingerprint": "fp_mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17},
    }


def test_default_reply_quotes_last_user_message_text_parts(mock: Mock) -> None:
    parts = [{"type": "text", "text": "x" * 300}]
    body = _chat("ignored", model="mock-large")
    body["messages"].append({"role": "assistant", "content": "ok"})
    body["messages"].append({"role": "user", "content": parts})
    reply = mock.client.post("/v1/chat/completions", json=body).json()
    assert reply["model"] == "mock-large"
    assert reply["choices"][0]["message"]["content"] == DEFAULT_PREFIX + "x" * 200


def test_streaming_frames_concatenate_to_reply(mock: Mock) -> None:
    chunks = _chunks(mock, _chat("stream me"))
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["system_fingerprint"] == "fp_mock" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hello! "}
    finish = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [finish]
    assert _content(chunks) == DEFAULT_PREFIX + "stream me"
    assert len(chunks) == 2 + len((DEFAULT_PREFIX + "stream me").split())


def test_streaming_include_usage(mock: Mock) -> None:
    chunks = _chunks(mock, _chat("count me", stream_options={"include_usage": True}))
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 11, "total_tokens": 15}


def test_rule_reply_keeps_whitespace(mock: Mock) -> None:
    body = _chat("anything", model="mock-canned")
    whole = mock.client.post("/v1/chat/completions", json=body).json()
    assert whole["choices"][0]["message"]["content"] == "Canned  reply\nwith   spacing."
    assert _content(_chunks(mock, body)) == "Canned  reply\nwith   spacing."


def test_n_choices(mock: Mock) -> None:
    body = mock.client.post("/v1/chat/completions", json=_chat("two", n=2)).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["message"] == body["choices"][1]["message"]
    assert body["usage"]["completion_tokens"] == 2 * 10
    chunks = _chunks(mock, _chat("two", n=2))
    assert _content(chunks, 0) == _content(chunks, 1) == DEFAULT_PREFIX + "two"


@pytest.mark.parametrize("limit_field", ["max_tokens", "max_completion_tokens"])
def test_length_truncation(mock: Mock, limit_field: str) -> None:
    body = _chat("cut me short", **{limit_field: 3})
    whole = mock.client.post("/v1/chat/completions", json=body).json()
    assert whole["choices"][0]["message"]["content"] == "Hello! This is"
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 3
    chunks = _chunks(mock, body)
    assert _content(chunks) == "Hello! This is"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock-small"}, "messages"),
        ({**_chat("x"), "n": 0}, "n"),
    ],
)
def test_invalid_chat_requests(mock: Mock, body: dict[str, Any], param: str) -> None:
    response = mock.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_invalid_json(mock: Mock) -> None:
    response = mock.client.post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --- faults ------------------------------------------------------------------------------


def test_fault_status(mock: Mock) -> None:
    response = mock.client.post("/v1/chat/completions", json=_chat("F_429", stream=True))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.json()["error"]["param"] is None
    response = mock.client.post("/v1/chat/completions", json=_chat("F_BODY"))
    assert (response.status_code, response.json()) == (503, {"detail": "custom"})


def test_fault_drop_mid_stream(mock: Mock) -> None:
    request_id = uuid.uuid4().hex
    frames: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError), _open_stream(mock, "F_DROP", request_id) as r:
        frames.extend(line for line in r.iter_lines() if line.startswith("data: "))
    assert len(frames) == 1 + 2  # the role chunk, then two content chunks
    entry = _log_entry(mock, request_id)
    assert (entry["outcome"], entry["chunks_sent"]) == ("fault", 2)
    assert "Traceback" not in mock.stderr.read_text(encoding="utf-8")


def test_fault_drop_without_response(mock: Mock) -> None:
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        mock.client.post("/v1/chat/completions", json=_chat("F_DROP"))


def test_fault_malformed_frame(mock: Mock) -> None:
    frames = _stream(mock, _chat("F_BAD", stream=True))
    assert frames[-2:] == ["{not json", "[DONE]"]
    assert _content([json.loads(f) for f in frames[:-2]]) == "one two "


def test_fault_error_frame(mock: Mock) -> None:
    frames = _stream(mock, _chat("F_ERR", stream=True))
    assert frames[-1] != "[DONE]"
    error = {"message": "mock upstream error", "type": "server_error", "param": None}
    assert json.loads(frames[-1]) == {"error": {**error, "code": "mock_error"}}
    assert _content([json.loads(f) for f in frames[:-1]]) == "one "


def test_fault_first_byte_delay(mock: Mock) -> None:
    started = time.monotonic()
    with mock.client.stream("POST", "/v1/chat/completions", json=_chat("F_LATE", stream=True)) as r:
        headers_at = time.monotonic() - started
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        first_at = time.monotonic() - started
        assert "data: [DONE]" in list(lines)
    assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert headers_at < 0.25 <= first_at
    started = time.monotonic()
    whole = mock.client.post("/v1/chat/completions", json=_chat("F_LATE"))
    assert time.monotonic() - started >= 0.25
    assert whole.json()["choices"][0]["message"]["content"] == "late reply"


# --- embeddings, models, routing ----------------------------------------------------------


def test_embeddings_float_and_base64(mock: Mock) -> None:
    body = {"model": "embed-1", "input": ["alpha", "beta gamma"]}
    floats = mock.client.post("/v1/embeddings", json=body).json()
    assert floats["object"] == "list"
    assert floats["model"] == "embed-1"
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    vectors = [d["embedding"] for d in floats["data"]]
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert all(len(v) == 8 and all(-1 <= x <= 1 for x in v) for v in vectors)
    assert all(math.isclose(math.hypot(*v), 1.0) for v in vectors)
    assert vectors[0] != vectors[1]
    again = mock.client.post("/v1/embeddings", json=body).json()
    assert [d["embedding"] for d in again["data"]] == vectors
    encoded = mock.client.post("/v1/embeddings", json={**body, "encoding_format": "base64"})
    for item, vector in zip(encoded.json()["data"], vectors, strict=True):
        decoded = struct.unpack("<8f", base64.b64decode(item["embedding"]))
        assert decoded == pytest.approx(vector, abs=1e-6)


def test_embeddings_dimensions_and_tokens(mock: Mock) -> None:
    body = {"model": "e", "input": [[1, 2, 3], [4]], "dimensions": 40}
    reply = mock.client.post("/v1/embeddings", json=body).json()
    assert [len(d["embedding"]) for d in reply["data"]] == [40, 40]
    assert reply["usage"]["prompt_tokens"] == 4
    bad = mock.client.post("/v1/embeddings", json={"model": "e", "input": [1, "x"]})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "input"


def test_models(mock: Mock) -> None:
    listing = mock.client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["mock-small", "mock-large"]
    one = mock.client.get("/v1/models/mock-large").json()
    assert one == {"id": "mock-large", "object": "model", "created": 1700000000} | {
        "owned_by": "situate-mock"
    }
    missing = mock.client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_unknown_path_and_wrong_method(mock: Mock) -> None:
    missing = mock.client.get("/v1/nothing")
    assert missing.status_code == 404
    assert "error" in missing.json()
    wrong = mock.client.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_openai_sdk_compatibility(mock: Mock) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-mock", max_retries=0) as client:
        messages = [{"role": "user", "content": "sdk"}]
        whole = client.chat.completions.create(model="mock-small", messages=messages)
        assert whole.choices[0].message.content == DEFAULT_PREFIX + "sdk"
        stream = client.chat.completions.create(
            model="mock-small",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            DEFAULT_PREFIX + "sdk"
        )
        assert chunks[-1].usage is not None
        sdk_vector = client.embeddings.create(model="e", input="hello").data[0].embedding
    raw = mock.client.post("/v1/embeddings", json={"model": "e", "input": "hello"}).json()
    assert sdk_vector == pytest.approx(raw["data"][0]["embedding"], abs=1e-6)


# --- request log ---------------------------------------------------------------------------


def test_request_log_records_headers_and_clears(mock: Mock) -> None:
    request_id = uuid.uuid4().hex
    headers = {"x-request-id": request_id, "authorization": "Bearer sk-up"}
    mock.client.post("/v1/chat/completions", json=_chat("log me", stream=True), headers=headers)
    entry = _log_entry(mock, request_id)
    assert entry.pop("headers")["x-request-id"] == request_id  # authorization is kept apart
    assert entry == {
        "request_id": request_id,
        "path": "/v1/chat/completions",
        "model": "mock-small",
        "stream": True,
        "authorization": "Bearer sk-up",
        "body": _chat("log me", stream=True),
        "outcome": "completed",
        "chunks_sent": 11,
    }
    assert mock.client.delete("/_mock/requests").status_code == 200
    assert mock.client.get("/_mock/requests").json() == []


def test_request_log_sees_client_disconnect(mock: Mock) -> None:
    request_id = uuid.uuid4().hex
    with _open_stream(mock, "SLOW", request_id) as response:
        lines = (line for line in response.iter_lines() if line.startswith("data: "))
        for _ in range(3):  # the role chunk and two content chunks
            next(lines)
    # Leaving the block with the body unread makes httpx close the connection.
    entry = _log_entry(mock, request_id)
    assert entry["outcome"] == "client_disconnected"
    assert 2 <= entry["chunks_sent"] < SLOW_WORDS


# --- scripts -------------------------------------------------------------------------------


def test_load_script_formats(tmp_path: Path) -> None:
    assert load_script(None) == Script()
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps({"token_delay": 0.5, "rules": [{"reply": "x"}]}))
    assert load_script(as_json).rules[0].reply == "x"
    as_yaml = tmp_path / "s.yml"
    as_yaml.write_text("models: [a]\nrules:\n  - model: a\n    fault: {status: 500}\n")
    script = load_script(as_yaml)
    assert script.models == ["a"]
    assert script.rules[0].fault == Fault(status=500)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_script(empty) == Script()
    with pytest.raises(ValueError, match="yaml"):
        load_script(tmp_path / "s.txt")


@pytest.mark.parametrize(
    "fault",
    [{"status": 500, "drop_after": 1}, {"body": {"a": 1}}, {"status": 500, "nope": 1}],
)
def test_fault_validation(fault: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Fault.model_validate(fault)
