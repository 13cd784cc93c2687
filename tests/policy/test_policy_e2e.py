"""Every policy action end to end, through the openai SDK, streaming and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests import spec
from tests.servers import Gateway, Upstream


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "test-small", "messages": [{"role": "user", "content": text}], **extra}


def post(gateway: Gateway, body: dict[str, Any], context: str = "test-context") -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {gateway.keys[context]}"},
    )


def streamed(
    gateway: Gateway,
    body: dict[str, Any],
    context: str = "test-context",
) -> tuple[str, list[dict[str, Any]], httpx.Headers, list[str]]:
    """The joined text, the chunks, the headers and the raw data lines of a stream."""
    lines = []
    with httpx.stream(
        "POST",
        f"{gateway.v1}/chat/completions",
        json={**body, "stream": True},
        headers={"authorization": f"Bearer {gateway.keys[context]}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        headers = response.headers
    chunks = [json.loads(line[6:]) for line in lines if line != "data: [DONE]"]
    for chunk in chunks:
        spec.check("CreateChatCompletionStreamResponse", chunk)
    text = "".join(c["delta"].get("content") or "" for ch in chunks for c in ch["choices"])
    return text, chunks, headers, lines


def decision(gateway: Gateway, request_id: str) -> dict[str, Any]:
    record = gateway.record(request_id)
    assert record["decision_id"] == record["decision"]["id"]
    assert record["policy_revision"] == record["decision"]["policy_revision"]
    decided: dict[str, Any] = record["decision"]
    return decided


def outcome(decided: dict[str, Any], rule: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in decided["outcomes"] if o["rule"] == rule)
    return found


@pytest.fixture
def scoped(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.v1, api_key=gateway.keys["scoped-context"], max_retries=0
    ) as sdk:
        yield sdk


def test_input_block_as_error_never_reaches_the_upstream(
    gateway: Gateway, upstream: Upstream, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**ask("say the forbidden phrase"))
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["rule"]) == ("policy_violation", "block-error")
    assert "refused outright" in error["why"]
    response = caught.value.response
    assert response.headers["x-should-retry"] == "false"
    request_id = response.headers["x-request-id"]
    decided = decision(gateway, request_id)
    assert (decided["verdict"], decided["enforced"]) == ("block", "block")
    assert outcome(decided, "block-error")["evidence"][0]["start"] == 8
    assert request_id not in {e["request_id"] for e in upstream.requests()}
    # the 400 carries its decision and revision, as every answer does
    record = gateway.record(request_id)
    assert response.headers["x-situate-decision"] == record["decision_id"]
    assert record["policy_revision"].startswith(response.headers["x-situate-policy-revision"])
    assert gateway.record(request_id)["status"] == "blocked"


@pytest.mark.parametrize("stream", [False, True])
def test_input_block_as_answer_is_a_content_filter_refusal(gateway: Gateway, stream: bool) -> None:
    body = ask("please refuse me politely")
    if stream:
        text, chunks, headers, lines = streamed(gateway, body)
        assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
        assert lines[-1] == "data: [DONE]"
    else:
        response = post(gateway, body)
        spec.check("CreateChatCompletionResponse", response.json())
        choice = response.json()["choices"][0]
        text, headers = choice["message"]["content"], response.headers
        assert choice["finish_reason"] == "content_filter"
    assert text == "I can only help with test matters."
    record = gateway.record(headers["x-request-id"])
    assert (record["status"], record["error_type"]) == ("blocked", "policy_refusal")
    assert outcome(record["decision"], "block-answer")["enforced"] == "block"


def test_input_redaction_happens_before_the_upstream(gateway: Gateway, upstream: Upstream) -> None:
    response = post(gateway, ask("write to jane.doe@example.com about it"))
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    sent = upstream.seen(request_id)["body"]["messages"][0]["content"]
    assert sent == "write to [email] about it"
    assert "jane.doe" not in response.text
    evidence = outcome(decision(gateway, request_id), "email-in")["evidence"][0]
    assert (evidence["start"], evidence["end"], evidence["label"]) == (9, 29, "email")


def test_flag_allows_and_is_queryable_by_rule(gateway: Gateway) -> None:
    response = post(gateway, ask("please flag me for review"))
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    decided = decision(gateway, request_id)
    assert decided["flagged"] == ["flag-it"] and decided["enforced"] == "flag"
    findings = gateway.admin("/findings", rule="flag-it", context="test-context").json()["data"]
    assert request_id in {f["exchange_id"] for f in findings}


def test_warn_allows_with_a_header(gateway: Gateway) -> None:
    response = post(gateway, ask("warn me about this"))
    assert response.status_code == 200
    assert response.headers["x-situate-warning"] == "warn-it"
    assert response.headers["x-situate-decision"].startswith("dec_")


def test_route_sends_to_another_allowed_model(gateway: Gateway, upstream: Upstream) -> None:
    response = post(gateway, ask("think harder about this"))
    assert response.json()["model"] == "mock-large"
    record = gateway.record(response.headers["x-request-id"])
    assert (record["requested_model"], record["upstream_model"]) == ("test-small", "mock-large")
    assert record["decision"]["routed_to"] == "test-large"


@pytest.mark.parametrize("stream", [False, True])
def test_output_block_as_answer(gateway: Gateway, stream: bool) -> None:
    body = ask("tell me the secret recipe now")
    if stream:
        text, chunks, headers, lines = streamed(gateway, body)
        assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
        assert lines[-1] == "data: [DONE]"
        assert "secret recipe" not in text  # nothing the rule catches ever reached the client
    else:
        response = post(gateway, body)
        choice = response.json()["choices"][0]
        assert choice["message"]["content"] == "That is not something I can share."
        assert choice["finish_reason"] == "content_filter"
        headers = response.headers
    record = gateway.record(headers["x-request-id"])
    assert record["status"] == "blocked"
    assert outcome(record["decision"], "no-secret-recipe")["stage"] == "output"


def test_output_block_as_error_and_mid_stream(gateway: Gateway) -> None:
    response = post(gateway, ask("recite the launch codes"))
    assert response.status_code == 400
    assert response.json()["error"]["rule"] == "no-launch-codes"
    text, chunks, _, _ = streamed(gateway, ask("recite the launch codes"))
    assert "launch codes" not in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("stream", [False, True])
def test_output_redaction_inside_the_answer(gateway: Gateway, stream: bool) -> None:
    body = ask("my number is +1 415 555 0123 ok")
    if stream:
        text, _, headers, lines = streamed(gateway, body)
        # the number must not reach the client in any frame (a random id may contain "555")
        assert not any("555 0123" in line or "5550123" in line for line in lines)
    else:
        response = post(gateway, body)
        text, headers = response.json()["choices"][0]["message"]["content"], response.headers
    assert text.endswith("my number is [phone] ok")
    record = gateway.record(headers["x-request-id"])
    assert outcome(record["decision"], "phone-out")["enforced"] == "redact"
    assert record["status"] == "ok"


@pytest.mark.parametrize("stream", [False, True])
def test_disclosure_on_the_first_answer_only(gateway: Gateway, stream: bool) -> None:
    first = {
        "model": "test-small",
        "messages": [{"role": "user", "content": "do you have sourdough bread today"}],
    }
    later = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "is the rye bread vegan"},
        ],
    }
    for body, disclosed in ((first, True), (later, False)):
        if stream:
            text, _, headers, _ = streamed(gateway, body, "scoped-context")
        else:
            response = post(gateway, body, "scoped-context")
            text = response.json()["choices"][0]["message"]["content"]
            headers = response.headers
        assert text.startswith("[automated assistant]\n\n") is disclosed
        assert (headers.get("x-situate-disclosure") == "applied") is disclosed
        assert gateway.record(headers["x-request-id"])["decision"]["disclosure"] is disclosed


def test_out_of_scope_is_refused_in_the_contexts_words(
    scoped: openai.OpenAI, gateway: Gateway
) -> None:
    raw = scoped.chat.completions.with_raw_response.create(
        model="test-small",
        messages=[{"role": "user", "content": "what will the weather be in Paris tomorrow"}],
    )
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "I can only help with our bakery's bread and opening hours."
    decided = decision(gateway, raw.headers["x-request-id"])
    assert outcome(decided, "scope.topic")["enforced"] == "block"


def test_models_are_the_contexts_own(scoped: openai.OpenAI, client: openai.OpenAI) -> None:
    assert [m.id for m in scoped.models.list()] == ["test-small"]
    assert [m.id for m in client.models.list()] == ["test-small", "test-large", "dead-model"]
    with pytest.raises(openai.NotFoundError) as caught:
        scoped.chat.completions.create(
            model="test-large", messages=[{"role": "user", "content": "sourdough"}]
        )
    assert "Models available: test-small" in str(caught.value)


def test_limits_reject_and_clamp(gateway: Gateway, upstream: Upstream) -> None:
    too_many = post(gateway, ask("hi", n=5))
    assert too_many.status_code == 400
    assert (too_many.json()["error"]["param"], too_many.json()["error"]["code"]) == (
        "n",
        "limit_exceeded",
    )
    long_chat = {
        "model": "test-small",
        "messages": [{"role": "user", "content": f"m{i}"} for i in range(21)],
    }
    assert post(gateway, long_chat).json()["error"]["param"] == "messages"
    clamped = post(gateway, ask("hi", max_tokens=5000))
    assert clamped.status_code == 200
    assert upstream.seen(clamped.headers["x-request-id"])["body"]["max_tokens"] == 500
    unset = post(gateway, ask("hi"))
    assert upstream.seen(unset.headers["x-request-id"])["body"]["max_tokens"] == 500


def test_the_revision_that_decided_is_stored_with_its_text(gateway: Gateway) -> None:
    response = post(gateway, ask("please flag me"))
    record = gateway.record(response.headers["x-request-id"])
    stored = gateway.admin(f"/policies/revisions/{record['policy_revision']}").json()
    assert stored["text"] == (gateway.policies / "test-context.yaml").read_text()
    assert stored["context"] == "test-context"
