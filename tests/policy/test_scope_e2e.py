"""The semantic topic scope through a running gateway, driven by the openai SDK: the bakery
context (tests/policies/scoped-context.yaml) names no classifier, so it is semantic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.servers import Gateway, Upstream

REFUSAL = "I can only help with our bakery's bread and opening hours."


@pytest.fixture
def scoped(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.v1, api_key=gateway.keys["scoped-context"], max_retries=0
    ) as sdk:
        yield sdk


def scope_outcome(gateway: Gateway, request_id: str) -> dict[str, Any] | None:
    decision = gateway.record(request_id)["decision"]
    found = [o for o in decision["outcomes"] if o["rule"] == "scope.topic"]
    return found[0] if found else None


def ask(sdk: openai.OpenAI, text: str, stream: bool) -> tuple[str, str | None, str]:
    """The answer's text, its finish reason and the request id."""
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        raw = sdk.chat.completions.with_raw_response.create(model="test-small", messages=messages)
        choice = raw.parse().choices[0]
        return choice.message.content or "", choice.finish_reason, raw.headers["x-request-id"]
    with sdk.chat.completions.with_streaming_response.create(
        model="test-small", messages=messages, stream=True
    ) as response:
        parts, finish = [], None
        for chunk in response.parse():
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        return "".join(parts), finish, response.headers["x-request-id"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_question_in_other_words_and_another_language_reaches_the_model(
    scoped: openai.OpenAI, gateway: Gateway, upstream: Upstream, stream: bool
) -> None:
    # No word of it is in the topics: the lexical scope refused this.
    text, finish, request_id = ask(scoped, "Habt ihr heute noch frisches Sauerteigbrot?", stream)
    assert finish != "content_filter" and REFUSAL not in text
    upstream.seen(request_id)
    assert scope_outcome(gateway, request_id) is None


@pytest.mark.parametrize("stream", [False, True])
def test_an_off_topic_request_is_refused_with_the_nearest_topic_recorded(
    scoped: openai.OpenAI, gateway: Gateway, upstream: Upstream, stream: bool
) -> None:
    text, finish, request_id = ask(scoped, "who won the football match last night", stream)
    assert (finish, text.endswith(REFUSAL)) == ("content_filter", True)
    assert request_id not in {e["request_id"] for e in upstream.requests()}
    outcome = scope_outcome(gateway, request_id)
    assert outcome is not None and outcome["enforced"] == "block"
    evidence = outcome["evidence"][0]
    assert evidence["label"] in ("nearest:bread", "nearest:opening-hours")
    assert 0 <= evidence["score"] < 0.3


def test_a_greeting_is_not_judged(scoped: openai.OpenAI, gateway: Gateway) -> None:
    _, finish, request_id = ask(scoped, "hello there", stream=False)
    assert finish != "content_filter"
    assert scope_outcome(gateway, request_id) is None
