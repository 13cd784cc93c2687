"""Shadow rules end to end, through the openai SDK, streaming and not: a shadow rule that fires is
recorded (and sent to review when it would flag), and nothing else happens."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import HERE
from tests.databases import make_keys, upgrade
from tests.reviewing import Reviewer, judgment, wait_for_item
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, Upstream, free_port, process
from tests.webpage import Browserless

CONTEXT = "shadow-context"
BROKEN = "shadow-broken"
SHADOW_IN = ["shadow-block-in", "shadow-redact-in", "shadow-route", "shadow-warn"]


def _rule(rule_id: str, stage: str, detect: dict[str, Any], action: str, **more: Any) -> Any:
    return {
        "id": rule_id,
        "stage": stage,
        "why": f"{rule_id} test",
        "detect": detect,
        "action": action,
        **more,
    }


def shadow_policy() -> dict[str, Any]:
    shadow = {"mode": "shadow"}
    return {
        "context": CONTEXT,
        "purpose": "Shadow rules under test.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ["test-small", "test-large"]},
        "rules": [
            _rule(
                "shadow-block-in",
                "input",
                {"keywords": ["shadow stop"]},
                "block",
                review="triage",
                **shadow,
            ),
            _rule("shadow-redact-in", "input", {"pii": ["email"]}, "redact", **shadow),
            _rule(
                "shadow-route",
                "input",
                {"keywords": ["think harder"]},
                "route",
                route_to="test-large",
                **shadow,
            ),
            _rule("shadow-warn", "input", {"keywords": ["warn me"]}, "warn", **shadow),
            _rule("enforced-flag", "input", {"keywords": ["flag me"]}, "flag", review="triage"),
            _rule(
                "shadow-block-out",
                "output",
                {"keywords": ["secret recipe"]},
                "block",
                review="triage",
                **shadow,
            ),
            _rule("shadow-redact-out", "output", {"keywords": ["flour"]}, "redact", **shadow),
        ],
        "review": {"sample_rate": 0, "queues": {"triage": {"guidelines": "guidelines/triage.md"}}},
    }


def broken_policy() -> dict[str, Any]:
    exploding = {"classifier": {"model": "tests.fixture_models:Exploding"}}
    return {
        "context": BROKEN,
        "purpose": "A shadow rule whose check always fails.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ["test-small"]},
        "rules": [
            _rule("shadow-exploding", "both", exploding, "block", mode="shadow"),
        ],
    }


@contextmanager
def serve(folder: Path, upstream: Upstream, policies: list[dict[str, Any]]) -> Iterator[Gateway]:
    """A gateway of its own (SQLite built by the migrations) serving ``policies``."""
    served = folder / "policies"
    served.mkdir()
    shutil.copytree(HERE / "policies" / "guidelines", served / "guidelines")
    for policy in policies:
        (served / f"{policy['context']}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    config = folder / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {
                    "mock": {"base_url": f"{upstream.url}/v1", "api_key_env": "MOCK_UPSTREAM_KEY"}
                },
                "models": {
                    "test-small": {"backend": "mock", "model": "mock-small"},
                    "test-large": {"backend": "mock", "model": "mock-large"},
                },
                "policies_dir": str(served),
                "recording": {"spill_dir": str(folder / "spill")},
            }
        )
    )
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    database = upgrade(env["GATEWAY_DATABASE_URL"])
    keys = make_keys(database, [policy["context"] for policy in policies])
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        first = keys[policies[0]["context"]]
        yield Gateway(f"http://127.0.0.1:{port}", first, env, config, "sqlite", keys, served)


@pytest.fixture(scope="module")
def shadowed(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("shadow")
    with serve(folder, upstream, [shadow_policy(), broken_policy()]) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def triager(shadowed: Gateway) -> Reviewer:
    return Reviewer(shadowed, "Sam", queues=((CONTEXT, "triage"),))


def sdk(gateway: Gateway, context: str = CONTEXT) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys[context], max_retries=0)


def ask(
    gateway: Gateway, text: str, *, stream: bool, context: str = CONTEXT
) -> tuple[str, str | None, dict[str, str]]:
    """The answer's text, its finish reason and the response headers, through the SDK."""
    messages: Any = [{"role": "user", "content": text}]
    with sdk(gateway, context) as client:
        if not stream:
            raw = client.chat.completions.with_raw_response.create(
                model="test-small", messages=messages
            )
            choice = raw.parse().choices[0]
            return choice.message.content or "", choice.finish_reason, dict(raw.headers)
        with client.chat.completions.with_streaming_response.create(
            model="test-small", messages=messages, stream=True
        ) as streamed:
            chunks = [c for c in streamed.parse() if c.choices]
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            return text, chunks[-1].choices[0].finish_reason, dict(streamed.headers)


def outcomes(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["rule"]: o for o in record["decision"]["outcomes"]}


def item_of(reviewer: Reviewer, exchange_id: str) -> dict[str, Any]:
    """The review item of an exchange, judging the others met on the way."""
    item = wait_for_item(reviewer, CONTEXT, "triage")
    while item["exchange_id"] != exchange_id:
        assert reviewer.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 201
        item = wait_for_item(reviewer, CONTEXT, "triage")
    return item


