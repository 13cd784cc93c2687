"""The first run streams: a newcomer sees the demo's answer arrive a few words at a time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.checks.registry import default_registry
from gateway.config import default_config
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.store import policy_store
from tests.servers import cli, free_port, process

CLEAN_ENV: dict[str, str | None] = {"GATEWAY_DATABASE_URL": None, "GATEWAY_CONFIG": None}
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Timed:
    first_content: float
    total: float
    chunks: list[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    """The embedded default, exactly as the README's first command runs it."""
    folder = tmp_path_factory.mktemp("demo")
    port = free_port()
    with process(
        ["serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        folder / "serve.log",
        cwd=folder,
        env=CLEAN_ENV,
    ):
        made = cli(["keys", "create", "--context", "demo", "--name", "t"], CLEAN_ENV, cwd=folder)
        assert made.returncode == 0, made.stderr
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=made.stdout.strip(), max_retries=0
        ) as client:
            yield client


def _timed_stream(client: openai.OpenAI, text: str) -> Timed:
    started = time.perf_counter()
    first: float | None = None
    chunks = []
    for chunk in client.chat.completions.create(
        model="demo-small", messages=[{"role": "user", "content": text}], stream=True
    ):
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content:
            first = first if first is not None else time.perf_counter() - started
            chunks.append(content)
    assert first is not None
    return Timed(first, time.perf_counter() - started, chunks)


def test_a_streamed_demo_answer_arrives_in_pieces_long_before_its_end(
    demo: openai.OpenAI,
) -> None:
    cold = _timed_stream(demo, "Hello")
    timed = _timed_stream(demo, "Hello")
    whole = demo.chat.completions.create(
        model="demo-small", messages=[{"role": "user", "content": "Hello"}]
    )
    print(  # the measurement the issue asks for, shown with pytest -s
        f"demo stream: first content after {timed.first_content:.3f}s of {timed.total:.3f}s,"
        f" {len(timed.chunks)} content chunks, {len(''.join(timed.chunks))} characters;"
        f" the first after start (with the SDK's own first-call imports):"
        f" {cold.first_content:.3f}s of {cold.total:.3f}s"
    )
    assert "".join(timed.chunks) == whole.choices[0].message.content
    assert len(timed.chunks) >= 20
    assert timed.first_content < timed.total / 4


def test_the_demo_still_redacts_inside_a_stream(demo: openai.OpenAI) -> None:
    """The shorter hold-back still covers the demo's PII: an address is never let out."""
    timed = _timed_stream(demo, "Please write to ana.lopez@example.org or call +49 30 1234567")
    text = "".join(timed.chunks)
    assert "ana.lopez@example.org" not in text
    assert "1234567" not in text
    assert "[email]" in text
    assert len(timed.chunks) > 1


def test_the_demo_policy_holds_back_what_its_redactions_need(tmp_path: Path) -> None:
    config = default_config().model_copy(update={"policies_dir": tmp_path})  # an empty folder
    (served,) = [p for p in policy_store(config).refresh() if p.context == "demo"]
    assert served.hold_back == served.policy.stream.hold_back == 64
    assert served.path == REPO / "policies" / "demo.yaml"  # the shipped example, in a checkout


def test_without_the_setting_the_hold_back_is_the_longest_span(tmp_path: Path) -> None:
    text = (REPO / "policies" / "demo.yaml").read_text()
    assert "stream:" in text
    path = tmp_path / "demo.yaml"
    path.write_text(text.split("stream:")[0])
    assert load_policy(path, default_registry()).hold_back == 300  # pii's longest match


def test_a_hold_back_of_nothing_is_refused_at_its_line(tmp_path: Path) -> None:
    text = (REPO / "policies" / "demo.yaml").read_text().replace("hold_back: 64", "hold_back: 0")
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path, default_registry())
    line = text.splitlines().index("  hold_back: 0") + 1
    assert f"demo.yaml:{line}:" in str(refused.value)
    assert "hold_back" in str(refused.value)


WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def test_the_demo_speaks_tools_on_chat_and_on_the_responses_api(demo: openai.OpenAI) -> None:
    """A newcomer's first agent loop, with no API key: the demo calls the offered tool with the
    arguments written in the question, then answers with what the tool said."""
    said = 'What is the weather? get_weather {"city": "Lisbon"}'
    function = {k: WEATHER[k] for k in ("name", "parameters")}
    chat_tool: Any = {"type": "function", "function": function}
    messages: Any = [{"role": "user", "content": said}]
    first = demo.chat.completions.create(model="demo-small", messages=messages, tools=[chat_tool])
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    final = demo.chat.completions.create(model="demo-small", messages=messages, tools=[chat_tool])
    assert final.choices[0].message.content == "The tool said: Sunny"
    asked = demo.responses.create(model="demo-small", input=said, tools=[WEATHER])
    (item,) = [i for i in asked.output if i.type == "function_call"]
    assert json.loads(item.arguments) == {"city": "Lisbon"}
    answered = demo.responses.create(
        model="demo-small",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "Sunny"}],
        tools=[WEATHER],
    )
    assert answered.output_text == "The tool said: Sunny"
