"""The mock upstream's legacy completions, structured output and logprobs, driven with the real
`openai` SDK against the mock process; bodies and chunks validated against OpenAI's spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests import spec
from tests.servers import Upstream, scripted_upstream

SCRIPT: dict[str, Any] = {
    "token_delay": 0,
    "rules": [
        {"contains": "capital of France", "reply": "The capital of France is Paris."},
        {"contains": "FAULT-ERRFRAME", "fault": {"error_frame_after": 2}},
    ],
}


class Step(BaseModel):
    explanation: str
    output: str


class Solution(BaseModel):
    steps: list[Step] = Field(min_length=2)
    final_answer: int = Field(ge=10, le=20)
    confidence: float | None


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with scripted_upstream(tmp_path_factory.mktemp("mock-completions"), SCRIPT) as up:
        yield up


def _chunks(upstream: Upstream, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{upstream.url}{path}", json=body, timeout=5) as response:
        return [json.loads(x[6:]) for x in response.iter_lines() if x.startswith("data: {")]


def test_completions_answer_each_prompt_n_times_whole_and_streamed(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    prompts = ["What is the capital of France?", "hello there"]
    body = {"model": "mock-small", "prompt": prompts, "n": 2}
    raw = httpx.post(f"{upstream.url}/v1/completions", json=body, timeout=5).json()
    spec.check("CreateCompletionResponse", raw)
    answer = client.completions.create(model="mock-small", prompt=prompts, n=2)
    texts = [c.text for c in sorted(answer.choices, key=lambda c: c.index)]
    assert texts[:2] == ["The capital of France is Paris."] * 2
    assert texts[2].endswith("You said: hello there") and texts[2] == texts[3]
    assert answer.usage is not None and answer.usage.completion_tokens == 2 * (6 + 11)
    chunks = _chunks(upstream, "/v1/completions", {**body, "stream": True})
    for chunk in chunks:  # the spec gives chunks the whole answer's shape; null finish: errata
        choices = [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]
        spec.check("CreateCompletionResponse", {**chunk, "choices": choices})
    streamed = client.completions.create(model="mock-small", prompt=prompts, n=2, stream=True)
    joined: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    for chunk in streamed:
        for choice in chunk.choices:
            joined[choice.index] = joined.get(choice.index, "") + choice.text
            finishes[choice.index] = choice.finish_reason or finishes.get(choice.index)
    assert [joined[i] for i in range(4)] == texts
    assert set(finishes.values()) == {"stop"}


def test_completions_logprobs_max_tokens_and_echo(client: openai.OpenAI) -> None:
    said = "What is the capital of France?"
    answer = client.completions.create(
        model="mock-small", prompt=said, logprobs=3, max_tokens=3, echo=True
    )
    choice = answer.choices[0]
    assert choice.text == said + "The capital of"
    assert choice.finish_reason == "length"
    assert choice.logprobs is not None and choice.logprobs.tokens == ["The ", "capital ", "of"]
    assert choice.logprobs.text_offset == [len(said), len(said) + 4, len(said) + 12]
    assert all(len(top) == 3 for top in choice.logprobs.top_logprobs or [])
    again = client.completions.create(
        model="mock-small", prompt=said, logprobs=3, max_tokens=3, echo=True
    )
    assert again.choices[0].logprobs == choice.logprobs  # deterministic


def test_chat_parse_with_a_pydantic_model_gives_a_valid_instance(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    messages: Any = [{"role": "user", "content": "solve 8x + 7 = -23"}]
    parsed = client.chat.completions.parse(
        model="mock-small", messages=messages, response_format=Solution
    )
    solution = parsed.choices[0].message.parsed
    assert isinstance(solution, Solution) and len(solution.steps) >= 2
    assert 10 <= solution.final_answer <= 20
    loose = client.chat.completions.create(
        model="mock-small", messages=messages, response_format={"type": "json_object"}
    )
    content = loose.choices[0].message.content or ""
    assert "solve 8x + 7 = -23" in json.loads(content)["reply"]
    chunks = _chunks(
        upstream,
        "/v1/chat/completions",
        {
            "model": "mock-small",
            "messages": messages,
            "stream": True,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": Solution.model_json_schema()},
            },
        },
    )
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    jsonschema.validate(json.loads(text), Solution.model_json_schema())


def test_responses_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(
        model="mock-small", input="solve 8x + 7 = -23", text_format=Solution
    )
    assert isinstance(parsed.output_parsed, Solution)
    assert 10 <= parsed.output_parsed.final_answer <= 20


def test_chat_logprobs_whole_and_streamed(upstream: Upstream, client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(
        model="mock-small", messages=messages, logprobs=True, top_logprobs=2
    )
    spec.check("CreateChatCompletionResponse", answer.model_dump(exclude_unset=True))
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert "".join(t.token for t in logprobs.content) == "The capital of France is Paris."
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in logprobs.content)
    assert all(t.top_logprobs[0].token == t.token for t in logprobs.content)
    body = {"model": "mock-small", "messages": messages, "logprobs": True, "stream": True}
    chunks = _chunks(upstream, "/v1/chat/completions", body)
    for chunk in chunks:
        spec.check("CreateChatCompletionStreamResponse", chunk)
    streamed = [
        entry
        for chunk in chunks
        for entry in ((chunk["choices"][0].get("logprobs") or {}).get("content") or [])
    ]
    assert [e["logprob"] for e in streamed] == [t.logprob for t in logprobs.content]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="mock-small", messages=messages, top_logprobs=2)
    assert refused.value.param == "top_logprobs"


def test_a_streamed_completion_ends_with_the_scripted_error_frame(upstream: Upstream) -> None:
    body = {"model": "mock-small", "prompt": "FAULT-ERRFRAME now", "stream": True}
    with httpx.stream("POST", f"{upstream.url}/v1/completions", json=body, timeout=5) as r:
        lines = [x for x in r.iter_lines() if x.startswith("data: ")]
    assert len(lines) == 3 and json.loads(lines[-1][6:])["error"]["code"] == "mock_error"
