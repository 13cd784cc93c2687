"""Backends that are not OpenAI: the request id header they get, and their non-OpenAI 4xx bodies.

The upstream here is the mock scripted like llama-cpp-python's server: it refuses an
``X-Request-ID`` that is not a UUID with a 400 and an empty body, and some requests get a
plain-text or HTML 400, as servers and the proxies in front of them answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from gateway.config import DEFAULT_REQUEST_ID_HEADER, ConfigError, load_config
from gateway.upstream.error_text import shown
from tests import spec
from tests.databases import make_key, upgrade
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    Upstream,
    free_port,
    process,
    scripted_upstream,
)

CONTEXT = "plain-context"
POLICY = Path(__file__).resolve().parents[1] / "policies" / f"{CONTEXT}.yaml"
LONG_WORD = "overlong"
EMPTY = "Backend '{}' refused the request (HTTP {}) with an empty body."
SECRETS = (
    UPSTREAM_SECRET,  # the backend's own key, echoed back by a careless server
    "sk-proj-AbCdEf0123456789XyZabc",  # some other OpenAI-style key
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZw",  # a JWT
    "hunter2hunter2",  # a password= value
)
PLAIN = (
    f"Bad Request: max_tokens must be at most 512 (key {SECRETS[0]}, also {SECRETS[1]}, "
    f"Authorization: Bearer {SECRETS[2]}, password={SECRETS[3]})"
)
HTML = (
    "<html><head><title>400 Bad Request</title><style>body{color:red}</style></head>"
    "<body><center><h1>400 Bad Request</h1></center>"
    "<p>Request header or cookie too large</p><hr><center>nginx</center></body></html>"
)
SCRIPT: dict[str, Any] = {
    "uuid_request_id": True,
    "rules": [
        {"contains": "TEXT-400", "fault": {"status": 400, "text": PLAIN}},
        {
            "contains": "HTML-400",
            "fault": {"status": 400, "text": HTML, "content_type": "text/html"},
        },
        {"contains": "EMPTY-422", "fault": {"status": 422, "text": ""}},
        {"contains": "LONG-400", "fault": {"status": 400, "text": f"{LONG_WORD} " * 2000}},
        {"contains": "CUT-SHORT", "reply": "one two three four", "fault": {"done_after": 2}},
    ],
}
BACKENDS: dict[str, dict[str, Any]] = {
    "llama-like": {},  # the default header
    "uuid-header": {"request_id_header": "X-Request-ID"},  # what the gateway used to send
    "no-header": {"request_id_header": False},  # `off` in YAML
    "no-usage": {"stream_usage": False},  # so the mock, like llama-cpp-python, sends none
}


@pytest.fixture(scope="module")
def uuid_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with scripted_upstream(tmp_path_factory.mktemp("uuid-upstream"), SCRIPT) as upstream:
        yield upstream


def _config(upstream: Upstream, folder: Path) -> Path:
    backends = {
        name: {"base_url": f"{upstream.url}/v1", "api_key_env": "MOCK_UPSTREAM_KEY", **extra}
        for name, extra in BACKENDS.items()
    }
    config = {
        "backends": backends,
        "models": {name: {"backend": name, "model": "mock-small"} for name in backends},
        "policies_dir": str(folder / "policies"),
        "recording": {"spill_dir": str(folder / "spill")},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def gateway(uuid_upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway-backends")
    (folder / "policies").mkdir()
    policy = yaml.safe_load(POLICY.read_text())
    policy["models"]["allow"] = list(BACKENDS)
    policy.pop("review")
    (folder / "policies" / f"{CONTEXT}.yaml").write_text(yaml.safe_dump(policy))
    config = _config(uuid_upstream, folder)
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    key = make_key(upgrade(env["GATEWAY_DATABASE_URL"]), CONTEXT, "t")
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        yield Gateway(f"http://127.0.0.1:{port}", key, env, config, "sqlite", {}, folder)


@pytest.fixture
def sdk(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as client:
        yield client


def _ask(sdk: openai.OpenAI, model: str, text: str, *, stream: bool = False) -> str:
    """The gateway's request id of one answered chat request."""
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        with sdk.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True
        ) as raw:
            assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            return raw.headers["x-request-id"]
    answered = sdk.chat.completions.with_raw_response.create(model=model, messages=messages)
    assert answered.parse().choices[0].message.content
    return answered.headers["x-request-id"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_server_that_validates_x_request_id_answers_through_the_gateway(
    sdk: openai.OpenAI, gateway: Gateway, uuid_upstream: Upstream, stream: bool
) -> None:
    request_id = _ask(sdk, "llama-like", "hello", stream=stream)
    seen = uuid_upstream.seen(request_id)
    assert seen["headers"][DEFAULT_REQUEST_ID_HEADER.lower()] == request_id
    assert "x-request-id" not in seen["headers"]
    record = gateway.record(request_id)
    assert (record["id"], record["status"], record["backend"]) == (request_id, "ok", "llama-like")


def test_the_forwarded_id_header_can_be_turned_off_and_the_record_keeps_the_id(
    sdk: openai.OpenAI, gateway: Gateway, uuid_upstream: Upstream
) -> None:
    before = len(uuid_upstream.requests())
    request_id = _ask(sdk, "no-header", "hello, no id please")
    seen = uuid_upstream.requests()[before:]
    assert [e["body"]["messages"][0]["content"] for e in seen] == ["hello, no id please"]
    assert request_id not in json.dumps(seen[0]["headers"])
    assert seen[0]["request_id"] is None
    assert gateway.record(request_id)["backend"] == "no-header"


def test_a_stream_without_usage_is_recorded_as_unknown_with_the_reason(
    sdk: openai.OpenAI, gateway: Gateway
) -> None:
    stream = _ask(sdk, "no-usage", "count me", stream=True)
    whole = _ask(sdk, "no-usage", "count me")
    tokens = ("prompt_tokens", "completion_tokens", "total_tokens")
    streamed = gateway.record(stream)
    assert (streamed["status"], *(streamed[t] for t in tokens)) == ("ok", None, None, None)
    assert streamed["response_body"]["usage"] is None
    assert streamed["response_body"]["usage_missing"] == "the backend sent no usage on this stream"
    answered = gateway.record(whole)
    assert [answered[t] for t in tokens] == [2, 11, 13]
    assert "usage_missing" not in answered["response_body"]


def test_a_done_before_any_finish_is_recorded_as_incomplete(
    sdk: openai.OpenAI, gateway: Gateway
) -> None:
    """llama-cpp-python ends a stream this way when another request comes in."""
    with sdk.chat.completions.with_streaming_response.create(
        model="llama-like", messages=[{"role": "user", "content": "CUT-SHORT"}], stream=True
    ) as raw:
        chunks = list(raw.parse())
        request_id = raw.headers["x-request-id"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two "
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None]
    record = gateway.record(request_id)
    assert (record["status"], record["error_type"]) == ("incomplete", "upstream_ended")
    assert "[DONE]" in record["error_message"]
    assert record["response_body"]["choices"][0]["finish_reason"] is None


def _refused(sdk: openai.OpenAI, model: str, text: str, *, stream: bool) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], stream=stream
        )
    response = caught.value.response
    spec.check("ErrorResponse", response.json())
    assert response.headers["x-should-retry"] == "false"
    return caught.value


