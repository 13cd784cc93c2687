"""Tool-call scope on chat completion streams: with ``on_call: block`` a call's pieces are held
until it is whole, then released as one delta (renumbered) or dropped, so a call out of scope
never reaches the client; with ``flag`` nothing is held. Read as raw events (what went on the
wire) and through the SDK's ``chat.completions.stream`` (which accumulates the calls)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from gateway.checks.registry import default_registry
from gateway.detectors.pool import DetectorPool, PoolSettings
from gateway.pipeline.output import OutputStage
from gateway.pipeline.stream import Ending
from gateway.pipeline.stream_chat import ChatFrames
from gateway.pipeline.tools_stream import ToolStream
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy
from gateway.records.status import Status
from gateway.upstream.sse import Event
from tests.tools.served import TOOLS, Served, labels, outcome, user


def _events(served: Served, context: str, text: str) -> tuple[list[dict[str, Any]], str]:
    """A stream's chunks as the client got them, and the exchange id."""
    body = {"model": "test-small", "messages": user(text), "tools": TOOLS, "stream": True}
    headers = {"authorization": f"Bearer {served.gateway.keys[context]}"}
    with httpx.stream(
        "POST", f"{served.gateway.v1}/chat/completions", json=body, headers=headers
    ) as response:
        assert response.status_code == 200
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]], response.headers["x-request-id"]


def _deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["delta"] for chunk in chunks for c in chunk["choices"]]


def _calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for d in _deltas(chunks) for call in d.get("tool_calls") or ()]


