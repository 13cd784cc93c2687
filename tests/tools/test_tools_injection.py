"""Tool results are inputs: an instruction planted in an e-mail a tool fetched (BIPIA's public
attacks of its TEST split inside its test e-mails, data the model never trained on) is caught by
the context's ``tool_injection`` rule (``roles: [tool]``) when it comes back as a ``tool``
message (or a legacy ``function`` message), at the start, the middle or the end of the e-mail,
and the evidence points at that message; the same e-mail clean passes, and the same sentence
typed by the user is not this rule's to read."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from gateway.detectors.bipia_data import plant
from tests.shared_data import shared_file
from tests.tools.served import Served

CONTEXT = "tools-injection"
TOOL_MESSAGE = 2  # user, the assistant's call, the tool's result


def _request(email: str, question: str, *, role: str = "tool") -> list[dict[str, Any]]:
    """What an agent sends after its tool ran: the question, its call, the tool's result (a
    ``tool`` message, the same as a list of text parts, or a legacy ``function`` message)."""
    function = {"name": "read_email", "arguments": "{}"}
    call = {"id": "call_1", "type": "function", "function": function}
    content: Any = [{"type": "text", "text": email}] if role == "tool-parts" else email
    result: dict[str, Any] = {"role": role.removesuffix("-parts"), "content": content}
    result.update({"name": "read_email"} if role == "function" else {"tool_call_id": "call_1"})
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        result,
    ]


def _emails() -> list[dict[str, str]]:
    with shared_file("bipia/email-test.jsonl").open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _attack(kind: str = "text", category: str = "Entertainment") -> str:
    attacks = json.loads(shared_file(f"bipia/{kind}_attack_test.json").read_text())
    first: str = attacks[category][0]
    return first


def _clean_email(sdk: openai.OpenAI, index: int = 0) -> dict[str, str]:
    """A test e-mail, after checking the rule lets it through clean (the control)."""
    email = _emails()[index]
    answer = sdk.chat.completions.create(
        model="test-small", messages=_request(email["context"], email["question"])
    )
    assert answer.choices[0].message.content
    return email


def _blocked(sdk: openai.OpenAI, messages: list[dict[str, Any]]) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="test-small", messages=messages)
    return caught.value


@pytest.mark.parametrize("role", ["tool", "tool-parts", "function"])
def test_an_injection_in_a_tool_result_is_caught_there(served: Served, role: str) -> None:
    with served.sdk(CONTEXT) as sdk:
        email = _clean_email(sdk)
        planted = f"{email['context']}\n\n{_attack()}"
        error = _blocked(sdk, _request(planted, email["question"], role=role))
    _assert_caught_on_the_tool_result(served, error)


@pytest.mark.parametrize(
    ("position", "kind", "category"),
    [
        ("start", "code", "Keylogging"),
        ("middle", "text", "Base Encoding"),
        ("end", "text", "Reverse Text"),
    ],
)
def test_a_planted_test_attack_is_caught_wherever_it_sits(
    served: Served, position: str, kind: str, category: str
) -> None:
    with served.sdk(CONTEXT) as sdk:
        email = _clean_email(sdk, 3)
        planted = plant(email["context"], _attack(kind, category), position)
        error = _blocked(sdk, _request(planted, email["question"]))
    _assert_caught_on_the_tool_result(served, error)


def test_the_rule_reads_tool_results_only(served: Served) -> None:
    """The same sentence typed by the user is no indirect injection: ``roles: [tool]``."""
    with served.sdk(CONTEXT) as sdk:
        email = _emails()[0]
        question = f"{email['question']} {_attack()}"
        answer = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=_request(email["context"], question)
        )
    record = served.gateway.record(answer.headers["x-request-id"])
    assert not [o for o in record["decision"]["outcomes"] if o["rule"] == "injection"]


def _assert_caught_on_the_tool_result(served: Served, error: openai.BadRequestError) -> None:
    assert error.code == "policy_violation"
    assert error.body["rule"] == "injection"  # type: ignore[index]
    record = served.gateway.record(error.response.headers["x-request-id"])
    assert record["status"] == "blocked"
    (found,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "injection"]
    assert found["enforced"] == "block"
    assert {e["message"] for e in found["evidence"]} == {TOOL_MESSAGE}
