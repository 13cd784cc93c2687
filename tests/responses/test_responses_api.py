"""The Responses API through the real openai SDK: created on a translated backend (text,
instructions, tools round trip, json_schema), previous_response_id chains, the stored
responses' reads (GET, DELETE, input_items) within the caller's context only, the fields a
path cannot carry refused, and what is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from gateway.records.responses import RecentResponses, StoredResponse
from tests import spec
from tests.responses.responses_gateway import ResponsesGateway, responses_gateway, second_process
from tests.scoped import Scoped


@pytest.fixture(scope="module")
def gw(scoped_gateway: Scoped) -> ResponsesGateway:
    return responses_gateway(scoped_gateway)


@pytest.fixture(scope="module")
def sdk(gw: ResponsesGateway) -> Iterator[openai.OpenAI]:
    with gw.sdk() as client:
        yield client


def test_a_text_answer_is_a_response_and_is_recorded(
    gw: ResponsesGateway, sdk: openai.OpenAI
) -> None:
    raw = sdk.responses.with_raw_response.create(
        model="chat-model", input="What is the capital of France?", instructions="Be brief.",
        temperature=0.5, metadata={"ticket": "T-1"},
    )
    response = raw.parse()
    spec.check("Response", json.loads(raw.text))
    assert response.output_text == "The capital of France is Paris."
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.instructions == "Be brief." and response.temperature == 0.5
    assert response.metadata == {"ticket": "T-1"}
    assert response.usage is not None and response.usage.total_tokens > 0
    request_id = raw.headers["x-request-id"]
    sent = gw.upstream.seen(request_id)["body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert sent["temperature"] == 0.5 and "metadata" not in sent
    record = gw.record(request_id)
    assert record["endpoint"] == "responses" and record["status"] == "ok"
    assert record["response_id"] == response.id
    assert record["request_body"]["input"] == "What is the capital of France?"
    assert record["response_body"]["output"][0]["content"][0]["text"].endswith("Paris.")
    assert record["total_tokens"] == response.usage.total_tokens
    assert record["decision"]["responses"]["native"] is False


def test_a_tool_round_trip(gw: ResponsesGateway, sdk: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "lookup", "description": "Look a thing up.",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                             "required": ["q"]}}]
    first = sdk.responses.create(model="chat-model", input="call lookup {\"q\": \"tea\"}",
                                 tools=tools)  # type: ignore[arg-type]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup"
    assert json.loads(calls[0].arguments) == {"q": "tea"}
    assert calls[0].id.startswith("fc_")
    second = sdk.responses.create(
        model="chat-model", tools=tools,  # type: ignore[arg-type]
        input=[
            {"role": "user", "content": "call lookup {\"q\": \"tea\"}"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "lookup",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "green"},
        ],
    )
    assert second.output_text == "The tool said: green"


class Capital(BaseModel):
    city: str
    country: str


def test_json_schema_through_parse(sdk: openai.OpenAI) -> None:
    parsed = sdk.responses.parse(
        model="chat-model", input="Name a capital as JSON.", text_format=Capital
    )
    assert isinstance(parsed.output_parsed, Capital)


def test_previous_response_id_rebuilds_the_conversation(
    gw: ResponsesGateway, sdk: openai.OpenAI
) -> None:
    first = sdk.responses.create(model="chat-model", input="My name is Ada.")
    second = sdk.responses.with_raw_response.create(
        model="chat-model", input="What is my name?", previous_response_id=first.id,
        instructions="Answer briefly.",
    )
    sent = gw.upstream.seen(second.headers["x-request-id"])["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == [{"type": "text", "text": "My name is Ada."}]
    assert sent[2]["content"][0]["text"] == first.output_text
    third = sdk.responses.with_raw_response.create(
        model="chat-model", input="And again?", previous_response_id=second.parse().id
    )
    chain = gw.upstream.seen(third.headers["x-request-id"])["body"]["messages"]
    assert [m["role"] for m in chain] == ["user", "assistant", "user", "assistant", "user"]


def test_another_contexts_response_is_not_found(gw: ResponsesGateway, sdk: openai.OpenAI) -> None:
    mine = sdk.responses.create(model="chat-model", input="Only mine.")
    with gw.sdk("other-context") as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
        with pytest.raises(openai.BadRequestError) as refused:
            other.responses.create(model="chat-model", input="x", previous_response_id=mine.id)
    assert refused.value.code == "previous_response_not_found"
    assert refused.value.param == "previous_response_id"  # type: ignore[attr-defined]
    assert sdk.responses.retrieve(mine.id).output_text == mine.output_text


def test_get_input_items_delete(gw: ResponsesGateway, sdk: openai.OpenAI) -> None:
    made = sdk.responses.create(
        model="chat-model",
        input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
               {"role": "user", "content": "three"}],
    )
    fetched = sdk.responses.retrieve(made.id)
    assert fetched.id == made.id and fetched.output_text == made.output_text
    items = sdk.responses.input_items.list(made.id, order="asc", limit=2)
    assert [i.content[0].text for i in items.data] == ["one", "two"]  # type: ignore[union-attr]
    assert items.has_more is True
    rest = sdk.responses.input_items.list(made.id, order="asc", after=items.last_id)
    assert [i.content[0].text for i in rest.data] == ["three"]  # type: ignore[union-attr]
    newest = sdk.responses.input_items.list(made.id)
    assert newest.data[0].content[0].text == "three"  # type: ignore[union-attr]
    deleted = sdk.responses.delete(made.id)
    assert deleted is None or deleted.deleted  # type: ignore[func-returns-value]
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(made.id)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="chat-model", input="x", previous_response_id=made.id)


def test_another_process_serves_the_records(gw: ResponsesGateway, sdk: openai.OpenAI) -> None:
    """What a process does not hold in memory is read from the records, in the context only,
    held to the output rules again (the record keeps the backend's text)."""
    raw = sdk.responses.with_raw_response.create(
        model="chat-model", input=[{"role": "user", "content": "note 415-555-0132 please"}]
    )
    made = raw.parse()
    gw.record(raw.headers["x-request-id"])  # written
    transfer = {"type": "function", "name": "transfer", "parameters": {"type": "object"}}
    blocked = sdk.responses.with_raw_response.create(
        model="chat-model", input='call transfer {"amount": 5000}', tools=[transfer])  # type: ignore[list-item]
    mailed = sdk.responses.with_raw_response.create(model="chat-model", input="to ada@example.com")
    gw.record(blocked.headers["x-request-id"]), gw.record(mailed.headers["x-request-id"])
    with second_process(gw) as second, second.sdk() as other:
        withheld = other.responses.retrieve(blocked.parse().id)  # the record has the call
        assert [i.type for i in withheld.output] == ["message"] and "5000" not in str(withheld)
        again = other.responses.with_raw_response.create(
            model="chat-model", input="again", previous_response_id=mailed.parse().id)
        resent = json.dumps(gw.upstream.seen(again.headers["x-request-id"])["body"])
        assert "ada@example.com" not in resent and "[email]" in resent
        fetched = other.responses.retrieve(made.id)
        assert fetched.output_text == made.output_text and "[phone]" in fetched.output_text
        items = other.responses.input_items.list(made.id)
        assert items.data[0].content[0].text == "note 415-555-0132 please"  # type: ignore[union-attr]
        follow = other.responses.with_raw_response.create(
            model="chat-model", input="and then?", previous_response_id=made.id
        )
        sent = gw.upstream.seen(follow.headers["x-request-id"])["body"]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert other.responses.delete(made.id) is None
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(made.id)
        with second.sdk("other-context") as stranger, pytest.raises(openai.NotFoundError):
            stranger.responses.retrieve(follow.parse().id)
    written = gw.record(raw.headers["x-request-id"])
    # the time is on the row; the decision, which the audit chain commits to, is left as it was
    assert written["deleted_at"] and "deleted_at" not in written["decision"]["responses"]


def test_a_delete_before_the_record_is_written_is_kept(
    gw: ResponsesGateway, sdk: openai.OpenAI
) -> None:
    """The DELETE right after the answer, its record not yet written: the record is made
    deleted whichever comes first, so no later read (another process) serves it."""
    for n in range(5):
        raw = sdk.responses.with_raw_response.create(model="chat-model", input=f"gone {n}")
        sdk.responses.delete(raw.parse().id)
        assert gw.record(raw.headers["x-request-id"])["deleted_at"]


def test_store_false_is_recorded_but_not_served(gw: ResponsesGateway, sdk: openai.OpenAI) -> None:
    raw = sdk.responses.with_raw_response.create(model="chat-model", input="Forget it.",
                                                 store=False)
    made = raw.parse()
    assert gw.record(raw.headers["x-request-id"])["response_id"] == made.id
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(made.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"include": ["file_search_call.results"]}, "include"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"truncation": "auto"}, "truncation"),
        ({"some_future_field": 1}, "some_future_field"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0]"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0]"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}},
                   "verbosity": "low"}}, "text.verbosity"),
    ],
)
def test_what_the_translate_path_cannot_carry_is_a_400(
    gw: ResponsesGateway, extra: dict[str, object], param: str
) -> None:
    # (a context without tool scope: resp-context's removes the built-in tool instead)
    answer = gw.post({"model": "chat-model", "input": "hi", **extra}, "other-context")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert gw.record(answer.headers["x-request-id"])["status"] == "rejected"


def test_invalid_values_are_400s(gw: ResponsesGateway) -> None:
    for body, param in (
        ({"model": "chat-model", "input": "hi", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "chat-model", "input": "hi", "stream": 1}, "stream"),
        ({"model": "chat-model"}, "input"),
    ):
        answer = gw.post(body)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_the_recent_responses_are_bounded_in_bytes_per_context() -> None:
    """4 MiB bodies do not pile up in memory: a context holds at most its share of bytes,
    and one context's large bodies do not push out another's."""
    recent = RecentResponses(size=100, max_bytes=30_000, context_bytes=20_000)

    def put(context: str, n: int, text: str) -> None:
        recent.put(StoredResponse(f"resp_{n}", context, f"x{n}", None, False, True, "full",
                                  {"input": text}, {"output": []}))

    put("small", 0, "hi")
    for n in range(1, 10):
        put("big", n, "x" * 6_000)
    held = [n for n in range(1, 10) if recent.get("big", f"resp_{n}")]
    assert held == [7, 8, 9]  # the newest that fit in 20 000 bytes
    assert recent.get("small", "resp_0") is not None
    put("big", 10, "x" * 25_000)  # larger than a context may hold: not held at all
    assert recent.get("big", "resp_10") is None
