"""What the tool-scope tests share: their contexts' policies and the upstream's script (served by
the session's scoped gateway, tests/scoped.py), the gateway and its upstream, the SDK on a
context, the tools a bank's agent declares, and what a record's decision says about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from tests.servers import Gateway, Upstream

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
CONTEXTS = {
    "tools-remove": f"tools:\n{SCOPE}  refusal: That tool is not available here.\n",
    "tools-refuse": f"tools:\n{SCOPE}  on_declared: refuse\n",
    "tools-flag": f"tools:\n{SCOPE}  on_call: flag\n  review: tool-review\n",
    # the same for the stream tests: their flagged calls do not wait in the queue the whole
    # answers' test claims from
    "tools-flag-stream": f"tools:\n{SCOPE}  on_call: flag\n  review: tool-review\n",
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
GUIDELINES = {"triage.md": "# Triage\nJudge the tool call.\n"}


@dataclass(frozen=True)
class Served:
    gateway: Gateway
    upstream: Upstream

    def sdk(self, context: str) -> openai.OpenAI:
        key = self.gateway.keys[context]
        return openai.OpenAI(base_url=self.gateway.v1, api_key=key, max_retries=0)


def tool(name: str, **properties: Any) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


#: what a bank's agent offers its model: two lookups, a transfer, and one tool out of scope
TOOLS = [
    tool("lookup_balance", account={"type": "string"}),
    tool("delete_account", account={"type": "string"}),
    tool("transfer", amount={"type": "number"}, recipient={"type": "string"}),
    tool("lookup_card", last4={"type": "string"}),
]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def outcome(record: dict[str, Any], rule: str) -> dict[str, Any] | None:
    """The outcome a rule left on the record's decision, if any."""
    found = [o for o in record["decision"]["outcomes"] if o["rule"] == rule]
    assert len(found) <= 1, found
    return found[0] if found else None


def labels(found: dict[str, Any] | None) -> list[tuple[int, str]]:
    assert found is not None
    return [(e["message"], e["label"]) for e in found["evidence"]]
