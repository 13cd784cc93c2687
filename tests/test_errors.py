"""Every failure is an OpenAI-shaped error with the right status and code, and is recorded."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests import spec
from tests.servers import UPSTREAM_SECRET, Gateway

QUESTION = [{"role": "user", "content": "hello"}]


def post(
    gateway: Gateway,
    body: object,
    *,
    key: str | None = None,
    path: str = "/chat/completions",
    raw: bytes | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{gateway.v1}{path}", content=content, headers=headers, timeout=30)


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    spec.check("ErrorResponse", body)
    assert response.headers["x-request-id"].startswith("req_")
    error: dict[str, object] = body["error"]
    return error


def test_missing_and_wrong_keys_are_401_and_recorded(gateway: Gateway) -> None:
    for key in (None, "sk-gw-not-a-real-key-at-all-000000", "not even shaped like a key"):
        response = post(gateway, {"model": "test-small", "messages": QUESTION}, key=key)
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_api_key"
        assert response.headers["x-should-retry"] == "false"
        record = gateway.record(response.headers["x-request-id"])
        assert (record["status"], record["http_status"], record["key_id"]) == (
            "rejected",
            401,
            None,
        )
    with (
        openai.OpenAI(
            base_url=gateway.v1, api_key="sk-gw-wrong-0000000000000000", max_retries=0
        ) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()


def test_unknown_model_is_404_naming_the_available_ones(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    response = post(gateway, {"model": "gpt-nonexistent", "messages": QUESTION}, key=gateway.key)
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "test-small" in str(error["message"])
    assert response.headers["x-should-retry"] == "false"
    record = gateway.record(response.headers["x-request-id"])
    assert (record["status"], record["requested_model"]) == ("rejected", "gpt-nonexistent")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nonexistent")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": QUESTION}, "model"),
        ({"model": "test-small"}, "messages"),
        ({"model": "test-small", "messages": []}, "messages"),
        (
            {"model": "test-small", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "test-small", "messages": QUESTION, "stream": "yes"}, "stream"),
        ({"model": "test-small", "messages": QUESTION, "n": 0}, "n"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(
    gateway: Gateway, body: object, param: str
) -> None:
    response = post(gateway, body, key=gateway.key)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] == param
    assert response.headers["x-should-retry"] == "false"
    record = gateway.record(response.headers["x-request-id"])
    assert record["status"] == "rejected" and record["request_body"] == body


def test_unparseable_body_is_400_and_recorded(gateway: Gateway) -> None:
    response = post(gateway, None, key=gateway.key, raw=b'{"model": "test-small", "mess')
    assert response.status_code == 400
    assert "JSON" in str(error_of(response)["message"])
    assert gateway.record(response.headers["x-request-id"])["status"] == "rejected"


def test_oversized_body_is_413(gateway: Gateway) -> None:
    big = [{"role": "user", "content": "x" * 70_000}]
    response = post(gateway, {"model": "test-small", "messages": big}, key=gateway.key)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert gateway.record(response.headers["x-request-id"])["http_status"] == 413


def test_unknown_route_and_wrong_method(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing-here")
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_url"
    response = httpx.get(f"{gateway.v1}/chat/completions")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("trigger", "status", "code"),
    [
        ("FAULT-500", 502, "upstream_error"),
        ("FAULT-401", 502, "upstream_auth_failed"),
        ("SLOW-FIRST", 504, "upstream_timeout"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_are_502_or_504(
    gateway: Gateway, trigger: str, status: int, code: str, stream: bool
) -> None:
    body = {
        "model": "test-small",
        "stream": stream,
        "messages": [{"role": "user", "content": trigger}],
    }
    response = post(gateway, body, key=gateway.key)
    if trigger == "SLOW-FIRST" and not stream:
        # A non-streaming answer may take as long as the response timeout allows.
        assert response.status_code == 200
        return
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    # a retry may help a failing backend; none can fix the gateway's own credentials
    retry = "false" if code == "upstream_auth_failed" else None
    assert response.headers.get("x-should-retry") == retry
    record = gateway.record(response.headers["x-request-id"])
    assert (record["status"], record["http_status"], record["error_type"]) == (
        "upstream_error",
        status,
        code,
    )


def test_dead_upstream_is_502_unreachable(gateway: Gateway) -> None:
    for stream in (False, True):
        body = {"model": "dead-model", "messages": QUESTION, "stream": stream}
        response = post(gateway, body, key=gateway.key)
        assert response.status_code == 502
        assert error_of(response)["code"] == "upstream_unreachable"
        record = gateway.record(response.headers["x-request-id"])
        assert (record["status"], record["backend"]) == ("upstream_error", "dead")


def test_upstream_4xx_passes_through_with_its_body_minus_secrets(gateway: Gateway) -> None:
    body = {"model": "test-small", "messages": [{"role": "user", "content": "FAULT-400"}]}
    response = post(gateway, body, key=gateway.key)
    assert response.status_code == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("temperature", "invalid_value")
    assert UPSTREAM_SECRET not in response.text
    record = gateway.record(response.headers["x-request-id"])
    assert record["status"] == "upstream_error" and record["http_status"] == 400
    assert UPSTREAM_SECRET not in json.dumps(record)


def test_upstream_429_stays_retryable(gateway: Gateway, client: openai.OpenAI) -> None:
    body = {"model": "test-small", "messages": [{"role": "user", "content": "FAULT-429"}]}
    response = post(gateway, body, key=gateway.key)
    assert response.status_code == 429
    assert response.headers.get("x-should-retry") != "false"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="test-small", messages=body["messages"])  # type: ignore[arg-type]
