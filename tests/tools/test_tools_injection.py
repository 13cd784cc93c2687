"""Tool results are inputs: an instruction planted in an e-mail a tool fetched (BIPIA's public
attacks inside BIPIA's e-mails) is caught by the context's injection rule when it comes back
as a ``tool`` message (or a legacy ``function`` message), like one the user typed, and the
evidence points at that message."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

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


def _attack() -> str:
    attacks = json.loads(shared_file("bipia/text_attack_test.json").read_text())
    first: str = attacks["Scams & Fraud"][0]
    return first


def _clean_email(sdk: openai.OpenAI) -> dict[str, str]:
    """The first of BIPIA's e-mails the rule lets through as it is (the control)."""
    for email in _emails()[:20]:
        try:
            sdk.chat.completions.create(
                model="test-small", messages=_request(email["context"], email["question"])
            )
        except openai.BadRequestError:
            continue
        return email
    raise AssertionError("the injection rule stopped every clean e-mail")


@pytest.mark.parametrize("role", ["tool", "tool-parts", "function"])
def test_an_injection_in_a_tool_result_is_caught_there(served: Served, role: str) -> None:
    with served.sdk(CONTEXT) as sdk:
        email = _clean_email(sdk)
        planted = f"{email['context']}\n\n{_attack()}"
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(
                model="test-small", messages=_request(planted, email["question"], role=role)
            )
    error = caught.value
    assert error.code == "policy_violation"
    assert error.body["rule"] == "injection"  # type: ignore[index]
    record = served.gateway.record(error.response.headers["x-request-id"])
    assert record["status"] == "blocked"
    (found,) = [o for o in record["decision"]["outcomes"] if o["rule"] == "injection"]
    assert found["enforced"] == "block"
    assert {e["message"] for e in found["evidence"]} == {TOOL_MESSAGE}
