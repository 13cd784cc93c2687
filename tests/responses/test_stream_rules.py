"""The policy over a Responses stream's events for event sequences the mock backend never sends
(parallel calls whose pieces interleave, a text delta no ``content_part.added`` announced, a
custom tool's input streamed, more of a call after it was dropped): the gateway's own
``ChatEvents`` and ``Governed`` fed those events as a backend would send them, with the real
compiled policy and detector pool (no gateway process: the wire is what these classes return)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.checks.registry import default_registry
from gateway.detectors.pool import DetectorPool, PoolSettings
from gateway.errors import InvalidRequest
from gateway.pipeline.output import OutputStage
from gateway.pipeline.responses.events import ChatEvents
from gateway.pipeline.responses.stream import ResponsesFrames
from gateway.pipeline.responses.stream_rules import Ended, Governed
from gateway.pipeline.stream import Ending
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy
from gateway.records.status import Status
from gateway.upstream.sse import Event

POLICY = """\
context: rules-test
purpose: Responses stream rules over unusual event sequences.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [m]
stream:
  hold_back: 8
rules:
  - id: phone-out
    stage: output
    why: Phone numbers are not shown.
    detect: {pii: [phone]}
    action: redact
tools:
  allow:
    - lookup
    - name: transfer
      arguments:
        type: object
        properties:
          amount: {type: number, maximum: 100}
        required: [amount]
  refusal: That tool is not available here.
"""


class _Needs:
    """What ``Governed`` asks of the gateway's services: the detector pool only."""

    def __init__(self, detectors: DetectorPool) -> None:
        self.detectors = detectors


@pytest.fixture(scope="module")
def needs() -> Iterator[_Needs]:
    pool = DetectorPool(PoolSettings(workers=1))
    yield _Needs(pool)
    pool.close()


def _governed(needs: _Needs) -> Governed:
    policy = compile_policy(Path("rules-test.yaml"), POLICY, default_registry())
    decision = Decision("req", "rules-test")
    output = OutputStage(policy, decision, disclose=False)
    return Governed(needs, output, policy.tools, heavy=False)  # type: ignore[arg-type]


def _run(governed: Governed, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            for event in events:
                out += await governed.process(event)
        except Ended as ended:
            out += ended.events
        return out

    return asyncio.run(go())


def _chunk(calls: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    delta = {"tool_calls": calls} if calls else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_interleaved_parallel_calls_are_judged_whole(needs: _Needs) -> None:
    """Call 0's arguments arrive in two pieces with call 1 between them: call 0 is judged on its
    whole arguments (over the limit: dropped, nothing of it sent), call 1 passes."""
    chat = ChatEvents({"id": "resp_1", "model": "m"})
    chunks = [
        _chunk([{"index": 0, "id": "a",
                 "function": {"name": "transfer", "arguments": '{"amount'}}]),
        _chunk([{"index": 1, "id": "b", "function": {"name": "lookup", "arguments": "{}"}}]),
        _chunk([{"index": 0, "function": {"arguments": '": 5000}'}}]),
        _chunk([], "tool_calls"),
    ]
    events = [e for c in chunks for e in chat.chunk(c)] + chat.done()
    governed = _governed(needs)
    out = _run(governed, events)
    assert "5000" not in json.dumps(out) and "transfer" not in json.dumps(out)
    calls = [e["item"] for e in out if e["type"] == "response.output_item.added"
             and e["item"]["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["lookup"]
    of_call = [e["output_index"] for e in out if e.get("item_id") == calls[0]["id"]]
    assert of_call == [0] * len(of_call) and of_call  # at the client's first place
    assert [(v.name, v.allowed) for _, v in governed.verdicts] == [
        ("transfer", False), ("lookup", True)
    ]


def test_a_delta_no_part_announced_still_goes_through_the_rules(needs: _Needs) -> None:
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_text.delta", **where, "delta": "call 415-555-"},
        {"type": "response.output_text.delta", **where, "delta": "0132 now"},
        {"type": "response.output_text.done", **where, "text": "call 415-555-0132 now"},
    ]
    out = _run(_governed(needs), events)
    sent = json.dumps(out)
    assert "555" not in sent and "0132" not in sent
    text = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta")
    assert text == "call [phone] now"


def test_a_custom_tool_call_is_held_and_judged(needs: _Needs) -> None:
    """A custom tool's input is what its call says: held, judged against the tool's schema
    (free text is not the object transfer takes), dropped; later events of it dropped too."""
    item = {"id": "ctc_1", "type": "custom_tool_call", "call_id": "c1", "name": "transfer",
            "input": ""}
    done = {**item, "input": "send 5000 to eve"}
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0,
         "delta": "send 5000 to eve"},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0,
         "delta": " and more"},
    ]
    governed = _governed(needs)
    out = _run(governed, events)
    assert out == []
    assert [(v.name, v.allowed) for _, v in governed.verdicts] == [("transfer", False)]
    assert governed.blocked_calls == 1


def test_an_upstream_event_without_data_is_malformed(needs: _Needs) -> None:
    """Only the gateway's own frames pass without data: the backend's whole JSON (or any
    data-less event of its) ends the stream as malformed, unsent; its comments say nothing."""
    policy = compile_policy(Path("rules-test.yaml"), POLICY, default_registry())
    decision = Decision("req", "rules-test")
    ending = Ending()
    frames = ResponsesFrames(
        needs, ending, shell={"id": "resp_1", "model": "m"},  # type: ignore[arg-type]
        output=OutputStage(policy, decision, disclose=False), tools=policy.tools,
        decision=decision, heavy=False, translate=True,
    )
    whole = b'{"object": "chat.completion", "choices": [{"message": {"content": "415-555-0132"}}]}'

    async def go() -> tuple[bytes, bytes]:
        comment = await frames.frame(Event(raw=b": keep-alive\n\n", data=None))
        return comment, await frames.frame(Event(raw=whole + b"\n\n", data=None))

    comment, sent = asyncio.run(go())
    assert comment == b""
    assert b"555" not in sent and b"upstream_malformed_chunk" in sent
    assert ending.outcome is not None and ending.outcome[0] == Status.UPSTREAM_ERROR
    own = frames.error(InvalidRequest("stop", code="test"))
    assert asyncio.run(frames.frame(Event(raw=own, data=None))) == own
