"""Legacy completions (``POST /v1/completions``) through the real openai SDK, whole and
streamed, against the mock upstream: the same policy as chat (input rules over the prompts,
redactions in what goes upstream, limits, output rules over the texts on a stream that never
leaks), refusals in the completion shape, and the record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.checks.registry import default_registry
from gateway.errors import InvalidRequest
from gateway.pipeline import completions_shape as shape
from gateway.pipeline.completions import _admit
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy
from tests import spec
from tests.servers import Gateway, Upstream

NUMBER = "+1 415 555 0123"


@pytest.fixture(scope="module")
def sdk(sqlite_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=sqlite_gateway.v1, api_key=sqlite_gateway.key, max_retries=0
    ) as client:
        yield client


def test_a_whole_completion_is_the_backends_and_is_recorded(
    sqlite_gateway: Gateway, upstream: Upstream, sdk: openai.OpenAI
) -> None:
    raw = sdk.completions.with_raw_response.create(
        model="test-small", prompt="What is the capital of France?", max_tokens=1000, seed=3
    )
    spec.check("CreateCompletionResponse", json.loads(raw.text))
    completion = raw.parse()
    assert completion.choices[0].text == "The capital of France is Paris."
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-situate-decision"]
    seen = upstream.seen(request_id)
    assert seen["path"].endswith("/v1/completions")
    assert seen["body"]["max_tokens"] == 500  # clamped to the context's limit, as chat's
    assert seen["body"]["seed"] == 3  # unread fields pass through

    record = sqlite_gateway.record(request_id)
    assert (record["endpoint"], record["status"], record["stream"]) == ("completions", "ok", False)
    assert record["request_body"]["prompt"] == "What is the capital of France?"
    assert record["response_body"]["object"] == "text_completion"
    assert record["total_tokens"] == completion.usage.total_tokens  # type: ignore[union-attr]
    outcomes = record["decision"]["outcomes"]
    (clamp,) = [o for o in outcomes if o["rule"] == "limits.max_output_tokens"]
    assert clamp["enforced"] == "clamp"


def test_a_list_of_prompts_and_n(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(
        model="test-small", prompt=["What is the capital of France?", "hello"], n=2
    )
    texts = [c.text for c in sorted(completion.choices, key=lambda c: c.index)]
    assert len(texts) == 4
    assert texts[0] == texts[1] == "The capital of France is Paris."
    assert texts[2].endswith("You said: hello")


def test_a_stream_is_assembled_for_the_record(
    sqlite_gateway: Gateway, sdk: openai.OpenAI
) -> None:
    stream = sdk.completions.with_raw_response.create(
        model="test-small", prompt="What is the capital of France?", stream=True
    )
    chunks = list(stream.parse())
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == (
        "The capital of France is Paris."
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    record = sqlite_gateway.record(stream.headers["x-request-id"])
    assert (record["status"], record["stream"]) == ("ok", True)
    body = record["response_body"]
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "The capital of France is Paris."
    assert record["total_tokens"] and "usage" not in chunks[-1].model_dump(exclude_none=True)


def test_an_output_redaction_on_a_stream_never_leaks(
    sqlite_gateway: Gateway, sdk: openai.OpenAI
) -> None:
    stream = sdk.completions.with_raw_response.create(
        model="test-small", prompt=f"call me on {NUMBER} today", stream=True
    )
    sent = "".join(c.choices[0].text for c in stream.parse() if c.choices)
    assert "[phone]" in sent and "0123" not in sent and "555" not in sent
    assert sent.endswith("today")
    record = sqlite_gateway.record(stream.headers["x-request-id"])
    (outcome,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "phone-out"]
    assert outcome["enforced"] == "redact" and outcome["evidence"][0]["message"] == 0
    assert NUMBER in record["response_body"]["choices"][0]["text"]  # the backend's, as given


def test_an_input_redaction_is_put_back_into_the_prompt(
    upstream: Upstream, sdk: openai.OpenAI
) -> None:
    raw = sdk.completions.with_raw_response.create(
        model="test-small", prompt=["plain", "write to ann@example.org"]
    )
    prompt = upstream.seen(raw.headers["x-request-id"])["body"]["prompt"]
    assert prompt[0] == "plain" and "ann@example.org" not in prompt[1]
    assert prompt[1].startswith("write to ")


def test_an_input_block_errs_or_answers_in_the_completion_shape(
    sqlite_gateway: Gateway, sdk: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as blocked:
        sdk.completions.create(model="test-small", prompt="the forbidden phrase")
    assert blocked.value.code == "policy_violation"
    record = sqlite_gateway.record(blocked.value.response.headers["x-request-id"])
    assert (record["endpoint"], record["status"]) == ("completions", "blocked")

    refused = sdk.completions.create(model="test-small", prompt="refuse me politely", n=2)
    assert [c.text for c in refused.choices] == ["I can only help with test matters."] * 2
    assert {c.finish_reason for c in refused.choices} == {"content_filter"}
    streamed = sdk.completions.create(model="test-small", prompt="refuse me politely", stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == (
        "I can only help with test matters."
    )


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "prompt", "missing_required_parameter"),
        ({"prompt": []}, "prompt", "invalid_value"),
        ({"prompt": "hi", "logprobs": True}, "logprobs", "invalid_type"),
        ({"prompt": "hi", "n": 3, "best_of": 2}, "best_of", "invalid_value"),
        ({"prompt": "hi", "echo": "yes"}, "echo", "invalid_type"),
        ({"prompt": [1, 2, 3]}, "prompt", "unsupported_input"),  # the rules read user text
    ],
)
def test_bad_requests_are_named(
    sqlite_gateway: Gateway, body: dict[str, object], param: str, code: str
) -> None:
    response = httpx.post(
        f"{sqlite_gateway.v1}/completions",
        headers={"authorization": f"Bearer {sqlite_gateway.key}"},
        json={"model": "test-small", **body},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)


def test_the_suffix_is_read_by_the_input_rules(upstream: Upstream, sdk: openai.OpenAI) -> None:
    """The suffix is text the backend reads: the input rules read it as they read the prompt,
    and its redaction goes upstream in its place."""
    raw = sdk.completions.with_raw_response.create(
        model="test-small", prompt="hi", suffix="then mail ann@example.org"
    )
    sent = upstream.seen(raw.headers["x-request-id"])["body"]
    assert sent["prompt"] == "hi"
    assert sent["suffix"].startswith("then mail ") and "ann@example.org" not in sent["suffix"]
    with pytest.raises(openai.BadRequestError) as blocked:
        sdk.completions.create(model="test-small", prompt="hi", suffix="the forbidden phrase")
    assert blocked.value.code == "policy_violation"


def test_a_limit_names_the_prompt(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exceeded:
        sdk.completions.create(model="test-small", prompt=["hi"] * 21)  # max_messages: 20
    assert (exceeded.value.code, exceeded.value.param) == ("limit_exceeded", "prompt")


_TOKENS_ONLY = """\
context: tokens-test
purpose: Token-array prompts under an input-token limit.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [m]
limits:
  max_input_tokens: 100
"""


@pytest.mark.parametrize(("prompt", "tokens"), [([1] * 500, 500), ([[1] * 60, [2] * 60], 120)])
def test_token_array_prompts_are_counted_exactly(prompt: list[Any], tokens: int) -> None:
    """No input rule reads text here, so token arrays pass, but not past max_input_tokens:
    counted exactly, the error naming the prompt."""
    policy = compile_policy(Path("tokens-test.yaml"), _TOKENS_ONLY, default_registry())
    body = {"model": "m", "prompt": prompt}
    view = shape.request_view(body, n=1)
    with pytest.raises(InvalidRequest) as exceeded:
        _admit(policy, view, Decision("req", "tokens-test"), prompt, readable=False)
    assert (exceeded.value.param, exceeded.value.code) == ("prompt", "limit_exceeded")
    assert f"({tokens} > 100)" in exceeded.value.message
    small = [[1, 2], [3, 4]]
    admitted = _admit(
        policy, shape.request_view({**body, "prompt": small}, n=1),
        Decision("req", "tokens-test"), small, readable=False,
    )
    assert admitted.refusal is None
    assert shape.prompt_count(small) == 2 and shape.prompt_count([1, 2]) == 1
