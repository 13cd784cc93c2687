"""Tool calls in the export formats: kept where the format carries them (OpenAI, TRL, KTO), in
each one's documented shape; an HH-RLHF record is never a flattened tool conversation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from gateway.export.formats import NO_TOOLS_IN_HH, records, why_skipped
from gateway.export.rows import PreferenceRow
from gateway.review.data import answer_calls, offered_tools

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
CALL = {"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": '{"c": "Oslo"}'}}  # noqa: E501
PROMPT: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Oslo, then Bergen?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_w", "content": "3 C"},
    # a legacy function call and its result, read by name
    {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
    {"role": "function", "name": "weather", "content": "5 C"},
]
ANSWER_CALL = {"id": "call_x", "type": "function", "function": {"name": "weather", "arguments": "{bad"}}  # noqa: E501


def row(**changes: Any) -> PreferenceRow:
    base = PreferenceRow(
        row_id="t1", exchange_id="ex-t", context="c", queue="q", prompt=PROMPT,
        original="", preferred="Oslo 3 C, Bergen 5 C.", preferred_source="rewrite",
        acceptable=False, severity=None, policy_revision="p", rule_ids=["tools.call"],
        reason="flagged", guideline_revision=None, guideline_path=None,
        reviewer_pseudonym="r", judged_by="human", agreement=None,
        judged_at=datetime(2026, 12, 1, tzinfo=UTC), redacted=False, tools=TOOLS,
        original_calls=[ANSWER_CALL],
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_openai_keeps_calls_results_and_tools() -> None:
    ((_, record),) = records("openai", row())
    assert record["input"] == {
        "messages": [
            PROMPT[0],
            {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_w", "content": "3 C"},
            {"role": "assistant", "function_call": {"name": "weather", "arguments": "{}"}},
            {"role": "function", "name": "weather", "content": "5 C"},
        ],
        "tools": TOOLS,
        "parallel_tool_calls": True,
    }  # fmt: skip
    assert record["preferred_output"] == [
        {"role": "assistant", "content": "Oslo 3 C, Bergen 5 C."}
    ]
    # an answer that only called: no empty text, the call as made (arguments as sent)
    assert record["non_preferred_output"] == [{"role": "assistant", "tool_calls": [ANSWER_CALL]}]


def test_trl_and_kto_carry_calls_as_chat_templates_read_them() -> None:
    ((_, trl),) = records("trl", row())
    assert trl["prompt"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"c": "Oslo"}}}],  # noqa: E501
    }
    assert trl["prompt"][2] == {"role": "tool", "name": "weather", "content": "3 C"}
    assert trl["prompt"][4] == {"role": "tool", "name": "weather", "content": "5 C"}
    # arguments that are not JSON stay the text they were
    assert trl["rejected"][0]["tool_calls"][0]["function"]["arguments"] == "{bad"
    assert trl["tools"] == TOOLS
    kto = dict(records("kto", row()))
    assert kto["t1"]["completion"] == trl["rejected"] and kto["t1"]["label"] is False
    assert kto["t1"]["prompt"] == trl["prompt"] and kto["t1"]["tools"] == TOOLS
    assert "tools" not in dict(records("trl", row(tools=[])))["t1"]  # nothing added


def test_hh_skips_any_tool_conversation_and_says_why() -> None:
    answer_calls = row(prompt=PROMPT[:1])  # only the answer called
    prompt_calls = row(original="Cold.", original_calls=[])  # only the prompt has calls
    for tooled in (row(), answer_calls, prompt_calls):
        assert records("hh", tooled) == []
        assert why_skipped("hh", tooled) == NO_TOOLS_IN_HH
    plain = row(prompt=PROMPT[:1], original="Cold.", original_calls=[])
    assert records("hh", plain) and why_skipped("hh", plain) is None


def _transfer(n: int, amount: int) -> dict[str, Any]:
    arguments = f'{{"amount": {amount}}}'
    function = {"name": "transfer", "arguments": arguments}
    return {"id": f"c{n}", "type": "function", "function": function}


def test_an_export_leaves_out_the_calls_the_policy_blocked() -> None:
    """The record keeps the backend's answer; the export carries what the client got."""
    calls = [_transfer(0, 50), _transfer(1, 5000)]
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": calls}}]}
    evidence = {"message": 0, "start": 0, "end": 0, "label": "bad_arguments:transfer", "part": 1}
    blocked = {"rule": "tools.call", "enforced": "block", "evidence": [evidence]}
    assert answer_calls(response, {"outcomes": [blocked]}) == calls[:1]
    flagged = {**blocked, "enforced": "flag"}
    assert answer_calls(response, {"outcomes": [flagged]}) == calls
    unplaced = {**blocked, "evidence": [{**evidence, "part": None}]}  # a record before positions
    assert answer_calls(response, {"outcomes": [unplaced]}) == []


def test_legacy_functions_are_offered_tools_less_those_removed() -> None:
    functions = [{"name": "weather"}, {"name": "wipe"}]
    removed = {"message": 1, "start": 0, "end": 0, "label": "out_of_scope:wipe"}
    declared = {"rule": "tools.declared", "enforced": "redact", "evidence": [removed]}
    offered = offered_tools({"functions": functions}, {"outcomes": [declared]})
    assert offered == [{"type": "function", "function": {"name": "weather"}}]
