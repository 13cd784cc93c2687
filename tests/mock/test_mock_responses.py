"""The mock upstream's Responses API, driven with the real `openai` SDK against the mock process;
bodies and every stream event validated against OpenAI's published spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests import spec
from tests.servers import Upstream, scripted_upstream

SCRIPT: dict[str, Any] = {
    "token_delay": 0,
    "rules": [
        {"contains": "FAULT-500", "fault": {"status": 500}},
        {"contains": "FAULT-DROP", "fault": {"drop_after": 2}},
        {"contains": "capital of France", "reply": "The capital of France is Paris."},
        {"contains": "SPLIT", "reply": "abcdefghij", "chunk_chars": 3},
    ],
}
LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look a word up.",
    "parameters": {
        "type": "object",
        "properties": {"word": {"type": "string"}, "limit": {"type": "integer", "minimum": 3}},
        "required": ["word", "limit"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with scripted_upstream(tmp_path_factory.mktemp("mock-responses"), SCRIPT) as up:
        yield up


def _events(upstream: Upstream, body: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{upstream.url}/v1/responses"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=5) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    events = [json.loads(line[6:]) for line in lines]
    for event in events:
        spec.check("ResponseStreamEvent", event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_a_text_response_has_the_scripted_reply_and_the_spec_shape(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    said = "What is the capital of France?"
    body = {"model": "mock-small", "input": said, "instructions": "Be brief."}
    raw = httpx.post(f"{upstream.url}/v1/responses", json=body, timeout=5).json()
    spec.check("Response", raw)
    answer = client.responses.create(model="mock-small", input="What is the capital of France?")
    assert answer.output_text == "The capital of France is Paris."
    assert answer.status == "completed" and answer.id.startswith("resp_")
    assert answer.usage is not None and answer.usage.output_tokens == 6
    assert answer.usage.total_tokens == answer.usage.input_tokens + 6
    short = client.responses.create(model="mock-small", input="tell me more", max_output_tokens=2)
    assert short.status == "incomplete" and short.incomplete_details is not None
    assert short.incomplete_details.reason == "max_output_tokens"
    assert short.output_text == "Hello! This"


def test_a_tool_round_trip_through_previous_response_id(client: openai.OpenAI) -> None:
    said = "lookup the word 'gateway'"
    first = client.responses.create(model="mock-small", input=said, tools=[LOOKUP])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["lookup"]
    arguments = json.loads(calls[0].arguments)
    jsonschema.validate(arguments, LOOKUP["parameters"])
    second = client.responses.create(
        model="mock-small",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "a door"}],
        tools=[LOOKUP],  # type: ignore[list-item]
    )
    assert second.output_text == "The tool said: a door"
    assert second.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="mock-small", input="hi", previous_response_id="resp_nope")
    assert refused.value.code == "previous_response_not_found"
    assert refused.value.param == "previous_response_id"


def test_a_streamed_text_response_accumulates_to_the_whole_one(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    body = {"model": "mock-small", "input": "What is the capital of France?"}
    events = _events(upstream, body)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 6
    assert {(d["output_index"], d["content_index"]) for d in deltas} == {(0, 0)}
    assert "".join(d["delta"] for d in deltas) == "The capital of France is Paris."
    assert events[-1]["response"]["usage"]["output_tokens"] == 6
    with client.responses.stream(model="mock-small", input=body["input"]) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "The capital of France is Paris."


def test_a_stream_keeps_the_scripts_pieces_logprobs_and_ends_incomplete_when_cut(
    upstream: Upstream,
) -> None:
    asked = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}
    events = _events(upstream, {"model": "mock-small", "input": "SPLIT", **asked})
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == ["abc", "def", "ghi", "j"]
    assert [[lp["token"] for lp in d["logprobs"]] for d in deltas] == [[d["delta"]] for d in deltas]
    assert all(len(d["logprobs"][0]["top_logprobs"]) == 2 for d in deltas)
    done = events[-1]["response"]["output"][0]["content"][0]
    assert [lp["token"] for lp in done["logprobs"]] == ["abc", "def", "ghi", "j"]
    cut = _events(upstream, {"model": "mock-small", "input": "hello", "max_output_tokens": 2})
    assert cut[-1]["type"] == "response.incomplete"
    assert cut[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut[-1]["response"]["usage"]["output_tokens"] == 2


def test_a_streamed_call_sends_its_arguments_in_pieces(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    said = 'lookup {"word": "situate", "limit": 5}'
    events = _events(upstream, {"model": "mock-small", "input": said, "tools": [LOOKUP]})
    pieces = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(pieces) > 2 and json.loads("".join(pieces)) == {"word": "situate", "limit": 5}
    tools: Any = [LOOKUP]
    with client.responses.stream(model="mock-small", input=said, tools=tools) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments)["limit"] == 5


def test_a_stored_response_is_read_listed_and_deleted(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    made = client.responses.create(model="mock-small", input=[{"role": "user", "content": "hello"}])
    assert client.responses.retrieve(made.id).output_text == made.output_text
    items = client.responses.input_items.list(made.id)
    assert [item.type for item in items.data] == ["message"]
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    unstored = client.responses.create(model="mock-small", input="hello", store=False)
    assert httpx.get(f"{upstream.url}/v1/responses/{unstored.id}").status_code == 404


def test_script_faults_apply_to_responses(upstream: Upstream, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="mock-small", input="FAULT-500")
    with pytest.raises(httpx.TransportError):  # the SDK does not wrap a stream's own errors
        _drain(client, "FAULT-DROP now please")
    assert upstream.requests()[-1]["outcome"] == "fault"


def _drain(client: openai.OpenAI, said: str) -> None:
    with client.responses.stream(model="mock-small", input=said) as stream:
        for _ in stream:
            pass
