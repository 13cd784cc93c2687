"""The OpenAI Agents SDK (``openai-agents``) running an agent with two function tools through
the gateway, on the Responses API (its default; translated, and passed to a backend that
speaks it) and on chat completions: the tool in the context's scope runs and its result comes
back; the one outside is never invoked, and the record says why. Whole and streamed
(``Runner.run_streamed``: a call's argument deltas are held until the call is judged)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import agents
import httpx
import pytest
from openai import AsyncOpenAI

from tests.clients.conftest import ROGUE, Captured, labels
from tests.servers import Gateway

MODELS = ("responses-translated", "responses-native", "chat")
#: a kind ending so runs streamed (Runner.run_streamed: the SDK asks for stream=True)
STREAMED = "+stream"
BOTH = MODELS + tuple(kind + STREAMED for kind in MODELS)
REFUSAL = "I can't use that tool here."  # the policy's tools.refusal


def _model(kind: str, client: AsyncOpenAI) -> Any:
    kind = kind.removesuffix(STREAMED)
    if kind == "chat":
        return agents.OpenAIChatCompletionsModel(model="test-small", openai_client=client)
    name = "native-small" if kind == "responses-native" else "test-small"
    return agents.OpenAIResponsesModel(model=name, openai_client=client)


class Toolbox:
    """Two function tools that note every call their Python functions get."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def tools(self, second: str) -> list[Any]:
        def get_weather(city: str) -> str:
            """The weather in a city."""
            self.calls.append(("get_weather", {"city": city}))
            return f"Sunny and 21 degrees in {city or 'town'}"

        def transfer(amount: int, recipient: str) -> str:
            """Move money to a friend."""
            self.calls.append(("transfer", {"amount": amount, "recipient": recipient}))
            return f"Sent {amount} to {recipient}"

        def delete_account(reason: str) -> str:
            """Close the user's account for good."""
            self.calls.append(("delete_account", {"reason": reason}))
            return "Account deleted"

        made: dict[str, Callable[..., str]] = {
            "transfer": transfer,
            "delete_account": delete_account,
        }
        return [agents.function_tool(get_weather), agents.function_tool(made[second])]


def _records(gateway: Gateway, captured: Captured) -> list[dict[str, Any]]:
    assert captured.ids, "the client got no answer from the gateway"
    return [gateway.record(request_id) for request_id in captured.ids]


def _run(gateway: Gateway, captured: Captured, kind: str, tools: list[Any], text: str) -> Any:
    """One agent run through the gateway: the SDK's default client pointed at it, tracing off."""

    async def run() -> Any:
        agents.set_tracing_disabled(True)
        http = httpx.AsyncClient(event_hooks={"response": [captured.async_hook]})
        client = AsyncOpenAI(
            base_url=gateway.v1, api_key=gateway.key, http_client=http, max_retries=0
        )
        agents.set_default_openai_client(client, use_for_tracing=False)
        agent = agents.Agent(
            name="assistant",
            instructions="Use the tools to answer.",
            tools=tools,
            model=_model(kind, client),
        )
        try:
            if not kind.endswith(STREAMED):
                return await agents.Runner.run(agent, text, max_turns=4)
            streamed = agents.Runner.run_streamed(agent, text, max_turns=4)
            async for _ in streamed.stream_events():
                pass
            return streamed
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.fixture
def run(agent_gateway: Gateway, captured: Captured) -> Callable[..., Any]:
    return lambda kind, tools, text: _run(agent_gateway, captured, kind, tools, text)


@pytest.fixture
def records(agent_gateway: Gateway, captured: Captured) -> Callable[[], list[dict[str, Any]]]:
    return lambda: _records(agent_gateway, captured)


Run = Callable[..., Any]
Records = Callable[[], list[dict[str, Any]]]


def _answer(run: Run, kind: str, tools: list[Any], text: str) -> str:
    """The agent's final text; the gateway's refusal where the SDK stops on it. Chat answers a
    blocked call with the refusal as ``message.refusal`` (and content), which the SDK raises as
    the model's refusal; the Responses paths answer with it as output text."""
    if not kind.startswith("chat"):
        return str(run(kind, tools, text).final_output)
    with pytest.raises(agents.exceptions.ModelRefusalError) as refused:
        run(kind, tools, text)
    return str(refused.value)


@pytest.mark.parametrize("kind", BOTH)
def test_an_in_scope_call_runs_and_its_result_comes_back(
    run: Run, records: Records, kind: str
) -> None:
    box = Toolbox()
    text = "please transfer " + json.dumps({"amount": 40, "recipient": "bob"})
    result = run(kind, box.tools("transfer"), text)
    assert box.calls == [("transfer", {"amount": 40, "recipient": "bob"})]
    assert "Sent 40 to bob" in str(result.final_output)
    made = records()
    assert len(made) == 2  # the call, then the answer to its result
    assert all(r["status"] == "ok" for r in made), [r["status"] for r in made]
    assert not any(labels(r, "tools.call") for r in made)


@pytest.mark.parametrize("kind", MODELS)
def test_an_out_of_scope_tool_is_never_declared_to_the_model(
    run: Run, records: Records, kind: str
) -> None:
    box = Toolbox()
    result = run(kind, box.tools("delete_account"), "please delete_account now")
    # the model never saw delete_account: it called the tool it had, which ran
    assert [name for name, _ in box.calls] == ["get_weather"]
    assert "Sunny" in str(result.final_output)
    assert labels(records()[0], "tools.declared") == ["out_of_scope:delete_account"]


@pytest.mark.parametrize("kind", MODELS)
def test_an_out_of_scope_call_is_blocked_and_its_function_never_runs(
    run: Run, records: Records, kind: str
) -> None:
    box = Toolbox()
    assert REFUSAL in _answer(run, kind, box.tools("delete_account"), f"{ROGUE}: close it")
    assert box.calls == []
    (record,) = records()
    assert labels(record, "tools.call") == ["out_of_scope:delete_account"]


@pytest.mark.parametrize("kind", BOTH)
def test_a_call_that_breaks_the_argument_constraints_is_blocked(
    run: Run, records: Records, kind: str
) -> None:
    box = Toolbox()
    text = "transfer " + json.dumps({"amount": 250, "recipient": "eve"})
    assert REFUSAL in _answer(run, kind, box.tools("transfer"), text)
    assert box.calls == []
    (record,) = records()
    assert labels(record, "tools.call") == ["bad_arguments:transfer"]
