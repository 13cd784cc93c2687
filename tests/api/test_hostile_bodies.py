"""Bodies a client can send to break the gateway: each is a clear 4xx in OpenAI's error shape,
never a 500, and each is recorded saying why (issue 12's client-triggerable 500s)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.servers import Gateway, Upstream

HELLO = [{"role": "user", "content": "hello"}]


def nested(depth: int) -> str:
    """A JSON value nested ``depth`` arrays deep."""
    return "[" * depth + "1" + "]" * depth


def post(gateway: Gateway, body: bytes | str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        content=body.encode() if isinstance(body, str) else body,
        headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"},
        timeout=30,
    )


def assert_refused(
    gateway: Gateway, response: httpx.Response, code: str, param: str | None = None
) -> dict[str, Any]:
    """A 400 in OpenAI's shape that tells the SDKs not to retry, recorded as a rejection."""
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert response.headers["x-should-retry"] == "false"
    record = gateway.record(response.headers["x-request-id"])
    assert (record["status"], record["http_status"]) == ("rejected", 400)
    assert record["error_type"] == code
    assert record["error_message"] == error["message"]
    return error


@pytest.mark.parametrize(
    "body",
    [
        # past the C parser's recursion limit: a RecursionError (a 500) today
        '{"model": "test-small", "messages": [{"role": "user", "content": "hi"}], '
        f'"metadata": {{"deep": {nested(1000)}}}}}',
        # deep inside a content part: parses, then the record's copy recursed (a 500) today
        '{"model": "test-small", "messages": [{"role": "user", "content": '
        f'[{{"type": "text", "text": "hi", "extra": {nested(700)}}}]}}]}}',
        # just past the limit (100 levels, the outer object included)
        '{"model": "test-small", "messages": [{"role": "user", "content": "hi"}], '
        f'"tools": {nested(100)}}}',
    ],
    ids=["1000-deep", "700-deep-in-a-part", "101-deep"],
)
def test_deep_json_is_refused_at_the_door(gateway: Gateway, body: str) -> None:
    error = assert_refused(gateway, post(gateway, body), "json_too_deep")
    assert "100 levels" in error["message"]


def test_nesting_within_the_limit_and_brackets_in_text_pass(
    gateway: Gateway, upstream: Upstream
) -> None:
    text = "[{" * 300 + " what do these brackets mean?"
    body = {
        "model": "test-small",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        "metadata": {"ok": json.loads(nested(90))},
    }
    response = post(gateway, json.dumps(body))
    assert response.status_code == 200, response.text
    seen = upstream.seen(response.headers["x-request-id"])
    assert seen["body"]["metadata"] == body["metadata"]


def test_invalid_utf8_is_a_clear_400(gateway: Gateway) -> None:
    body = b'{"model": "test-small", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    error = assert_refused(gateway, post(gateway, body), "invalid_utf8")
    assert "UTF-8" in error["message"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-2.5e999"])
def test_numbers_json_cannot_carry_are_refused(gateway: Gateway, number: str) -> None:
    body = f'{{"model": "test-small", "messages": {json.dumps(HELLO)}, "seed": {number}}}'
    error = assert_refused(gateway, post(gateway, body), "invalid_number")
    assert number.lstrip("-")[:3] in error["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", "8"),  # judged as 1 against max_n 4 today, and sent upstream as "8"
        ("n", True),
        ("n", 2.0),
        ("max_tokens", "900"),  # escaped the clamp to 500 today
        ("max_completion_tokens", [1]),
        ("stream", "true"),
        ("stream", 1),
        ("temperature", "0.5"),
        ("top_p", {"p": 1}),
        ("model", ["test-small"]),
    ],
)
def test_a_field_the_gateway_reads_must_have_its_type(
    gateway: Gateway, upstream: Upstream, field: str, value: Any
) -> None:
    body = {"model": "test-small", "messages": HELLO, field: value}
    response = post(gateway, json.dumps(body))
    error = assert_refused(gateway, response, "invalid_type", field)
    assert error["message"].startswith(f"Invalid value for '{field}'")
    request_id = response.headers["x-request-id"]
    assert all(seen["request_id"] != request_id for seen in upstream.requests())


@pytest.mark.parametrize(
    ("field", "value"), [("temperature", 3), ("top_p", -0.1), ("n", 0), ("top_logprobs", 21)]
)
def test_numbers_out_of_openais_range_are_refused(
    gateway: Gateway, field: str, value: float
) -> None:
    body = {"model": "test-small", "messages": HELLO, field: value}
    assert_refused(gateway, post(gateway, json.dumps(body)), "invalid_value", field)


def test_an_integer_is_a_number_for_temperature(gateway: Gateway) -> None:
    body = {"model": "test-small", "messages": HELLO, "temperature": 1, "top_p": 1}
    assert post(gateway, json.dumps(body)).status_code == 200


def test_a_missing_field_is_named(gateway: Gateway) -> None:
    response = post(gateway, json.dumps({"model": "test-small"}))
    error = assert_refused(gateway, response, "missing_required_parameter", "messages")
    assert error["message"] == "Missing required parameter: 'messages'."
