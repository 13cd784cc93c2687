"""langchain-openai's ``bind_tools`` and ``with_structured_output`` (json_schema and
function-calling), and the openai SDK's ``chat.completions.parse`` and ``responses.parse``,
through the gateway with tool scope on: what they get back is what the policy allows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import langchain_core.tools as langchain_tools
import langchain_openai
import openai
import pytest
from pydantic import BaseModel, Field

from tests.clients.conftest import Captured, labels
from tests.servers import Gateway


class Person(BaseModel):
    """Someone named in a text."""

    name: str = Field(description="the person's name")
    age: int = Field(description="their age in years")


@pytest.fixture
def http(captured: Captured) -> Iterator[httpx.Client]:
    with httpx.Client(event_hooks={"response": [captured.hook]}) as client:
        yield client


def _chat(gateway: Gateway, http: httpx.Client, **options: Any) -> Any:
    return langchain_openai.ChatOpenAI(
        model="test-small",
        base_url=gateway.v1,
        api_key=gateway.key,
        http_client=http,
        max_retries=0,
        **options,
    )


def _tools() -> list[Any]:
    @langchain_tools.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    @langchain_tools.tool
    def transfer(amount: int, recipient: str) -> str:
        """Move money to a friend."""
        return f"Sent {amount} to {recipient}"

    return [get_weather, transfer]


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_bind_tools_gets_the_allowed_call_and_never_the_one_breaking_its_constraints(
    agent_gateway: Gateway, http: httpx.Client, captured: Captured, responses_api: bool
) -> None:
    model = _chat(agent_gateway, http, use_responses_api=responses_api).bind_tools(_tools())
    allowed = model.invoke("transfer " + json.dumps({"amount": 40, "recipient": "bob"}))
    assert [(c["name"], c["args"]) for c in allowed.tool_calls] == [
        ("transfer", {"amount": 40, "recipient": "bob"})
    ]
    blocked = model.invoke("transfer " + json.dumps({"amount": 250, "recipient": "eve"}))
    assert blocked.tool_calls == []
    assert "I can't use that tool here." in str(blocked.content)
    first, second = (agent_gateway.record(i) for i in captured.ids)
    assert labels(first, "tools.call") == []
    assert labels(second, "tools.call") == ["bad_arguments:transfer"]


@pytest.mark.parametrize("responses_api", [False, True], ids=["chat", "responses"])
def test_bind_tools_streamed_gets_a_call_only_once_it_is_judged(
    agent_gateway: Gateway, http: httpx.Client, captured: Captured, responses_api: bool
) -> None:
    model = _chat(agent_gateway, http, use_responses_api=responses_api).bind_tools(_tools())
    chunks = list(model.stream("transfer " + json.dumps({"amount": 40, "recipient": "alice"})))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [
        ("transfer", {"amount": 40, "recipient": "alice"})
    ]
    blocked = list(model.stream("transfer " + json.dumps({"amount": 500, "recipient": "bob"})))
    assert not any(c.tool_call_chunks for c in blocked)
    assert "I can't use that tool here." in "".join(str(c.text) for c in blocked)
    (_, second) = (agent_gateway.record(i) for i in captured.ids)
    assert labels(second, "tools.call") == ["bad_arguments:transfer"]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_with_structured_output_returns_the_pydantic_model(
    agent_gateway: Gateway, http: httpx.Client, captured: Captured, method: str
) -> None:
    structured = _chat(agent_gateway, http).with_structured_output(Person, method=method)
    person = structured.invoke("Ada Lovelace was 36.")
    assert isinstance(person, Person)
    (record,) = (agent_gateway.record(i) for i in captured.ids)
    assert record["status"] == "ok"
    sent = record["request_body"]
    if method == "json_schema":
        assert sent["response_format"]["json_schema"]["name"] == "Person"
    else:  # a tool named after the model, in the context's scope
        assert [t["function"]["name"] for t in sent["tools"]] == ["Person"]
        assert labels(record, "tools.declared") == []


@pytest.fixture
def sdk(agent_gateway: Gateway, http: httpx.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=agent_gateway.v1, api_key=agent_gateway.key, http_client=http, max_retries=0
    )


def test_chat_completions_parse_validates_the_answer_into_the_model(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.parse(
        model="test-small",
        messages=[{"role": "user", "content": "Ada Lovelace was 36."}],
        response_format=Person,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Person)
    assert Person.model_validate_json(completion.choices[0].message.content or "") == parsed


@pytest.mark.parametrize("model", ["test-small", "native-small"], ids=["translated", "native"])
def test_responses_parse_validates_the_answer_into_the_model(
    sdk: openai.OpenAI, model: str
) -> None:
    response = sdk.responses.parse(model=model, input="Ada Lovelace was 36.", text_format=Person)
    assert isinstance(response.output_parsed, Person)
    assert Person.model_validate_json(response.output_text) == response.output_parsed
