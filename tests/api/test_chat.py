"""Chat completions through the real openai SDK (sync and async, streaming and not)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from tests import spec
from tests.servers import UPSTREAM_SECRET, Gateway, Upstream

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_non_streaming_answer_is_the_backends_and_is_recorded(
    gateway: Gateway, upstream: Upstream, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="test-small", messages=QUESTION, seed=7, temperature=0.2
    )
    completion = raw.parse()
    spec.check("CreateChatCompletionResponse", json.loads(raw.text))
    assert completion.choices[0].message.content == "The capital of France is Paris."
    assert completion.model == "mock-small"
    request_id = raw.headers["x-request-id"]

    seen = upstream.seen(request_id)
    assert seen["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    assert seen["model"] == "mock-small"

    record = gateway.record(request_id)
    assert record["status"] == "ok"
    assert record["http_status"] == 200
    assert record["context"] == "test-context"
    assert record["key_id"].startswith("key_")
    assert (record["requested_model"], record["backend"]) == ("test-small", "mock")
    assert (record["upstream_model"], record["response_model"]) == ("mock-small", "mock-small")
    assert record["stream"] is False
    assert record["request_body"]["seed"] == 7
    assert record["response_body"]["choices"][0]["message"]["content"].endswith("Paris.")
    assert record["total_tokens"] == completion.usage.total_tokens  # type: ignore[union-attr]
    assert record["received_at"] <= record["upstream_started_at"] <= record["ended_at"]
    assert record["gateway_version"]
    assert gateway.key not in json.dumps(record)
    assert UPSTREAM_SECRET not in json.dumps(record)


def test_unread_fields_pass_through_untouched(gateway: Gateway, upstream: Upstream) -> None:
    extras: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 11,
        "metadata": {"ticket": "A-1"},
        "some_future_field": {"nested": [1, 2]},
    }
    response = httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"authorization": f"Bearer {gateway.key}"},
        json={"model": "test-small", "messages": QUESTION, **extras},
    )
    assert response.status_code == 200, response.text
    seen = upstream.seen(response.headers["x-request-id"])
    for name, value in extras.items():
        assert seen["body"][name] == value, name


def test_n_greater_than_one(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="test-small", messages=QUESTION, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_sync(
    gateway: Gateway, upstream: Upstream, client: openai.OpenAI, include_usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = client.chat.completions.with_raw_response.create(
        model="test-small", messages=QUESTION, stream=True, **options
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    for chunk in chunks:
        spec.check("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital of France is Paris."
    usage_chunks = [c for c in chunks if c.usage is not None]
    # The gateway always asks for usage, but gives it only to clients that asked.
    assert len(usage_chunks) == (1 if include_usage else 0)
    assert upstream.seen(request_id)["body"]["stream_options"] == {"include_usage": True}

    record = gateway.record(request_id)
    assert record["status"] == "ok" and record["stream"] is True
    assert record["response_body"]["choices"][0]["message"]["content"] == text
    assert record["response_body"]["choices"][0]["finish_reason"] == "stop"
    assert record["completion_tokens"] == 6
    assert record["first_byte_at"] is not None
    assert record["upstream_started_at"] <= record["first_byte_at"] <= record["ended_at"]


def test_async_client_streaming_and_not(gateway: Gateway) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.v1, api_key=gateway.key, max_retries=0
        ) as aclient:
            whole = await aclient.chat.completions.create(model="test-large", messages=QUESTION)
            stream = await aclient.chat.completions.create(
                model="test-large", messages=QUESTION, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole == streamed == "The capital of France is Paris."


def test_concurrent_requests_each_get_their_own_record(gateway: Gateway) -> None:
    async def one(aclient: openai.AsyncOpenAI, i: int) -> str:
        raw = await aclient.chat.completions.with_raw_response.create(
            model="test-small", messages=[{"role": "user", "content": f"number {i}"}]
        )
        assert raw.parse().choices[0].message.content.endswith(f"number {i}")  # type: ignore[union-attr]
        return raw.headers["x-request-id"]

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=gateway.v1, api_key=gateway.key, max_retries=0
        ) as aclient:
            return await asyncio.gather(*(one(aclient, i) for i in range(40)))

    ids = asyncio.run(main())
    assert len(set(ids)) == 40
    for i, request_id in enumerate(ids):
        assert gateway.record(request_id)["request_body"]["messages"][0]["content"] == (
            f"number {i}"
        )