def _message(exc: openai.APIStatusError) -> str:
    error = exc.response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "upstream_client_error")
    message: str = error["message"]
    return message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_plain_text_400_reaches_the_client_scrubbed_in_openai_shape(
    sdk: openai.OpenAI, gateway: Gateway, stream: bool
) -> None:
    exc = _refused(sdk, "llama-like", "TEXT-400", stream=stream)
    assert exc.status_code == 400
    message = _message(exc)
    assert "Backend 'llama-like' refused the request (HTTP 400)" in message
    assert "Bad Request: max_tokens must be at most 512" in message
    for secret in SECRETS:
        assert secret not in message
    assert "[redacted]" in message
    record = gateway.record(exc.response.headers["x-request-id"])
    assert (record["status"], record["http_status"]) == ("upstream_error", 400)
    assert record["response_body"] == exc.response.json()
    assert record["error_message"] == message


def test_an_html_400_is_passed_on_as_its_text(sdk: openai.OpenAI) -> None:
    message = _message(_refused(sdk, "llama-like", "HTML-400", stream=False))
    assert message.endswith(
        "400 Bad Request 400 Bad Request Request header or cookie too large nginx"
    )
    assert "<" not in message and "color:red" not in message


def test_an_empty_4xx_says_it_was_empty(sdk: openai.OpenAI) -> None:
    exc = _refused(sdk, "llama-like", "EMPTY-422", stream=False)
    assert exc.status_code == 422
    assert _message(exc) == EMPTY.format("llama-like", 422)


