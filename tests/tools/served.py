"""What the tool-scope tests share: the gateway and its upstream, the SDK on a context, the
tools a bank's agent declares, and what a record's decision says about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from tests.servers import Gateway, Upstream


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
