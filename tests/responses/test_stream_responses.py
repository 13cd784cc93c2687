"""Responses API streams through the real openai SDK (``responses.stream`` and
``responses.create(stream=True)``), on a translated backend (chat completions) and a native
one (the mock's ``/v1/responses``): every event valid by the spec, the output rules over the
text deltas, the tool scope over function calls, the terminal event and the record of each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types.responses import Response

from tests.responses.stream_gateway import (
    BARE,
    MODELS,
    PHONE,
    TOOLS,
    StreamGateway,
    events_of,
    output_indexes_line_up,
    stream_gateway,
    streamed_text,
)
from tests.scoped import Scoped
from tests.servers import UPSTREAM_SECRET


@pytest.fixture(scope="module")
def served(scoped_gateway: Scoped) -> Iterator[StreamGateway]:
    """The tests' upstream script, and a reply that spells the backend's key in pieces."""
    with stream_gateway(scoped_gateway.gateway) as gateway:
        yield gateway


def _streamed(
    served: StreamGateway, model: str, said: str, **more: Any
) -> tuple[list[dict[str, Any]], Response]:
    """``responses.stream``: the events as sent, and the SDK's final Response."""
    with served.sdk.responses.stream(model=model, input=said, **more) as stream:
        events = events_of(stream)
        return events, stream.get_final_response()


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_a_stream_is_the_whole_answer_and_is_recorded(served: StreamGateway, model: str) -> None:
    sdk = served.sdk
    whole = sdk.responses.create(model=model, input="capital of France please")
    with sdk.responses.stream(model=model, input="capital of France please") as stream:
        events = events_of(stream)
        final = stream.get_final_response()
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert streamed_text(events) == final.output_text == whole.output_text
    assert "Paris" in final.output_text
    output_indexes_line_up(events)
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == final.output_text

    record = served.last_record()
    assert (record["status"], record["stream"], record["endpoint"]) == ("ok", True, "responses")
    assert record["response_id"] == final.id == record["response_body"]["id"]
    assert record["response_body"]["output"][0]["content"][0]["text"] == final.output_text
    assert final.usage is not None
    assert record["prompt_tokens"] == final.usage.input_tokens
    assert record["completion_tokens"] == final.usage.output_tokens
    assert record["response_model"] == "mock-small"
    assert UPSTREAM_SECRET not in json.dumps(record)


def test_create_stream_true_gives_the_same_events(served: StreamGateway, model: str) -> None:
    stream = served.sdk.responses.create(model=model, input="say something", stream=True)
    events = events_of(stream)
    assert events[-1]["type"] == "response.completed"
    text = streamed_text(events)
    assert text.endswith("You said: say something")
    (message,) = events[-1]["response"]["output"]
    assert message["content"][0]["text"] == text


def test_a_phone_number_split_across_deltas_never_goes_out(
    served: StreamGateway, model: str
) -> None:
    events, final = _streamed(served, model, f"call me on {PHONE} today")
    sent = json.dumps(events)
    assert "555" not in sent and "0123" not in sent
    assert len([e for e in events if e["type"] == "response.output_text.delta"]) > 3
    assert "[phone]" in streamed_text(events)
    assert streamed_text(events) == final.output_text
    assert final.output_text.endswith("call me on [phone] today")
    record = served.last_record()
    assert record["status"] == "ok"
    (outcome,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "phone-out"]
    assert outcome["enforced"] == "redact"
    # the record keeps the backend's answer; the decision says what changed
    assert PHONE in record["response_body"]["output"][0]["content"][0]["text"]


def test_a_key_split_across_deltas_never_reaches_client_or_record(
    served: StreamGateway, model: str
) -> None:
    stream = served.sdk.responses.create(model=model, input="SPLIT-KEY please", stream=True)
    events = events_of(stream)
    assert UPSTREAM_SECRET not in json.dumps(events)
    assert streamed_text(events) == "The key is [redacted] ok."
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == streamed_text(events)
    record = served.last_record()
    assert record["status"] == "ok"
    assert UPSTREAM_SECRET not in json.dumps(record)


def test_a_block_as_answer_ends_with_the_refusal_incomplete(
    served: StreamGateway, model: str
) -> None:
    stream = served.sdk.responses.create(
        model=model, input="tell me the secret recipe now", stream=True
    )
    events = events_of(stream)
    assert "secret recipe" not in json.dumps(events)
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert streamed_text(events).endswith("That is not something I can share.")
    (message,) = last["response"]["output"]
    assert message["content"][0]["text"] == streamed_text(events)
    output_indexes_line_up(events)
    record = served.last_record()
    assert (record["status"], record["error_type"]) == ("blocked", "policy_violation")
    assert "no-secret-recipe" in record["error_message"]


def test_a_block_as_error_ends_with_response_failed(served: StreamGateway, model: str) -> None:
    stream = served.sdk.responses.create(
        model=model, input="read me the launch codes", stream=True
    )
    events = events_of(stream)
    assert "launch codes" not in streamed_text(events)
    error, failed = events[-2:]
    assert (error["type"], error["code"]) == ("error", "policy_violation")
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"]["code"] == "invalid_prompt"
    record = served.last_record()
    assert (record["status"], record["error_type"]) == ("blocked", "policy_violation")
    (outcome,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "no-launch-codes"]
    assert outcome["enforced"] == "block"


def test_the_backends_own_filter_ends_incomplete(served: StreamGateway, model: str) -> None:
    stream = served.sdk.responses.create(model=model, input="UPSTREAM-FILTER it", stream=True)
    events = events_of(stream)
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert streamed_text(events) == "I started to answer but"
    record = served.last_record()
    assert (record["status"], record["error_type"]) == (
        "upstream_filtered", "upstream_content_filter"
    )


