"""The policy on the Responses API: input rules over the chat view of a request's own input
(an input item, a function_call_output), output rules in the output_text, tool scope on the
declared tools and on a function_call, what the record keeps (a redacted record's chat
views), and a chain where the records keep no content."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests import spec
from tests.responses.responses_gateway import ResponsesGateway, responses_gateway
from tests.scoped import Scoped

LOOKUP = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
TRANSFER = {"type": "function", "name": "transfer", "parameters": {
    "type": "object", "properties": {"amount": {"type": "number"}}}}
WIPE = {"type": "function", "name": "wipe_disk", "parameters": {"type": "object"}}


@pytest.fixture(scope="module")
def gw(scoped_gateway: Scoped) -> ResponsesGateway:
    return responses_gateway(scoped_gateway)


def _fired(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["rule"]: o for o in record["decision"]["outcomes"] if o["evidence"]}


def test_an_input_block_is_an_error_and_an_answer_block_a_refusal(gw: ResponsesGateway) -> None:
    refused = gw.post({"model": "chat-model", "input": "say the forbidden phrase"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "policy_violation"
    assert gw.record(refused.headers["x-request-id"])["status"] == "blocked"
    polite = gw.post({"model": "chat-model", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "refuse me politely"}]}]})
    assert polite.status_code == 200
    body = polite.json()
    spec.check("Response", body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "content_filter"}
    assert body["output"][0]["content"][0]["text"] == "I can only help with test matters."
    record = gw.record(polite.headers["x-request-id"])
    assert record["status"] == "blocked" and record["response_id"] == body["id"]
    assert _fired(record)["polite"]["evidence"][0]["message"] == 0


def test_an_email_in_an_input_item_and_a_tool_output_is_redacted_upstream(
    gw: ResponsesGateway,
) -> None:
    answer = gw.post({"model": "chat-model", "instructions": "Be kind.", "tools": [LOOKUP],
                      "input": [
        {"role": "user", "content": "write to ada@example.com"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "mail bob@example.org"},
    ]})
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    sent = json.dumps(gw.upstream.seen(request_id)["body"])
    assert "ada@example.com" not in sent and "bob@example.org" not in sent
    assert "[email]" in sent
    evidence = _fired(gw.record(request_id))["email-in"]["evidence"]
    # indexes into the chat view: the instructions are message 0, the items 1, 2, 3
    assert sorted(e["message"] for e in evidence) == [1, 3]


def test_a_phone_number_in_the_output_text_is_redacted(gw: ResponsesGateway) -> None:
    with gw.sdk() as sdk:
        raw = sdk.responses.with_raw_response.create(model="chat-model",
                                                     input="call 415-555-0132 now")
    response = raw.parse()
    assert "415-555-0132" not in response.output_text and "You said" in response.output_text
    record = gw.record(raw.headers["x-request-id"])
    assert "415-555-0132" in json.dumps(record["response_body"])  # the backend's, as given
    assert _fired(record)["phone-out"]["enforced"] == "redact"
    with gw.sdk() as sdk:
        assert "415-555-0132" not in sdk.responses.retrieve(response.id).output_text


def test_declared_tools_out_of_scope_are_removed(gw: ResponsesGateway) -> None:
    answer = gw.post({"model": "chat-model", "input": "call lookup", "tools": [LOOKUP, WIPE]})
    assert answer.status_code == 200, answer.text
    sent = gw.upstream.seen(answer.headers["x-request-id"])["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup"]
    assert [t["name"] for t in answer.json()["tools"]] == ["lookup"]  # as the model had them
    outcome = _fired(gw.record(answer.headers["x-request-id"]))["tools.declared"]
    assert outcome["evidence"][0]["label"] == "out_of_scope:wipe_disk"


def test_a_call_that_breaks_its_schema_is_taken_out(gw: ResponsesGateway) -> None:
    ok = gw.post({"model": "chat-model", "input": 'call transfer {"amount": 20}',
                  "tools": [TRANSFER]}).json()
    assert [i["type"] for i in ok["output"]] == ["function_call"]
    answer = gw.post({"model": "chat-model", "input": 'call transfer {"amount": 5000}',
                      "tools": [TRANSFER]})
    body = answer.json()
    spec.check("Response", body)
    assert [i["type"] for i in body["output"]] == ["message"]
    assert body["output"][0]["content"][0]["text"] == "That tool call is not allowed here."
    assert body["status"] == "incomplete"
    record = gw.record(answer.headers["x-request-id"])
    assert record["response_body"]["output"][0]["type"] == "function_call"
    assert _fired(record)["tools.call"]["evidence"][0]["label"] == "bad_arguments:transfer"


def test_a_redacted_record_keeps_chat_views_and_serves_them(gw: ResponsesGateway) -> None:
    with gw.sdk("redacted-context") as sdk:
        raw = sdk.responses.with_raw_response.create(
            model="chat-model", input="I am ada@example.com, phone 415-555-0132")
        first = raw.parse()
        record = gw.record(raw.headers["x-request-id"])
        text = json.dumps([record["request_body"], record["response_body"]])
        assert "ada@example.com" not in text and "415-555-0132" not in text
        assert record["request_body"]["messages"][0]["role"] == "user"
        assert record["response_body"]["id"] == first.id
        follow = sdk.responses.with_raw_response.create(
            model="chat-model", input="again", previous_response_id=first.id)
    sent = gw.upstream.seen(follow.headers["x-request-id"])["body"]["messages"]
    assert len(sent) == 3 and "415-555-0132" not in json.dumps(sent)


def test_a_context_that_records_no_content_cannot_continue_a_translated_chain(
    gw: ResponsesGateway,
) -> None:
    with gw.sdk("none-context") as sdk:
        first = sdk.responses.create(model="chat-model", input="hello")
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="chat-model", input="x", previous_response_id=first.id)
    assert refused.value.code == "previous_response_unusable"
    assert "record.content: none" in refused.value.message


def _native(gw: ResponsesGateway) -> None:
    probe = httpx.post(f"{gw.upstream.url}/v1/responses", json={"model": "m", "input": "hi"})
    if probe.status_code == 404:
        pytest.skip("the mock upstream does not serve /v1/responses yet")


def test_native_passes_fields_through_and_chains(gw: ResponsesGateway) -> None:
    _native(gw)
    answer = gw.post({"model": "native-model", "input": "write ada@example.com",
                      "reasoning": {"effort": "low"}, "include": []}, "other-context")
    assert answer.status_code == 200, answer.text
    first = answer.json()  # the backend's own Response, passed through as it sent it
    assert first["object"] == "response" and first["status"] == "completed"
    sent = gw.upstream.seen(answer.headers["x-request-id"])
    assert sent["path"].endswith("/responses") and sent["body"]["reasoning"] == {"effort": "low"}
    record = gw.record(answer.headers["x-request-id"])
    assert record["response_id"] == first["id"] and record["decision"]["responses"]["native"]
    follow = gw.post({"model": "native-model", "input": "more",
                      "previous_response_id": first["id"]}, "other-context")
    assert follow.status_code == 200, follow.text
    body = gw.upstream.seen(follow.headers["x-request-id"])["body"]
    assert body["previous_response_id"] == first["id"]  # the backend resolves its own
    # a translated response continued on the native backend: the turns are inlined
    translated = gw.post({"model": "chat-model", "input": "first"}, "other-context").json()
    mixed = gw.post({"model": "native-model", "input": "second",
                     "previous_response_id": translated["id"]}, "other-context")
    inlined = gw.upstream.seen(mixed.headers["x-request-id"])["body"]
    assert "previous_response_id" not in inlined and len(inlined["input"]) == 3


def test_native_redacts_the_items_it_sends(gw: ResponsesGateway) -> None:
    _native(gw)
    answer = gw.post({"model": "native-model", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "to ada@example.com"}]}]})
    assert answer.status_code == 200, answer.text
    sent = gw.upstream.seen(answer.headers["x-request-id"])["body"]["input"]
    assert sent[0]["content"][0]["text"] == "to [email]"


def test_a_native_built_in_tool_is_judged_by_its_type(gw: ResponsesGateway) -> None:
    _native(gw)
    answer = gw.post({"model": "native-model", "input": "search it",
                      "tools": [{"type": "web_search"}, LOOKUP]})
    assert answer.status_code == 200, answer.text
    sent = gw.upstream.seen(answer.headers["x-request-id"])["body"]
    assert [t["type"] for t in sent["tools"]] == ["function"]
    outcome = _fired(gw.record(answer.headers["x-request-id"]))["tools.declared"]
    assert outcome["evidence"][0]["label"] == "out_of_scope:web_search"


def test_tool_choice_and_text_format_are_translated(gw: ResponsesGateway) -> None:
    answer = gw.post({"model": "chat-model", "input": "hi", "tools": [LOOKUP],
                      "tool_choice": {"type": "function", "name": "lookup"},
                      "text": {"format": {"type": "json_object"}}, "max_output_tokens": 50})
    assert answer.status_code == 200, answer.text
    sent = gw.upstream.seen(answer.headers["x-request-id"])["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert sent["response_format"] == {"type": "json_object"} and sent["max_tokens"] == 50
    assert answer.json()["output"][0]["type"] == "function_call"  # the forced call


def test_a_follow_up_sends_the_earlier_turns_as_the_input_rules_left_them(
    gw: ResponsesGateway,
) -> None:
    _native(gw)
    for first_model in ("chat-model", "native-model"):
        first = gw.post({"model": first_model, "input": "write to ada@example.com"})
        assert first.status_code == 200, first.text
        record = gw.record(first.headers["x-request-id"])
        assert "[email]" in json.dumps(record["decision"]["responses"]["admitted_input"])
        for model in ("chat-model", "native-model"):
            follow = gw.post({"model": model, "input": "and again",
                              "previous_response_id": first.json()["id"]})
            assert follow.status_code == 200, follow.text
            sent = json.dumps(gw.upstream.seen(follow.headers["x-request-id"])["body"])
            assert "[email]" in sent or first_model == model == "native-model"
            assert "ada@example.com" not in sent, (first_model, model)


def test_native_sends_redacted_instructions_and_tool_output_parts(gw: ResponsesGateway) -> None:
    _native(gw)
    answer = gw.post({"model": "native-model", "instructions": "the user is ada@example.com",
                      "tools": [LOOKUP], "input": [
        {"role": "user", "content": "look it up"},
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1",
         "output": [{"type": "input_text", "text": "mail bob@example.org"}]}]}, "limited-context")
    assert answer.status_code == 200, answer.text
    sent = gw.upstream.seen(answer.headers["x-request-id"])["body"]
    assert sent["instructions"] == "the user is [email]"
    assert sent["input"][2]["output"] == [{"type": "input_text", "text": "mail [email]"}]


def test_a_streamed_call_withheld_is_not_served_by_a_read_nor_sent_again(
    gw: ResponsesGateway,
) -> None:
    body = {"model": "chat-model", "stream": True, "tools": [TRANSFER],
            "input": 'call transfer {"amount": 5000}'}
    with httpx.stream("POST", f"{gw.v1}/responses", json=body, timeout=30,
                      headers={"authorization": f"Bearer {gw.keys['resp-context']}"}) as stream:
        text = "".join(stream.iter_text())
        request_id = stream.headers["x-request-id"]
    assert "5000" not in text
    response_id = gw.record(request_id)["response_id"]
    with gw.sdk() as sdk:
        served = sdk.responses.retrieve(response_id)
        assert [i.type for i in served.output] == ["message"]
        assert "5000" not in served.model_dump_json()
        follow = sdk.responses.with_raw_response.create(
            model="chat-model", input="ok", previous_response_id=response_id)
    sent = gw.upstream.seen(follow.headers["x-request-id"])["body"]["messages"]
    said = [m for m in sent if m["role"] != "user"]
    assert said and "5000" not in json.dumps(said) and not any(m.get("tool_calls") for m in said)


def test_a_chain_counts_its_earlier_turns_against_the_limits(gw: ResponsesGateway) -> None:
    with gw.sdk("limited-context") as sdk:
        first = sdk.responses.create(model="chat-model", input="turn 1")
        second = sdk.responses.create(model="chat-model", input="turn 2",
                                      previous_response_id=first.id)  # 3 messages: allowed (4)
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="chat-model", input="turn 3",
                                 previous_response_id=second.id)  # 5 messages
    assert refused.value.code == "limit_exceeded"


def test_a_streamed_input_refusal_streams_its_text(gw: ResponsesGateway) -> None:
    with gw.sdk() as sdk:
        events = list(sdk.responses.create(model="chat-model", input="refuse me politely",
                                           stream=True))
    text = "I can only help with test matters."
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == [text]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.output_text == text