def test_a_long_4xx_body_is_bounded_and_says_so(sdk: openai.OpenAI) -> None:
    message = _message(_refused(sdk, "llama-like", "LONG-400", stream=True))
    assert LONG_WORD in message and len(message) < 700
    cut = re.search(r"\(([0-9]+) more characters\)$", message)
    assert cut is not None and int(cut.group(1)) > 15_000


def test_the_old_x_request_id_header_shows_why_such_a_server_refuses(
    sdk: openai.OpenAI, uuid_upstream: Upstream
) -> None:
    """Configured to send X-Request-ID, the refusal now says what the server answered."""
    exc = _refused(sdk, "uuid-header", "hello", stream=False)
    assert exc.status_code == 400
    assert _message(exc) == EMPTY.format("uuid-header", 400)
    request_id = exc.response.headers["x-request-id"]
    assert uuid_upstream.seen(request_id)["outcome"] == "fault"


def _load(tmp_path: Path, backend: dict[str, Any]) -> Any:
    path = tmp_path / "gateway.yaml"
    config = {"backends": {"b": {"base_url": "http://127.0.0.1:1/v1", **backend}}, "models": {}}
    path.write_text(yaml.safe_dump(config))
    return load_config(path).backends["b"].request_id_header


def test_the_request_id_header_setting(tmp_path: Path) -> None:
    assert _load(tmp_path, {}) == DEFAULT_REQUEST_ID_HEADER == "X-Situate-Request-Id"
    assert _load(tmp_path, {"request_id_header": "X-Request-ID"}) == "X-Request-ID"
    path = tmp_path / "off.yaml"
    path.write_text(
        "backends: {b: {base_url: 'http://127.0.0.1:1/v1', request_id_header: off}}\nmodels: {}\n"
    )
    assert load_config(path).backends["b"].request_id_header is None
    assert _load(tmp_path, {"request_id_header": None}) is None
    for bad in ("X Request Id", "", "Authorization", "content-type", True):
        with pytest.raises(ConfigError, match="request_id_header"):
            _load(tmp_path, {"request_id_header": bad})


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"key AKIAABCDEFGHIJKLMNOP denied", "text/plain", "key [redacted] denied"),
        (b"bad token ghp_0123456789abcdefghijAB", "", "bad token [redacted]"),
        (b"hf_0123456789abcdefghijKLMN is revoked", "", "[redacted] is revoked"),
        (b'{"api_key": "abcd1234efgh"} rejected', "", '{"api_key": "[redacted]"} rejected'),
        (b"Authorization: Basic dXNlcjpwYXNz", "", "Authorization: Basic [redacted]"),
        (b'{"detail": "Not Found"}', "application/json", "Not Found"),
        (b'{"error": "model is required"}', "application/json", "model is required"),
        (b'{"detail": [{"loc": ["body"]}]}', "application/json", '{"detail":[{"loc":["body"]}]}'),
        (b"<p>caf&eacute; &lt;closed&gt;</p><!-- sk-hidden -->", "text/html", "café <closed>"),
        (b"line one\r\n\tline\x00two", "text/plain", "line one line two"),
        (b"max_tokens must be at most 512", "", "max_tokens must be at most 512"),
    ],
)
def test_what_of_an_error_body_is_shown(body: bytes, content_type: str, expected: str) -> None:
    assert shown(body, content_type) == expected
