"""Tool-call scope on whole chat completions, through the real openai SDK: the tools a request
declares (removed before the model sees them, or the request refused), the calls the model
makes (in scope, out of scope, arguments that break the policy's schema), and what the record,
the findings and the review queue say about them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.checks.registry import default_registry
from gateway.errors import InvalidRequest
from gateway.pipeline.output import OutputStage
from gateway.pipeline.responses.answer import apply_view
from gateway.pipeline.tools_chat import scope_calls, scope_declared
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.decision import Decision
from gateway.policy.loader import compile_policy
from gateway.policy.tools import CALLED
from gateway.records.shapes import answer_view
from gateway.web import tools as web_tools
from tests.reviewing import Reviewer
from tests.tools.served import SCOPE, TOOLS, Served, labels, outcome, tool, user

TRANSFER_OK = 'please call transfer {"amount": 40, "recipient": "alice"}'


def _ask(served: Served, context: str, text: str, **extra: Any) -> tuple[Any, str]:
    """The answer's message and finish reason, its exchange id."""
    with served.sdk(context) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=user(text), tools=TOOLS, **extra
        )
    choice = raw.parse().choices[0]
    return choice, raw.headers["x-request-id"]


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def test_a_declared_tool_out_of_scope_never_reaches_the_model(served: Served) -> None:
    choice, request_id = _ask(
        served, "tools-remove", 'call lookup_balance {"account": "main"}', parallel_tool_calls=True
    )
    seen = served.upstream.seen(request_id)["body"]
    assert _names(seen["tools"]) == ["lookup_balance", "transfer", "lookup_card"]
    assert seen["parallel_tool_calls"] is True
    (call,) = choice.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "lookup_balance",
        {"account": "main"},
    )
    record = served.gateway.record(request_id)
    assert record["status"] == "ok"
    assert _names(record["request_body"]["tools"]) == _names(TOOLS)  # the client's, as sent
    declared = outcome(record, "tools.declared")
    assert declared is not None
    assert (declared["action"], declared["enforced"]) == ("redact", "redact")
    assert labels(declared) == [(1, "out_of_scope:delete_account")]
    assert "delete_account" in declared["why"]
    assert outcome(record, "tools.call") is None  # the call was in scope


def test_no_tool_left_means_no_tools_field_upstream(served: Served) -> None:
    with served.sdk("tools-remove") as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small",
            messages=user("What is the capital of France?"),
            tools=[tool("delete_account", account={"type": "string"})],
            tool_choice="auto",
            parallel_tool_calls=False,
        )
    seen = served.upstream.seen(raw.headers["x-request-id"])["body"]
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(seen)
    message = raw.parse().choices[0].message
    assert message.tool_calls is None and message.content


def test_legacy_functions_are_scoped_too(served: Served) -> None:
    functions = [t["function"] for t in TOOLS]
    response = httpx.post(
        f"{served.gateway.v1}/chat/completions",
        headers={"authorization": f"Bearer {served.gateway.keys['tools-remove']}"},
        json={"model": "test-small", "messages": user("check lookup_card"), "functions": functions},
    )
    assert response.status_code == 200, response.text
    seen = served.upstream.seen(response.headers["x-request-id"])["body"]
    assert [f["name"] for f in seen["functions"]] == ["lookup_balance", "transfer", "lookup_card"]
    assert response.json()["choices"][0]["message"]["function_call"]["name"] == "lookup_card"


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "function", "function": {"name": "delete_account"}},
        "required",
    ],
    ids=["names-a-removed-tool", "required-with-none-left"],
)
def test_a_tool_choice_that_cannot_be_honoured_is_refused(served: Served, choice: Any) -> None:
    tools = TOOLS if isinstance(choice, dict) else [TOOLS[1]]
    with served.sdk("tools-remove") as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="test-small", messages=user("hello"), tools=tools, tool_choice=choice
        )
    error = caught.value
    assert (error.param, error.code) == ("tool_choice", "tool_not_allowed")
    assert error.response.headers["x-should-retry"] == "false"
    record = served.gateway.record(error.response.headers["x-request-id"])
    assert (record["status"], record["http_status"]) == ("blocked", 400)
    declared = outcome(record, "tools.declared")
    assert declared is not None and declared["enforced"] == "block"


