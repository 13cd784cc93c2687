"""One gateway for a Responses test module: two backends on the session's mock upstream, one
serving the Responses API itself (``responses: native``) and one translated, and contexts
whose policies each test reads (rules, tool scope, record content)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Upstream, serving_gateway

RULES: list[dict[str, Any]] = [
    {"id": "no-forbidden", "stage": "input", "why": "Refused.",
     "detect": {"keywords": ["forbidden phrase"]}, "action": "block"},
    {"id": "polite", "stage": "input", "why": "Refused politely.",
     "detect": {"keywords": ["refuse me politely"]}, "action": "block",
     "block_as": "answer", "message": "I can only help with test matters."},
    {"id": "email-in", "stage": "input", "why": "No addresses upstream.",
     "detect": {"pii": ["email"]}, "action": "redact"},
    {"id": "phone-out", "stage": "output", "why": "No phone numbers shown.",
     "detect": {"pii": ["phone"]}, "action": "redact"},
]
TOOLS = {
    "allow": [
        {"name": "lookup"},
        {"name": "transfer", "arguments": {
            "type": "object", "properties": {"amount": {"type": "number", "maximum": 100}},
            "required": ["amount"]}},
    ],
    "on_declared": "remove",
    "on_call": "block",
    "refusal": "That tool call is not allowed here.",
}
MODELS = ["chat-model", "native-model"]


def policy(context: str, **extra: Any) -> dict[str, Any]:
    return {
        "context": context,
        "purpose": "Responses API tests.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": MODELS, "default": "chat-model"},
        **extra,
    }


POLICIES = {
    "resp-context": policy("resp-context", rules=RULES, tools=TOOLS),
    "other-context": policy("other-context"),
    "redacted-context": policy("redacted-context", rules=RULES, record={"content": "redacted"}),
    "none-context": policy("none-context", record={"content": "none"}),
    "limited-context": policy("limited-context", limits={"max_messages": 4}, rules=[
        {"id": "email-anywhere", "stage": "input", "why": "No addresses upstream.",
         "detect": {"pii": ["email"]}, "roles": ["system", "user", "tool"], "action": "redact"}]),
}


@dataclass
class ResponsesGateway:
    url: str
    keys: dict[str, str]
    upstream: Upstream
    folder: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def sdk(self, context: str = "resp-context") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.v1, api_key=self.keys[context], max_retries=0)

    def post(self, body: dict[str, Any], context: str = "resp-context") -> httpx.Response:
        return httpx.post(f"{self.v1}/responses", json=body, timeout=30,
                          headers={"authorization": f"Bearer {self.keys[context]}"})

    def record(self, request_id: str) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + 10
        while True:
            response = httpx.get(f"{self.url}/admin/exchanges/{request_id}",
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            if response.status_code == 200:
                found: dict[str, Any] = response.json()
                return found
            assert response.status_code == 404 and time.monotonic() < deadline, response.text
            time.sleep(0.05)


@contextmanager
def responses_gateway(upstream: Upstream, folder: Path) -> Iterator[ResponsesGateway]:
    """The gateway on ``folder`` (its config, policies and SQLite database); a second one on
    the same folder is another process on the same records."""
    policies = folder / "policies"
    policies.mkdir(exist_ok=True)
    for context, text in POLICIES.items():
        (policies / f"{context}.yaml").write_text(yaml.safe_dump(text))
    backend = {"base_url": f"{upstream.url}/v1", "api_key_env": "MOCK_UPSTREAM_KEY",
               "timeouts": {"connect": 2, "response": 10, "first_byte": 2.0, "idle": 5}}
    config = {
        "backends": {"chat": backend, "native": {**backend, "responses": "native"}},
        "models": {"chat-model": {"backend": "chat", "model": "mock-small"},
                   "native-model": {"backend": "native", "model": "mock-small"}},
        "policies_dir": str(policies),
        "recording": {"spill_dir": str(folder / "spill")},
        "database_url": f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "upstream": {"retry": {"attempts": 1}, "health": {"failures": 1_000_000}},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"MOCK_UPSTREAM_KEY": UPSTREAM_SECRET, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
           "GATEWAY_DATABASE_URL": None}
    with serving_gateway(path, env, list(POLICIES)) as (url, keys):
        yield ResponsesGateway(url, keys, upstream, folder)