def _finish(chunks: list[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]


def test_a_call_in_scope_is_released_whole_in_one_delta(served: Served) -> None:
    chunks, request_id = _events(
        served, "tools-remove", 'call transfer {"amount": 40, "recipient": "bob"}'
    )
    (call,) = _calls(chunks)
    assert (call["index"], call["type"], call["function"]["name"]) == (0, "function", "transfer")
    assert call["id"]
    assert json.loads(call["function"]["arguments"]) == {"amount": 40, "recipient": "bob"}
    assert _finish(chunks) == ["tool_calls"]
    record = served.gateway.record(request_id)
    assert record["status"] == "ok"
    # the backend sent the arguments in pieces; the record assembled them as it sent them
    recorded = record["response_body"]["choices"][0]["message"]["tool_calls"]
    assert recorded[0]["function"]["arguments"] == call["function"]["arguments"]


def test_a_blocked_call_never_reaches_the_client(served: Served) -> None:
    chunks, request_id = _events(
        served, "tools-remove", 'call transfer {"amount": 5000, "recipient": "eve"}'
    )
    assert _calls(chunks) == []
    wire = json.dumps(chunks)
    assert "transfer" not in wire and "5000" not in wire and "eve" not in wire
    text = "".join(d.get("content") or "" for d in _deltas(chunks))
    assert text == "That tool is not available here."
    assert _finish(chunks) == ["content_filter"]
    record = served.gateway.record(request_id)
    assert record["status"] == "blocked" and "tools.call" in record["error_message"]
    kept = record["response_body"]["choices"][0]["message"]["tool_calls"]
    assert json.loads(kept[0]["function"]["arguments"])["amount"] == 5000  # the backend's
    assert labels(outcome(record, "tools.call")) == [(0, "bad_arguments:transfer")]


def test_parallel_calls_with_one_blocked_are_renumbered(served: Served) -> None:
    chunks, request_id = _events(served, "tools-remove", "PARALLEL")
    calls = _calls(chunks)
    assert [(c["index"], c["function"]["name"]) for c in calls] == [
        (0, "lookup_balance"),
        (1, "lookup_card"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"account": "main"},
        {"last4": "4605"},
    ]
    assert len({c["id"] for c in calls}) == 2
    assert _finish(chunks) == ["tool_calls"]
    assert labels(outcome(served.gateway.record(request_id), "tools.call")) == [
        (0, "bad_arguments:transfer")
    ]


def test_the_sdk_accumulates_released_calls_cleanly(served: Served) -> None:
    with (
        served.sdk("tools-remove") as sdk,
        sdk.chat.completions.stream(
            model="test-small", messages=user("PARALLEL"), tools=TOOLS
        ) as stream,
    ):
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    message = final.choices[0].message
    assert [c.function.name for c in message.tool_calls or ()] == ["lookup_balance", "lookup_card"]
    assert [json.loads(c.function.arguments) for c in message.tool_calls or ()] == [
        {"account": "main"},
        {"last4": "4605"},
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_flagged_calls_stream_as_the_backend_sent_them(served: Served) -> None:
    chunks, request_id = _events(
        served, "tools-flag-stream", 'call transfer {"amount": 900, "recipient": "bob"}'
    )
    calls = _calls(chunks)
    assert len(calls) > 1  # nothing held: the arguments came in pieces, as the backend sent them
    arguments = "".join(c["function"].get("arguments") or "" for c in calls)
    assert json.loads(arguments) == {"amount": 900, "recipient": "bob"}
    record = served.gateway.record(request_id)
    assert record["status"] == "ok"
    called = outcome(record, "tools.call")
    assert called is not None and (called["action"], called["enforced"]) == ("flag", "flag")
    assert labels(called) == [(0, "bad_arguments:transfer")]


def test_legacy_function_calls_are_held_and_judged_too(served: Served) -> None:
    headers = {"authorization": f"Bearer {served.gateway.keys['tools-remove']}"}
    functions = [t["function"] for t in TOOLS]
    texts = {
        "allowed": 'call transfer {"amount": 10, "recipient": "bob"}',
        "blocked": 'call transfer {"amount": 10, "recipient": "mallory"}',
    }
    seen: dict[str, list[dict[str, Any]]] = {}
    for name, text in texts.items():
        body = {"model": "test-small", "messages": user(text), "functions": functions}
        url = f"{served.gateway.v1}/chat/completions"
        with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
            lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        seen[name] = [json.loads(line) for line in lines[:-1]]
    (call,) = [d["function_call"] for d in _deltas(seen["allowed"]) if d.get("function_call")]
    assert call["name"] == "transfer"
    assert json.loads(call["arguments"]) == {"amount": 10, "recipient": "bob"}
    assert _finish(seen["allowed"]) == ["function_call"]
    assert not any(d.get("function_call") for d in _deltas(seen["blocked"]))
    assert "mallory" not in json.dumps(seen["blocked"])
    assert _finish(seen["blocked"]) == ["content_filter"]


def test_calls_are_scoped_beside_output_rules_that_hold_text(served: Served) -> None:
    allowed, _ = _events(served, "tools-guarded", 'call lookup_card {"last4": "4605"}')
    assert [c["function"]["name"] for c in _calls(allowed)] == ["lookup_card"]
    assert _finish(allowed) == ["tool_calls"]
    blocked, request_id = _events(served, "tools-guarded", "UNDECLARED")
    assert _calls(blocked) == [] and "delete_account" not in json.dumps(blocked)
    text = "".join(d.get("content") or "" for d in _deltas(blocked))
    assert text == "I can't use that tool here."  # the default refusal, through the output rules
    assert _finish(blocked) == ["content_filter"]
    assert served.gateway.record(request_id)["status"] == "blocked"


# Chunk sequences the mock never sends (interleaved call pieces; a call then text an output
# rule refuses, with no finish_reason): the gateway's own ChatFrames fed them as a backend
# would, with the real compiled policy and detector pool.

_GUARDED = """\
context: frames-test
purpose: Chat stream frames over unusual chunk sequences.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [m]
tools:
  allow:
    - "lookup_*"
    - name: transfer
      arguments:
        type: object
        properties:
          amount: {type: number, maximum: 100}
        required: [amount]
rules:
  - id: no-secret
    stage: output
    why: No secrets.
    detect: {keywords: [SECRET]}
    action: block
    block_as: answer
    message: I cannot say that.
"""


class _Needs:
    def __init__(self, detectors: DetectorPool) -> None:
        self.detectors = detectors


def _framed(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Ending]:
    """What the client is sent for ``chunks`` then [DONE], and how the stream ended."""
    policy = compile_policy(Path("frames-test.yaml"), _GUARDED, default_registry())
    decision = Decision("req", "frames-test")
    ending, pool = Ending(), DetectorPool(PoolSettings(workers=1))
    frames = ChatFrames(
        _Needs(pool), ending, strip_usage=False,  # type: ignore[arg-type]
        output=OutputStage(policy, decision, disclose=False),
        tools=ToolStream(policy.tools, decision),
    )

    async def go() -> bytes:
        sent = b""
        for chunk in [*map(json.dumps, chunks), "[DONE]"]:
            if ending.ended:
                break
            sent += await frames.frame(Event(raw=f"data: {chunk}\n\n".encode(), data=chunk))
        return sent

    try:
        sent = asyncio.run(go()).decode()
    finally:
        pool.close()
    lines = [line[6:] for line in sent.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"], ending


def _piece(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_interleaved_call_pieces_are_judged_whole() -> None:
    chunks = [
        _piece({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                                "function": {"name": "transfer", "arguments": '{"amount'}}]}),
        _piece({"tool_calls": [{"index": 1, "id": "b", "type": "function",
                                "function": {"name": "lookup_card", "arguments": "{}"}}]}),
        _piece({"tool_calls": [{"index": 0, "function": {"arguments": '": 50}'}}]}),
        _piece({"tool_calls": [{"index": 2, "id": "c", "type": "function",
                                "function": {"name": "transfer", "arguments": '{"amount'}}]}),
        _piece({"tool_calls": [{"index": 2, "function": {"arguments": '": 5000}'}}]}),
        _piece({}, "tool_calls"),
    ]
    sent, _ = _framed(chunks)
    assert "5000" not in json.dumps(sent)
    calls = [call for d in _deltas(sent) for call in d.get("tool_calls") or ()]
    said = [(c["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls]
    assert said == [(0, "transfer", '{"amount": 50}'), (1, "lookup_card", "{}")]


def test_a_refused_choice_releases_no_held_call() -> None:
    """A call, then text an output rule refuses, then [DONE] with no finish_reason: the refusal
    ends the choice and the held call never follows it."""
    chunks = [
        _piece({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "lookup_balance", "arguments": "{}"}}]}),
        _piece({"content": "the SECRET is 42"}),
    ]
    sent, ending = _framed(chunks)
    assert not [d for d in _deltas(sent) if d.get("tool_calls")]
    assert "I cannot say that." in json.dumps(sent)
    assert ending.outcome is not None and ending.outcome[0] == Status.BLOCKED
