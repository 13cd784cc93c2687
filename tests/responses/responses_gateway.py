"""The Responses tests' gateway: the session's scoped gateway (tests/scoped.py), with two
backends on its mock upstream, one serving the Responses API itself (``responses: native``) and
one translated, and contexts whose policies each test reads (rules, tool scope, record content)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai

from tests.servers import ADMIN_TOKEN, Upstream

if TYPE_CHECKING:
    from tests.scoped import Scoped

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
    scoped: Scoped

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


def responses_gateway(scoped: Scoped) -> ResponsesGateway:
    """The scoped gateway (tests/scoped.py), which serves these contexts, as these tests call it."""
    return ResponsesGateway(scoped.gateway.url, scoped.keys, scoped.upstream, scoped.folder, scoped)


@contextmanager
def second_process(gw: ResponsesGateway) -> Iterator[ResponsesGateway]:
    """Another gateway process on the same config and records, with keys of its own."""
    from tests.scoped import another_process  # it imports this module's policies

    with another_process(gw.scoped, list(POLICIES)) as second:
        yield responses_gateway(second)
