"""The chat view of Responses and completions records (gateway/records/shapes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.pipeline.responses.request import checked
from gateway.policy.engine import message_texts
from gateway.records.shapes import as_chat

REQUEST = {
    "model": "m",
    "instructions": "Be brief.",
    "metadata": {"secret": "not in the view"},
    "tools": [
        {"type": "function", "name": "lookup", "parameters": {"type": "object"}},
        {"type": "web_search"},
    ],
    "input": [
        {"role": "user", "content": "hello"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/i.png", "detail": "low"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ],
}


def _response(
    output: list[dict[str, Any]], status: str = "completed", reason: str | None = None
) -> dict[str, Any]:
    details = {"reason": reason} if reason else None
    return {
        "id": "resp_1",
        "object": "response",
        "model": "m",
        "status": status,
        "incomplete_details": details,
        "output": output,
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    }


def _message(*texts: str) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": t, "annotations": []} for t in texts]
    return {"type": "message", "role": "assistant", "id": "msg_1", "content": parts}


def test_a_responses_request_is_one_message_per_item_after_the_instructions() -> None:
    view, _ = as_chat("responses", REQUEST, None)
    messages = view["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "user", "assistant", "tool", "assistant"]
    assert messages[0]["content"] == "Be brief."
    assert messages[2]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
    ]
    assert messages[3]["tool_calls"] == [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    ]
    assert messages[4] == {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert messages[5]["content"] is None and messages[5]["item"]["type"] == "reasoning"
    assert view["tools"][0] == {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}},
    }
    assert view["tools"][1] == {"type": "web_search"}
    assert "metadata" not in view and view["model"] == "m"
    texts = [(r.message, r.part, r.text) for r in message_texts(messages)]
    assert texts == [(0, None, "Be brief."), (1, None, "hello"), (2, 0, "look"), (4, None, "42")]


def test_a_string_input_is_one_user_message() -> None:
    view, _ = as_chat("responses", {"model": "m", "input": "hi"}, None)
    assert view["messages"] == [{"role": "user", "content": "hi"}]


def test_a_response_is_one_choice_per_output_text_with_calls_on_the_last() -> None:
    call = {"type": "function_call", "id": "fc_1", "call_id": "c9", "name": "f", "arguments": "{}"}
    _, answer = as_chat("responses", {}, _response([_message("a", "b"), call]))
    choices = answer["choices"]
    assert [c["message"]["content"] for c in choices] == ["a", "b"]
    assert "tool_calls" not in choices[0]["message"]
    assert choices[1]["message"]["tool_calls"][0]["id"] == "c9"
    assert {c["finish_reason"] for c in choices} == {"tool_calls"}
    assert answer["id"] == "resp_1" and answer["usage"]["total_tokens"] == 7


def test_calls_without_text_are_one_choice_without_content() -> None:
    call = {"type": "function_call", "id": "fc_1", "call_id": "c9", "name": "f", "arguments": "{}"}
    _, answer = as_chat("responses", {}, _response([call]))
    assert len(answer["choices"]) == 1
    assert answer["choices"][0]["message"]["content"] is None


def test_finish_reasons_follow_the_status() -> None:
    for status, reason, finish in (
        ("completed", None, "stop"),
        ("incomplete", "max_output_tokens", "length"),
        ("incomplete", "content_filter", "content_filter"),
    ):
        _, answer = as_chat("responses", {}, _response([_message("x")], status, reason))
        assert answer["choices"][0]["finish_reason"] == finish


def test_completions_prompts_and_texts() -> None:
    request = {"model": "m", "prompt": ["one", "two"], "n": 1}
    completion = {"id": "cmpl", "choices": [{"index": 0, "text": "out", "finish_reason": "stop"}]}
    view, answer = as_chat("completions", request, completion)
    assert view["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ]
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "out"}
    assert "text" not in answer["choices"][0]
    single, _ = as_chat("completions", {"prompt": "solo"}, None)
    assert single["messages"] == [{"role": "user", "content": "solo"}]


def test_chat_and_unknown_endpoints_are_unchanged() -> None:
    body: dict[str, list[str]] = {"messages": []}
    answer: dict[str, list[str]] = {"choices": []}
    assert as_chat("chat.completions", body, answer) == (body, answer)
    assert as_chat("embeddings", body, answer) == (body, answer)
    assert as_chat("responses", "not json", None) == ("not json", None)


def test_every_tool_result_and_prompt_variable_is_read_as_input() -> None:
    phrase = "the forbidden phrase, ada@example.com"
    items = [
        {"type": "custom_tool_call", "call_id": "c1", "name": "grep", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": phrase},
        {"type": "local_shell_call_output", "call_id": "c2", "output": phrase},
        {"type": "computer_call_output", "call_id": "c3",
         "output": [{"type": "input_text", "text": phrase}]},
        {"type": "mcp_call", "id": "m1", "name": "read", "arguments": "{}", "output": phrase},
    ]
    variables = {"d": phrase, "e": {"type": "input_text", "text": phrase}}
    prompt = {"id": "pmpt_1", "variables": variables}
    view, _ = as_chat("responses", {"input": items, "prompt": prompt}, None)
    messages = view["messages"]
    assert [m["role"] for m in messages] == ["assistant", *["tool"] * 4, "user", "user"]
    assert messages[0]["tool_calls"][0]["function"] == {"name": "grep", "arguments": "x"}
    texts = [(r.message, r.role, r.text) for r in message_texts(messages)]
    assert texts == [(i, "tool", phrase) for i in range(1, 5)] + [
        (5, "user", phrase), (6, "user", phrase)
    ]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": "hi"}, {"type": "mystery"}]}, "input[1]"),
        ({"prompt": {"id": "p", "variables": {"f": {"type": "input_file", "file_id": "f"}}}},
         "prompt.variables.f"),
    ],
    ids=["conversation", "item-reference", "unknown-item", "file-variable"],
)
def test_input_no_rule_can_read_is_refused_on_every_path(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        checked({"model": "m", "input": "hi", **extra})
    assert (caught.value.param, caught.value.code) == (param, "unsupported_parameter")
    assert checked({"model": "m", "input": [{"type": "shell_call_output", "output": "ok"}]})


def test_redactions_go_back_into_every_tool_result_and_prompt_variable() -> None:
    """What the input rules redacted in the view goes into what a native backend is sent:
    any tool's result (not only a function's) and a stored prompt's variables."""
    from gateway.pipeline.responses.translate import redacted_items, redacted_prompt

    items = [
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "mail ada@example.com"},
        {"type": "mcp_call", "id": "m1", "name": "x", "output": "ada@example.com"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "ada@example.com"}]},
    ]
    viewed = [
        {"role": "tool", "content": "mail [email]"},
        {"role": "tool", "content": "[email]"},
        {"role": "tool", "content": [{"type": "text", "text": "[email]"}]},
    ]
    sent = redacted_items(items, viewed)
    assert [i["output"] for i in sent[:2]] == ["mail [email]", "[email]"]
    assert sent[2]["output"][0] == {"type": "input_text", "text": "[email]"}
    assert "ada@" not in str(sent)
    prompt = {"id": "p1", "variables": {"who": "ada@example.com", "n": {"type": "input_text",
              "text": "ada@example.com"}, "file": {"type": "input_file", "file_id": "f"}}}
    kept = redacted_prompt(prompt, [{"role": "user", "content": "[email]"},
                                    {"role": "user", "content": "[email]"}])
    assert kept["variables"]["who"] == "[email]"
    assert kept["variables"]["n"] == {"type": "input_text", "text": "[email]"}
    assert kept["variables"]["file"] == prompt["variables"]["file"]
