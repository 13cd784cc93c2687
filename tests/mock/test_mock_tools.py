"""The mock upstream's tool calls, driven with the real `openai` SDK against the mock process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
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
        {
            "contains": "PARALLEL",
            "tool_calls": [
                {"name": "lookup", "arguments": {"q": "a"}},
                {"name": "undeclared", "arguments": '{"x": 1}'},
            ],
        },
    ],
}
TRANSFER = {
    "type": "function",
    "function": {
        "name": "transfer",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "minimum": 1, "maximum": 100},
                "recipient": {"type": "string", "enum": ["bob", "carol"]},
                "memo": {"type": "string"},
            },
            "required": ["amount", "recipient"],
            "additionalProperties": False,
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "minLength": 2}},
            "required": ["city"],
        },
    },
}
TOOLS: list[Any] = [WEATHER, TRANSFER]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with scripted_upstream(tmp_path_factory.mktemp("mock-tools"), SCRIPT) as up:
        yield up


def _raw(upstream: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{upstream.url}/v1/chat/completions", json=body, timeout=5)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    spec.check("CreateChatCompletionResponse", payload)
    return payload


def test_the_tool_named_in_the_user_text_is_called_with_the_arguments_written_after_it(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    said = 'please call transfer {"amount": 250, "recipient": "eve"} now'
    body = {"model": "mock-small", "messages": [{"role": "user", "content": said}], "tools": TOOLS}
    _raw(upstream, body)
    answer = client.chat.completions.create(**body)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["transfer"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"amount": 250, "recipient": "eve"}  # type: ignore[union-attr]
    again = client.chat.completions.create(**body)
    assert again.choices[0].message.tool_calls == calls  # deterministic, id included


def test_without_written_arguments_the_first_tool_gets_a_valid_minimal_instance(
    client: openai.OpenAI,
) -> None:
    messages: Any = [{"role": "user", "content": "What should I do?"}]
    answer = client.chat.completions.create(model="mock-small", messages=messages, tools=TOOLS)
    calls = answer.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["weather"]  # type: ignore[union-attr]
    arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    forced = client.chat.completions.create(
        model="mock-small",
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "transfer"}},
    )
    forced_calls = forced.choices[0].message.tool_calls or []
    assert forced_calls[0].function.name == "transfer"  # type: ignore[union-attr]
    jsonschema.validate(
        json.loads(forced_calls[0].function.arguments),  # type: ignore[union-attr]
        TRANSFER["function"]["parameters"],
    )


def test_tool_choice_none_answers_text_and_a_tool_result_is_answered_with_its_content(
    client: openai.OpenAI,
) -> None:
    messages: Any = [{"role": "user", "content": "weather in Paris?"}]
    text = client.chat.completions.create(
        model="mock-small", messages=messages, tools=TOOLS, tool_choice="none"
    )
    assert text.choices[0].message.tool_calls is None
    assert "weather in Paris?" in (text.choices[0].message.content or "")
    first = client.chat.completions.create(model="mock-small", messages=messages, tools=TOOLS)
    call = (first.choices[0].message.tool_calls or [])[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"},
    ]
    final = client.chat.completions.create(model="mock-small", messages=messages, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool said: Sunny, 21 degrees"


def test_a_streamed_call_sends_its_name_first_and_its_arguments_in_pieces(
    upstream: Upstream, client: openai.OpenAI
) -> None:
    said = 'transfer {"amount": 40, "recipient": "bob", "memo": "rent for march"}'
    body: dict[str, Any] = {
        "model": "mock-small",
        "messages": [{"role": "user", "content": said}],
        "tools": TOOLS,
        "stream": True,
    }
    with httpx.stream("POST", f"{upstream.url}/v1/chat/completions", json=body) as response:
        chunks = [
            json.loads(line[6:])
            for line in response.iter_lines()
            if line.startswith("data: {")
        ]
    for chunk in chunks:
        spec.check("CreateChatCompletionStreamResponse", chunk)
    deltas = [c["choices"][0]["delta"].get("tool_calls") for c in chunks]
    pieces = [d[0]["function"]["arguments"] for d in deltas if d]
    assert deltas[1][0]["function"]["name"] == "transfer" and pieces[0] == ""  # type: ignore[index]
    assert len(pieces) > 3 and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    del body["stream"]
    with client.chat.completions.stream(**body) as events:
        final = events.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert calls[0].function.name == "transfer"
    assert json.loads(calls[0].function.arguments) == json.loads(said[len("transfer ") :])
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_script_rule_gives_parallel_calls_whole_and_streamed(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "PARALLEL please"}]
    whole = client.chat.completions.create(model="mock-small", messages=messages)
    calls = whole.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("lookup", '{"q": "a"}'),
        ("undeclared", '{"x": 1}'),
    ]
    assert len({c.id for c in calls}) == 2
    with client.chat.completions.stream(model="mock-small", messages=messages) as events:
        final = events.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in streamed] == [
        (c.id, c.function.arguments) for c in calls  # type: ignore[union-attr]
    ]


def test_legacy_functions_are_answered_with_a_function_call(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="mock-small",
        messages=[{"role": "user", "content": "run weather"}],
        functions=[WEATHER["function"]],
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "weather"
    jsonschema.validate(
        json.loads(choice.message.function_call.arguments), WEATHER["function"]["parameters"]
    )


def test_a_script_with_tool_calls_loads(tmp_path: Path) -> None:
    from gateway.mock import load_script

    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCRIPT))
    assert load_script(path).rules[0].tool_calls[1].arguments == '{"x": 1}'
