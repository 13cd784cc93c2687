"""A tool exchange end to end through the consumers: a bank's agent calls a tool with arguments
out of scope (flagged for review), a reviewer reads the item page in a real browser (the tools
offered and the one removed, the earlier call and the result that answers it, the answer's call
with the scope's verdict), judges it, and the exports keep the calls in the shapes that carry
them (OpenAI, TRL) and say why HH-RLHF cannot."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from gateway.export.formats import NO_TOOLS_IN_HH
from tests.reviewing import Reviewer, item_of, judgment, wait_waiting
from tests.scoped import Scoped
from tests.servers import Gateway
from tests.web.test_web_browser import LOW_CONTRAST
from tests.web.tool_desk import CONTEXT, QUEUE
from tests.webpage import shot, sign_in

pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


def _tool(name: str, description: str, **properties: Any) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


TOOLS: Any = [
    _tool("lookup_balance", "The balance of an account.", account={"type": "string"}),
    _tool("delete_account", "Close an account for good.", account={"type": "string"}),
    _tool("transfer", "Send money.", amount={"type": "number"}, recipient={"type": "string"}),
]
MESSAGES: Any = [
    {"role": "user", "content": "What is my balance?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_bal1",
                "type": "function",
                "function": {"name": "lookup_balance", "arguments": '{"account":"main"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_bal1", "content": "Balance: 420 EUR"},
    {"role": "user", "content": 'Now call transfer {"amount": 500, "recipient": "eve"}'},
]


@pytest.fixture(scope="module")
def desk(scoped_gateway: Scoped) -> Gateway:
    """The session's scoped gateway (SQLite) on the desk's context."""
    return dataclasses.replace(scoped_gateway.gateway, key=scoped_gateway.keys[CONTEXT])


@pytest.fixture(scope="module")
def flagged(desk: Gateway) -> str:
    """The exchange: the model calls transfer with 500 (over the 100 allowed): flagged."""
    with openai.OpenAI(base_url=desk.v1, api_key=desk.key, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=MESSAGES, tools=TOOLS
        )
    (call,) = raw.parse().choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "transfer"  # flag passes the call on
    assert json.loads(call.function.arguments)["amount"] == 500
    return raw.headers["x-request-id"]


def test_the_item_page_shows_tool_calls_results_and_decisions(
    browser: Any, desk: Gateway, flagged: str
) -> None:
    rita = Reviewer(desk, "Rita", queues=((CONTEXT, QUEUE),))
    wait_waiting(rita, CONTEXT, QUEUE, 1)
    page = sign_in(browser, desk, rita.token)
    page.keyboard.press("1")
    page.wait_for_url(re.compile(r"/ui/items/"))

    offered = page.locator("#tools-offered").inner_text()
    assert "lookup_balance" in offered and "transfer" in offered
    assert re.search(r"delete_account.*not in this context's scope: redact", offered)
    calls = page.locator(".tool-call")
    assert calls.count() == 2  # the earlier turn's, and the answer's
    earlier = calls.nth(0).inner_text()
    assert "lookup_balance" in earlier and "call_bal1" in earlier
    assert '"account": "main"' in earlier  # pretty-printed
    result = page.locator("article.msg-tool")
    assert "The result of the call call_bal1: lookup_balance" in result.inner_text()
    assert "Balance: 420 EUR" in result.inner_text()
    answer = calls.nth(1).inner_text()
    assert "transfer" in answer and '"amount": 500' in answer
    assert "arguments break the tool's constraints: flag" in answer
    fired = page.locator("ol.rules").inner_text()
    assert "tools.call" in fired and "transfer: arguments break the tool's constraints" in fired
    assert "tools.declared" in fired and "delete_account: not in this context's scope" in fired
    assert page.evaluate(LOW_CONTRAST) == []
    shot(page, "item-tools")
    shown = re.search(r"/ui/items/([^/?]+)", page.url)
    assert shown is not None  # given back, for the export's judge to take
    assert rita.post(f"/items/{shown.group(1)}/skip").status_code == 200


def test_exports_keep_the_calls_where_the_format_carries_them(
    desk: Gateway, flagged: str, tmp_path: Path
) -> None:
    judge = Reviewer(desk, "Jo", queues=((CONTEXT, QUEUE),))
    item = item_of(judge, CONTEXT, QUEUE, flagged)
    assert sorted(item["rule_ids"]) == ["tools.call", "tools.declared"]
    rewrite = "I can only send up to 100 EUR; shall I send 100?"
    body = judgment(item, rewrite=rewrite)
    assert judge.post(f"/items/{item['id']}/judgments", body).status_code == 201
    out = {fmt: _export(desk, tmp_path, fmt) for fmt in ("openai", "trl")}

    (openai_row,) = out["openai"]
    messages = openai_row["input"]["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "lookup_balance",
        "arguments": '{"account":"main"}',
    }
    result = {"role": "tool", "tool_call_id": "call_bal1", "content": "Balance: 420 EUR"}
    assert messages[2] == result
    names = [t["function"]["name"] for t in openai_row["input"]["tools"]]
    assert names == ["lookup_balance", "transfer"]  # delete_account was removed: never seen
    assert openai_row["preferred_output"] == [{"role": "assistant", "content": rewrite}]
    (rejected,) = openai_row["non_preferred_output"][0]["tool_calls"]
    assert rejected["function"]["name"] == "transfer"
    assert json.loads(rejected["function"]["arguments"])["amount"] == 500

    (trl_row,) = out["trl"]
    result = {"role": "tool", "name": "lookup_balance", "content": "Balance: 420 EUR"}
    assert trl_row["prompt"][2] == result
    assert trl_row["prompt"][1]["tool_calls"][0]["function"]["arguments"] == {"account": "main"}
    assert trl_row["rejected"][0]["tool_calls"][0]["function"]["arguments"]["amount"] == 500
    assert [t["function"]["name"] for t in trl_row["tools"]] == names

    # HH-RLHF has no place for calls: not flattened, left out, and the export says why
    hh = _run(desk, tmp_path / "hh", "hh")
    assert hh.returncode != 0 and f"({NO_TOOLS_IN_HH}: 1)" in hh.stderr
    assert NO_TOOLS_IN_HH in (tmp_path / "hh" / "README.md").read_text()


def _run(desk: Gateway, folder: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    return desk.command(
        "export", "preferences", "--format", fmt, "--context", CONTEXT,
        "--out", str(folder), "--by", "tests",
    )  # fmt: skip


def _export(desk: Gateway, tmp_path: Path, fmt: str) -> list[dict[str, Any]]:
    folder = tmp_path / fmt
    done = _run(desk, folder, fmt)
    assert done.returncode == 0, done.stderr
    lines = (folder / "data.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