@pytest.mark.parametrize("stream", [False, True])
def test_shadow_input_rules_are_recorded_and_never_enforced(
    shadowed: Gateway, upstream: Upstream, stream: bool
) -> None:
    text = "shadow stop, flag me, think harder, warn me and write to jane.doe@example.com"
    answer, finish, headers = ask(shadowed, text, stream=stream)
    assert finish == "stop" and answer.endswith(text)  # not blocked, not redacted
    assert "x-situate-warning" not in headers
    request_id = headers["x-request-id"]
    sent = upstream.seen(request_id)["body"]
    assert sent["model"] == "mock-small"  # not routed
    assert sent["messages"][0]["content"] == text  # the email went upstream as written
    record = shadowed.record(request_id)
    decided = record["decision"]
    assert (decided["verdict"], decided["enforced"]) == ("flag", "flag")
    assert decided["flagged"] == ["enforced-flag"]
    assert decided["shadow"] == SHADOW_IN
    found = outcomes(record)
    for rule in SHADOW_IN:
        assert (found[rule]["mode"], found[rule]["enforced"]) == ("shadow", "shadow")
        assert found[rule]["evidence"]
    assert "mode" not in found["enforced-flag"]
    listed = shadowed.admin("/findings", rule="shadow-block-in", context=CONTEXT).json()["data"]
    row = next(f for f in listed if f["exchange_id"] == request_id)
    assert (row["action"], row["enforced"]) == ("block", "shadow")


@pytest.mark.parametrize("stream", [False, True])
def test_a_shadow_output_block_lets_the_answer_through_and_goes_to_review(
    shadowed: Gateway, triager: Reviewer, stream: bool
) -> None:
    answer, finish, headers = ask(shadowed, "RECIPE-FIRST please", stream=stream)
    assert (answer, finish) == ("The secret recipe is flour, water and salt.", "stop")
    request_id = headers["x-request-id"]
    record = shadowed.record(request_id)
    assert record["status"] == "ok"
    decided = record["decision"]
    assert (decided["verdict"], decided["enforced"], decided["flagged"]) == ("allow", "allow", [])
    assert decided["shadow"] == ["shadow-block-out", "shadow-redact-out"]
    block = outcomes(record)["shadow-block-out"]
    assert (block["enforced"], block["evidence"][0]["start"]) == ("shadow", 4)
    # Only a shadow rule fired, and it names a queue: the exchange is there to be judged.
    item = item_of(triager, request_id)
    assert (item["reason"], item["rule_ids"]) == ("flagged", ["shadow-block-out"])
    assert triager.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 201


def test_the_item_page_shows_a_shadow_finding_as_shadow(
    shadowed: Gateway, triager: Reviewer
) -> None:
    _, _, headers = ask(shadowed, "shadow stop and flag me", stream=False)
    item = item_of(triager, headers["x-request-id"])
    session = Browserless(shadowed, triager.token)
    try:
        page = session.http.get(f"/items/{item['id']}")
    finally:
        session.close()
    assert page.status_code == 200, page.text
    entries = {
        re.search(r"<code>([\w-]+)</code>", entry).group(1): entry  # type: ignore[union-attr]
        for entry in re.findall(r'<li id="rule-\d+">(.*?)</li>', page.text, re.S)
    }
    assert 'badge-shadow">shadow</span>' in entries["shadow-block-in"]
    assert "in shadow mode, would <strong>block</strong>" in entries["shadow-block-in"]
    assert "shadow" not in entries["enforced-flag"]
    assert "done: <strong>flag</strong>" in entries["enforced-flag"]
    assert 'class="hl hl-shadow"' in page.text


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_shadow_rule_never_fails_the_request(shadowed: Gateway, stream: bool) -> None:
    answer, finish, headers = ask(shadowed, "anything at all", stream=stream, context=BROKEN)
    assert finish == "stop" and answer.endswith("anything at all")
    record = shadowed.record(headers["x-request-id"])
    assert record["status"] == "ok"
    failed = [o for o in record["decision"]["outcomes"] if o["rule"] == "shadow-exploding"]
    assert {o["stage"] for o in failed} == {"input", "output"}
    for outcome in failed:
        assert "this model always fails" in outcome["error"]
        assert (outcome["mode"], outcome["enforced"]) == ("shadow", "shadow")
    assert record["decision"]["enforced"] == "allow"


def test_shadow_rules_on_embedding_inputs_are_recorded_only(
    shadowed: Gateway, upstream: Upstream
) -> None:
    text = "shadow stop and write to jane.doe@example.com"
    with sdk(shadowed) as client:
        raw = client.embeddings.with_raw_response.create(model="test-small", input=text)
    assert len(raw.parse().data) == 1  # not blocked
    request_id = raw.headers["x-request-id"]
    assert upstream.seen(request_id)["body"]["input"] == text  # not redacted
    record = shadowed.record(request_id)
    assert record["status"] == "ok"
    decided = record["decision"]
    assert (decided["verdict"], decided["enforced"]) == ("allow", "allow")
    assert decided["shadow"] == ["shadow-block-in", "shadow-redact-in"]