def test_refuse_policy_refuses_the_request_naming_the_tool(served: Served) -> None:
    with served.sdk("tools-refuse") as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="test-small", messages=user("hello"), tools=TOOLS)
    error = caught.value
    assert (error.param, error.code, error.status_code) == ("tools[1]", "tool_not_allowed", 400)
    assert "delete_account" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    request_id = error.response.headers["x-request-id"]
    assert all(e["request_id"] != request_id for e in served.upstream.requests())
    record = served.gateway.record(request_id)
    assert (record["status"], record["error_type"]) == ("blocked", "tool_not_allowed")
    declared = outcome(record, "tools.declared")
    assert declared is not None
    assert (declared["action"], declared["enforced"]) == ("block", "block")
    # in scope, the same context answers
    with served.sdk("tools-refuse") as sdk:
        answer = sdk.chat.completions.create(
            model="test-small", messages=user(TRANSFER_OK), tools=[TOOLS[2]]
        )
    assert answer.choices[0].message.tool_calls[0].function.name == "transfer"


def test_a_call_in_scope_is_passed_as_the_model_made_it(served: Served) -> None:
    choice, request_id = _ask(served, "tools-remove", TRANSFER_OK)
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert json.loads(call.function.arguments) == {"amount": 40, "recipient": "alice"}
    record = served.gateway.record(request_id)
    assert record["status"] == "ok"
    assert outcome(record, "tools.call") is None


@pytest.mark.parametrize(
    ("text", "label", "why"),
    [
        ('call transfer {"amount": 250, "recipient": "alice"}', "bad_arguments", "amount"),
        ('call transfer {"amount": 20, "recipient": "eve"}', "bad_arguments", "recipient"),
        ("NOT-JSON transfer", "unreadable_arguments", "not JSON"),
    ],
    ids=["over-the-maximum", "recipient-not-listed", "arguments-not-json"],
)
def test_a_call_breaking_the_arguments_schema_is_blocked(
    served: Served, text: str, label: str, why: str
) -> None:
    choice, request_id = _ask(served, "tools-remove", text)
    assert choice.message.tool_calls is None
    assert choice.message.content == choice.message.refusal == "That tool is not available here."
    assert choice.finish_reason == "content_filter"
    record = served.gateway.record(request_id)
    assert record["status"] == "blocked"
    assert "tools.call" in record["error_message"]
    # the record keeps the backend's answer as given; the decision says what was done
    kept = record["response_body"]["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in kept] == ["transfer"]
    called = outcome(record, "tools.call")
    assert called is not None
    assert (called["stage"], called["action"], called["enforced"]) == ("output", "block", "block")
    assert labels(called) == [(0, f"{label}:transfer")]
    assert why in called["why"]
    findings = served.gateway.admin("/findings", rule="tools.call", context="tools-remove").json()
    mine = [f for f in findings["data"] if f["exchange_id"] == request_id]
    assert [(f["detector"], f["enforced"]) for f in mine] == [("tool_scope", "block")]


def test_a_call_of_a_tool_never_declared_is_blocked(served: Served) -> None:
    choice, request_id = _ask(served, "tools-remove", "UNDECLARED please")
    assert choice.message.tool_calls is None and choice.finish_reason == "content_filter"
    called = outcome(served.gateway.record(request_id), "tools.call")
    assert labels(called) == [(0, "out_of_scope:delete_account")]


def test_parallel_calls_keep_those_in_scope(served: Served) -> None:
    choice, request_id = _ask(served, "tools-remove", "PARALLEL")
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["lookup_balance", "lookup_card"]
    assert choice.message.content is None
    record = served.gateway.record(request_id)
    assert record["status"] == "blocked"
    assert labels(outcome(record, "tools.call")) == [(0, "bad_arguments:transfer")]


def test_a_flagged_call_is_passed_and_goes_to_review(served: Served) -> None:
    reviewer = Reviewer(served.gateway, "Tess", queues=(("tools-flag", "tool-review"),))
    text = 'call transfer {"amount": 900, "recipient": "bob"}'
    choice, request_id = _ask(served, "tools-flag", text)
    assert choice.finish_reason == "tool_calls"
    assert json.loads(choice.message.tool_calls[0].function.arguments)["amount"] == 900
    record = served.gateway.record(request_id)
    assert record["status"] == "ok"
    called = outcome(record, "tools.call")
    assert called is not None
    assert (called["action"], called["enforced"]) == ("flag", "flag")
    assert called["review"] == "tool-review"
    item = reviewer.claim("tools-flag", "tool-review")
    assert item is not None
    # the queue is every tool decision's: the removed declaration (delete_account) too
    assert (item["exchange_id"], item["reason"], item["rule_ids"]) == (
        request_id,
        "flagged",
        ["tools.call", "tools.declared"],
    )


def test_a_warned_call_is_passed_and_recorded(served: Served) -> None:
    with served.sdk("tools-warn") as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=user("UNDECLARED"), tools=TOOLS
        )
    assert raw.parse().choices[0].message.tool_calls[0].function.name == "delete_account"
    assert raw.headers["x-situate-warning"] == "tools.call"
    record = served.gateway.record(raw.headers["x-request-id"])
    called = outcome(record, "tools.call")
    assert called is not None and (called["action"], called["enforced"]) == ("warn", "warn")
    assert record["status"] == "ok"


