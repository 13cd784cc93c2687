"""One gateway for the tool-scope suite (SQLite), with contexts of its own, in front of a mock
upstream scripted for what its deterministic tool rule does not do by itself: several calls in
one answer, arguments that are not JSON, a call of a tool the request never declared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import gateway_config
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, scripted_upstream, serving_gateway
from tests.tools.served import Served

HEAD = """\
context: {context}
purpose: Test tool-call scope through the gateway.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
review:
  queues:
    tool-review: {{guidelines: guidelines/triage.md}}
"""
#: the bank's tools: lookups, and transfers of at most 100 to a known recipient
SCOPE = """\
  allow:
    - "lookup_*"
    - name: transfer
      arguments:
        type: object
        properties:
          amount: {type: number, maximum: 100}
          recipient: {enum: [alice, bob]}
        required: [amount, recipient]
"""
TOOLS = {
    "tools-remove": f"tools:\n{SCOPE}  refusal: That tool is not available here.\n",
    "tools-refuse": f"tools:\n{SCOPE}  on_declared: refuse\n",
    "tools-flag": f"tools:\n{SCOPE}  on_call: flag\n  review: tool-review\n",
    "tools-warn": f"tools:\n{SCOPE}  on_call: warn\n",
    # tool scope beside an output rule that holds text back: both on the same stream
    "tools-guarded": f"""\
tools:\n{SCOPE}rules:
  - id: no-emails-out
    stage: output
    why: Addresses are not shown.
    detect: {{pii: [email]}}
    action: redact
""",
    # tool results are inputs: the tool-result model reads them (and only them)
    "tools-injection": """\
rules:
  - id: injection
    stage: input
    roles: [tool]
    why: Instructions planted in what a tool fetched are refused (indirect injection).
    detect: {classifier: {model: tool_injection, budget_ms: 20000, window: 8000}}
    action: block
""",
}
SCRIPT = {
    "rules": [
        {
            "contains": "PARALLEL",
            "tool_calls": [
                {"name": "lookup_balance", "arguments": {"account": "main"}},
                {"name": "transfer", "arguments": {"amount": 500, "recipient": "eve"}},
                {"name": "lookup_card", "arguments": {"last4": "4605"}},
            ],
        },
        {"contains": "NOT-JSON", "tool_calls": [{"name": "transfer", "arguments": "{amount: 5"}]},
        {"contains": "UNDECLARED", "tool_calls": [{"name": "delete_account", "arguments": {}}]},
    ]
}


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("tools")
    policies = folder / "policies"
    (policies / "guidelines").mkdir(parents=True)
    (policies / "guidelines" / "triage.md").write_text("# Triage\nJudge the tool call.\n")
    for context, section in TOOLS.items():
        (policies / f"{context}.yaml").write_text(HEAD.format(context=context) + section)
    with scripted_upstream(folder, SCRIPT) as upstream:
        config = gateway_config(upstream, folder, policies)
        env = {
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'tools.db'}",
            "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        with serving_gateway(config, env, list(TOOLS), cwd=Path(folder)) as (url, keys):
            gateway = Gateway(url, keys["tools-remove"], env, config, "sqlite", keys, policies)
            yield Served(gateway, upstream)