def test_a_call_in_scope_streams_whole(served: StreamGateway, model: str) -> None:
    events, final = _streamed(served, model, 'call lookup {"word": "bread"}', tools=TOOLS)
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("lookup", {"word": "bread"})
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == call.arguments
    output_indexes_line_up(events)
    record = served.last_record()
    assert record["status"] == "ok"
    assert not [o for o in record["decision"]["outcomes"] if o["rule"] == "tools.call"]


def test_a_call_out_of_scope_never_reaches_the_client(served: StreamGateway, model: str) -> None:
    said = 'call transfer {"amount": 250, "recipient": "eve"}'
    events, final = _streamed(served, model, said, tools=TOOLS)
    sent = json.dumps(events)
    assert "eve" not in sent and "250" not in sent  # the call's arguments never went out
    assert not [e for e in events if e["type"].startswith("response.function_call")]
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text == "That tool is not available here."
    output_indexes_line_up(events)
    record = served.last_record()
    assert (record["status"], record["error_type"]) == ("blocked", "policy_violation")
    (outcome,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "tools.call"]
    assert outcome["enforced"] == "block"
    assert outcome["evidence"][0]["label"] == "bad_arguments:transfer"
    calls = [i for i in record["response_body"]["output"] if i["type"] == "function_call"]
    assert [c["name"] for c in calls] == ["transfer"]  # the backend's, as it gave it


def test_a_flagged_call_streams_as_it_comes_and_is_recorded(
    served: StreamGateway, model: str
) -> None:
    with served.flagging.responses.stream(
        model=model, input='call transfer {"amount": 250}', tools=TOOLS
    ) as stream:
        events = events_of(stream)
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"amount": 250}
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 1  # passed in pieces, not held until whole
    record = served.last_record()
    assert record["status"] == "ok"
    (outcome,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "tools.call"]
    assert (outcome["action"], outcome["enforced"]) == ("flag", "flag")


@pytest.mark.parametrize(
    ("trigger", "status"), [("FAULT-DROP", "incomplete"), ("FAULT-ERRFRAME", "upstream_error")]
)
def test_a_backend_failing_mid_stream_ends_with_error_then_failed(
    served: StreamGateway, model: str, trigger: str, status: str
) -> None:
    stream = served.sdk.responses.create(model=model, input=f"{trigger} now", stream=True)
    events = events_of(stream)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    record = served.last_record()
    assert record["status"] == status
    assert record["response_body"]["status"] == "incomplete"
    said = record["response_body"]["output"][0]["content"][0]["text"]
    streamed = streamed_text(events)
    # a strict prefix: the text held back (hold_back 24) when the backend failed never went out
    assert said[: len(streamed)] == streamed and len(said) > len(streamed)


def test_a_client_that_leaves_is_recorded(served: StreamGateway, model: str) -> None:
    with httpx.stream(
        "POST",
        f"{served.gateway.v1}/responses",
        headers={"authorization": f"Bearer {served.gateway.key}"},
        json={"model": model, "input": "LONG-STREAM please", "stream": True},
        timeout=10,
    ) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        deltas = 0
        for line in lines:
            if "response.output_text.delta" in line and line.startswith("data:"):
                deltas += 1
                if deltas == 3:
                    break
    record = served.gateway.record(request_id)
    assert record["status"] == "client_disconnected"
    assert record["response_body"]["status"] == "incomplete"
    text = record["response_body"]["output"][0]["content"][0]["text"]
    assert text.startswith("one two") and "thirty" not in text


def test_scrubbed_event_names_stay_on_the_wire(served: StreamGateway, model: str) -> None:
    """Every frame names its event, as OpenAI's do (clients that read the SSE name see it)."""
    response = httpx.post(
        f"{served.gateway.v1}/responses",
        headers={"authorization": f"Bearer {served.gateway.key}"},
        json={"model": model, "input": "hello", "stream": True},
        timeout=10,
    )
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    for frame in frames:
        name, data = frame.split("\n", 1)
        assert name == f"event: {json.loads(data.removeprefix('data: '))['type']}"


@pytest.fixture(autouse=True)
def _fresh(served: StreamGateway, tmp_path: Path) -> None:
    served.seen.clear()


def test_a_backend_not_asked_for_usage_still_streams_through_the_rules(
    served: StreamGateway,
) -> None:
    """A translated route always asks for a stream (``stream_usage: false`` only leaves usage
    out): never the backend's whole JSON answer passed on unread."""
    events, final = _streamed(served, BARE, f"call me on {PHONE} today")
    sent = json.dumps(events)
    assert "555" not in sent and "chat.completion" not in sent
    assert final.output_text.endswith("call me on [phone] today")
    assert events[-1]["type"] == "response.completed"
    assert served.last_record()["status"] == "ok"


def test_a_call_dropped_at_a_cut_short_end_is_recorded_as_blocked(served: StreamGateway) -> None:
    """Chat: [DONE] with no finish_reason while a call out of scope is held: the call is dropped,
    the choice ends with the scope's refusal, and the record says blocked (not incomplete)."""
    tools = [{"type": "function", "function": {"name": "wipe_disk", "parameters": {}}}]
    stream = served.sdk.chat.completions.create(
        model="t-chat", messages=[{"role": "user", "content": "CALL-CUT now"}], tools=tools,
        stream=True,
    )
    chunks = [chunk.to_dict() for chunk in stream]
    assert "wipe_disk" not in json.dumps(chunks)
    finishes = [c["finish_reason"] for chunk in chunks for c in chunk["choices"]]
    assert "content_filter" in finishes
    record = served.last_record()
    assert (record["status"], record["error_type"]) == ("blocked", "policy_violation")