def test_a_tool_round_trip_answers_with_the_result(served: Served) -> None:
    choice, _ = _ask(served, "tools-remove", 'call lookup_balance {"account": "main"}')
    call = choice.message.tool_calls[0]
    messages: list[Any] = [
        *user('call lookup_balance {"account": "main"}'),
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "balance: 120 EUR"},
    ]
    with served.sdk("tools-remove") as sdk:
        answer = sdk.chat.completions.create(model="test-small", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "The tool said: balance: 120 EUR"


# The output stage on a whole answer, at unit level: the mock backend never writes text
# beside its calls, which is what a block-as-answer rule on the text must see.

SECRET_RULE = """\
rules:
  - id: no-secret
    stage: output
    why: No secrets.
    detect: {keywords: [SECRET]}
    action: block
    block_as: answer
    message: I cannot say that.
"""


def _policy(section: str) -> CompiledPolicy:
    head = "context: unit\npurpose: Test.\nowner: t@situate.invalid\naudience: tests\n"
    text = head + "models:\n  allow: [test-small]\n" + f"tools:\n{SCOPE}" + section
    return compile_policy(Path("unit.yaml"), text, default_registry())


def test_a_choice_an_output_rule_blocked_loses_its_calls() -> None:
    policy = _policy(SECRET_RULE)
    function = {"name": "lookup_balance", "arguments": "{}"}
    call = {"id": "c1", "type": "function", "function": function}
    message = {"role": "assistant", "content": "the SECRET is 42", "tool_calls": [call]}
    legacy = {"role": "assistant", "content": "SECRET", "function_call": call["function"]}
    choices = [
        {"index": 0, "finish_reason": "tool_calls", "message": message},
        {"index": 1, "finish_reason": "function_call", "message": legacy},
    ]
    answer: dict[str, Any] = {"id": "x", "choices": choices}
    decision = Decision("r", "unit")
    assert OutputStage(policy, decision, disclose=False).answer(answer)
    scope_calls(policy.tools, answer, decision)
    for choice in answer["choices"]:
        assert choice["finish_reason"] == "content_filter"
        assert choice["message"]["refusal"] == "I cannot say that."
        assert choice["message"].get("tool_calls") is None
        assert choice["message"].get("function_call") is None


def _post_tools(served: Served, tools: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{served.gateway.v1}/chat/completions",
        headers={"authorization": f"Bearer {served.gateway.keys['tools-remove']}"},
        json={"model": "test-small", "messages": user("hello"), "tools": tools},
    )


LOOKUP = {"name": "lookup_balance", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("declared", "code"),
    [
        ({"type": "lookup_x", "function": {"name": "delete_account"}}, "tool_not_allowed"),
        ({"type": "function", "name": "delete_account", "function": LOOKUP}, "invalid_value"),
        ({"type": "function", "function": {"parameters": {}}}, "invalid_value"),
        ({"function": LOOKUP, "name": "delete_account"}, "invalid_value"),
    ],
    ids=["another-type-carrying-a-function", "two-names", "no-name", "no-type-two-names"],
)
def test_a_tool_scope_cannot_judge_by_the_name_sent_is_refused(
    served: Served, declared: dict[str, Any], code: str
) -> None:
    response = _post_tools(served, [TOOLS[0], declared])
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("tools[1]", code)
    request_id = response.headers["x-request-id"]
    assert all(e["request_id"] != request_id for e in served.upstream.requests())


def test_a_tool_without_a_type_is_judged_by_its_function_name(served: Served) -> None:
    """vLLM reads a tool without ``type`` as a function: it is judged by ``function.name``."""
    response = _post_tools(served, [{"function": LOOKUP}, {"function": {"name": "delete_account"}}])
    assert response.status_code == 200, response.text
    seen = served.upstream.seen(response.headers["x-request-id"])["body"]
    assert seen["tools"] == [{"function": LOOKUP}]
    declared = outcome(served.gateway.record(response.headers["x-request-id"]), "tools.declared")
    assert labels(declared) == [(1, "out_of_scope:delete_account")]


def test_a_responses_tool_is_judged_by_the_flat_name_it_sends() -> None:
    policy, decision = _policy(""), Decision("r", "unit")
    decoy = {"type": "function", "name": "wipe_disk", "function": {"name": "lookup_balance"}}
    with pytest.raises(InvalidRequest) as caught:
        scope_declared(policy.tools, {"input": "hi", "tools": [decoy]}, decision)
    assert (caught.value.param, caught.value.code) == ("tools[0]", "invalid_value")
    tools = [{"type": "function", "name": "wipe_disk"}, {"type": "custom", "name": "lookup_x"}]
    kept = scope_declared(policy.tools, {"input": "hi", "tools": tools}, decision)
    assert kept["tools"] == tools[1:]
    assert labels(decision.outcomes[0].as_dict()) == [(0, "out_of_scope:wipe_disk")]


def test_each_call_is_judged_at_its_position_and_the_page_says_which() -> None:
    """Two calls of one tool in one choice, one in scope: the evidence names the blocked
    call's position (``part``), and the reviewer's page shows only that one blocked."""
    policy, decision = _policy(""), Decision("r", "unit")
    small, large = ('{"amount": 50, "recipient": "bob"}', '{"amount": 5000, "recipient": "eve"}')
    calls = [
        {"id": f"c{n}", "type": "function", "function": {"name": "transfer", "arguments": a}}
        for n, a in enumerate((small, large))
    ]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    answer: dict[str, Any] = {"choices": [{"index": 0, "message": dict(message)}]}
    assert scope_calls(policy.tools, answer, decision)
    (called,) = (o.as_dict() for o in decision.outcomes)
    assert [(e["message"], e.get("part")) for e in called["evidence"]] == [(0, 1)]
    judged = web_tools.on_choice(web_tools.verdicts({"outcomes": [called]}, CALLED), 0)
    shown = web_tools.calls(message, judged)
    assert [(c.id, c.verdict is not None) for c in shown] == [("c0", False), ("c1", True)]


def test_a_responses_custom_or_mcp_call_is_judged_like_a_function_call() -> None:
    policy, decision = _policy(""), Decision("r", "unit")
    output = [
        {"type": "custom_tool_call", "call_id": "c0", "name": "transfer", "input": "5000 to eve"},
        {"type": "custom_tool_call", "call_id": "c1", "name": "lookup_card", "input": "4605"},
        {"type": "mcp_call", "id": "m2", "name": "delete_account", "arguments": "{}",
         "server_label": "bank", "output": "deleted"},
    ]
    response = {"id": "resp_1", "status": "completed", "output": output}
    view = answer_view("responses", response)
    assert scope_calls(policy.tools, view, decision)
    (called,) = (o.as_dict() for o in decision.outcomes)
    assert [(e["part"], e["label"]) for e in called["evidence"]] == [
        (0, "unreadable_arguments:transfer"), (2, "out_of_scope:delete_account")
    ]
    assert apply_view(response, view)["output"][:1] == output[1:2]
