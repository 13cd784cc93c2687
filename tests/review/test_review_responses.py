"""Review reads every endpoint as chat (``records.shapes.as_chat``): a Responses exchange that
an input rule flags is shown to reviewers as messages and choices, its alternative is asked
as a chat completion from that view, and its judgment exports like a chat exchange's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.review.test_review import _alternative_exchange
from tests.reviewing import Reviewer, item_of, judgment
from tests.servers import Gateway

CONTEXT, QUEUE = "test-context", "triage"


@pytest.fixture(scope="module")
def sdk(sqlite_gateway: Gateway) -> Any:
    with openai.OpenAI(
        base_url=sqlite_gateway.v1, api_key=sqlite_gateway.key, max_retries=0
    ) as client:
        yield client


def test_a_responses_exchange_is_reviewed_as_chat(
    sqlite_gateway: Gateway, sdk: openai.OpenAI, tmp_path: Path
) -> None:
    gateway = sqlite_gateway
    raw = sdk.responses.with_raw_response.create(
        model="test-small", instructions="Be brief.", input="flag me, a Responses question"
    )
    answer = raw.parse().output_text
    exchange_id = raw.headers["x-request-id"]
    ida = Reviewer(gateway, "Ida", queues=((CONTEXT, QUEUE),))
    item = item_of(ida, CONTEXT, QUEUE, exchange_id)
    assert item["rule_ids"] == ["flag-it"]

    shown = item["exchange"]
    assert shown["endpoint"] == "responses"
    assert shown["request"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "flag me, a Responses question"},
    ]
    assert shown["response"]["choices"][0]["message"]["content"] == answer
    assert shown["recorded"]["request"]["input"] == "flag me, a Responses question"
    assert shown["recorded"]["response"]["object"] == "response"
    # the evidence lines up with the view: message 1 is the user's, where 'flag me' is
    (flagged,) = [o for o in shown["decision"]["outcomes"] if o["rule"] == "flag-it"]
    (evidence,) = flagged["evidence"]
    text = shown["request"]["messages"][evidence["message"]]["content"]
    assert text[evidence["start"] : evidence["end"]].lower() == "flag me"

    # the alternative: the view asked of another model as a chat completion
    assert item["alternative"]["model"] == "test-large"
    assert item["alternative"]["content"].endswith("You said: flag me, a Responses question")
    made = _alternative_exchange(gateway, item["id"])
    assert made["endpoint"] == "chat.completions"
    assert made["request_body"]["messages"] == shown["request"]["messages"]

    rewrite = "A brief answer."
    done = ida.post(f"/items/{item['id']}/judgments", judgment(item, rewrite=rewrite))
    assert done.status_code == 201, done.text
    rows = _exported(gateway, tmp_path, "openai")
    (row,) = [r for r, p in rows if p["exchange_id"] == exchange_id]
    assert row["input"]["messages"] == shown["request"]["messages"]
    assert row["preferred_output"] == [{"role": "assistant", "content": rewrite}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": answer}]


def _exported(
    gateway: Gateway, tmp_path: Path, fmt: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = tmp_path / fmt
    done = gateway.command(
        "export", "preferences", "--format", fmt, "--context", CONTEXT,
        "--out", str(out), "--by", "tests",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = (out / "data.jsonl").read_text().splitlines()
    sidecar = (out / "provenance.jsonl").read_text().splitlines()
    return [(json.loads(d), json.loads(p)) for d, p in zip(data, sidecar, strict=True)]


def test_a_completions_exchange_is_reviewed_as_chat(
    sqlite_gateway: Gateway, sdk: openai.OpenAI
) -> None:
    gateway = sqlite_gateway
    raw = sdk.completions.with_raw_response.create(
        model="test-small", prompt=["flag me, a legacy prompt", "and a second"]
    )
    texts = [c.text for c in raw.parse().choices]
    exchange_id = raw.headers["x-request-id"]
    ida = Reviewer(gateway, "Ida", queues=((CONTEXT, QUEUE),))
    item = item_of(ida, CONTEXT, QUEUE, exchange_id)
    shown = item["exchange"]
    assert shown["endpoint"] == "completions"
    assert shown["request"]["messages"] == [
        {"role": "user", "content": "flag me, a legacy prompt"},
        {"role": "user", "content": "and a second"},
    ]
    assert [c["message"]["content"] for c in shown["response"]["choices"]] == texts
    assert shown["recorded"]["response"]["object"] == "text_completion"
    (flagged,) = [o for o in shown["decision"]["outcomes"] if o["rule"] == "flag-it"]
    assert [e["message"] for e in flagged["evidence"]] == [0]
    # the alternative: the prompts as one chat conversation, asked of the other model
    made = _alternative_exchange(gateway, item["id"])
    assert made["request_body"]["messages"] == shown["request"]["messages"]
    assert item["alternative"]["content"].endswith("You said: and a second")
    assert ida.post(f"/items/{item['id']}/skip").status_code == 200
