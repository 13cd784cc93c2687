"""The gateway the Responses stream tests call (the scoped gateway, tests/scoped.py): one
backend translated (chat completions) and one native (the mock's own ``/v1/responses``), and
a context with output rules and a tool scope."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from tests import spec
from tests.servers import UPSTREAM_SECRET, Gateway

CONTEXT = "stream-context"
PHONE = "+1 415 555 0123"
MODELS = ("t-chat", "t-native")
BARE = "t-chat-bare"  # translated, on a backend not asked for usage (``stream_usage: false``)
POLICY = {
    "context": CONTEXT,
    "purpose": "Responses streams through the output rules and the tool scope.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": [*MODELS, BARE]},
    "rules": [
        {"id": "no-secret-recipe", "stage": "output", "why": "The recipe stays secret.",
         "detect": {"keywords": ["secret recipe"]}, "action": "block", "block_as": "answer",
         "message": "That is not something I can share."},
        {"id": "no-launch-codes", "stage": "output", "why": "Launch codes end it with an error.",
         "detect": {"keywords": ["launch codes"]}, "action": "block"},
        {"id": "phone-out", "stage": "output", "why": "Phone numbers are not shown.",
         "detect": {"pii": ["phone"]}, "action": "redact"},
    ],
    # short, so text goes out as it comes (a client that leaves has had some of it)
    "stream": {"hold_back": 24},
    "tools": {
        "allow": [
            "lookup",
            {"name": "transfer", "arguments": {
                "type": "object", "properties": {"amount": {"type": "number", "maximum": 100}},
                "required": ["amount"]}},
        ],
        "on_call": "block",
        "refusal": "That tool is not available here.",
    },
}
FLAGGING = "flag-stream-context"
#: calls out of scope pass, flagged: streamed as they come
FLAG_POLICY = {**POLICY, "context": FLAGGING, "rules": [],
               "tools": {**POLICY["tools"], "on_call": "flag"}}  # type: ignore[dict-item]
#: the replies the stream tests add to the upstream's script: one that spells the backend's key
#: in pieces, and a call out of scope then [DONE] with no finish_reason (llama-cpp-python's
#: cut-short end)
SPLIT_KEY = {"contains": "SPLIT-KEY", "reply": f"The key is {UPSTREAM_SECRET} ok.",
             "chunk_chars": 5}
CALL_CUT = {"contains": "CALL-CUT", "tool_calls": [{"name": "wipe_disk", "arguments": {}}],
            "fault": {"done_after": 2}}
SCRIPT_RULES = [SPLIT_KEY, CALL_CUT]
TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "description": "Look a word up.", "strict": False,
     "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}},
    {"type": "function", "name": "transfer", "description": "Move money.", "strict": False,
     "parameters": {"type": "object", "properties": {"amount": {"type": "number"},
                                                     "recipient": {"type": "string"}}}},
]


@dataclass
class StreamGateway:
    gateway: Gateway
    sdk: openai.OpenAI
    flagging: openai.OpenAI  # on the context whose calls out of scope are flagged
    seen: list[str]  # the request ids of the responses the SDK read, in order

    def last_record(self) -> dict[str, Any]:
        return self.gateway.record(self.seen[-1])


@contextmanager
def stream_gateway(gateway: Gateway) -> Iterator[StreamGateway]:
    """The SDK on the scoped gateway's (tests/scoped.py) two stream contexts."""
    served = dataclasses.replace(gateway, key=gateway.keys[CONTEXT])
    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        if "x-request-id" in response.headers:
            seen.append(response.headers["x-request-id"])

    http = httpx.Client(event_hooks={"response": [keep]})
    with (
        openai.OpenAI(base_url=served.v1, api_key=served.key, max_retries=0,
                      http_client=http) as sdk,
        openai.OpenAI(base_url=served.v1, api_key=gateway.keys[FLAGGING], max_retries=0,
                      http_client=http) as flagging,
    ):
        yield StreamGateway(served, sdk, flagging, seen)


def events_of(stream: Any) -> list[dict[str, Any]]:
    """Every event the SDK read, as the JSON the gateway sent, each checked against the spec,
    numbered from 0 without a gap."""
    events = [event.to_dict(warnings=False) for event in stream]
    for event in events:
        spec.check_stream_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def output_indexes_line_up(events: list[dict[str, Any]]) -> None:
    """The items the events add are numbered 0, 1, … and are the final Response's output."""
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == list(range(len(added)))
    final = events[-1]["response"]["output"]
    assert [item["id"] for item in final] == [e["item"]["id"] for e in added]
    for event in events:
        if "output_index" in event:
            assert event["output_index"] < len(added)


def dumps(value: Any) -> str:
    return json.dumps(value)
