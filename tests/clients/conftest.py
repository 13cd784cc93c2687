"""One gateway for the real-client tests: a context whose policy scopes tools, in front of a
mock upstream whose script makes a model call a tool it was never offered. The backend is
reached two ways: ``test-small`` through the gateway's Responses translation, ``native-small``
through the mock's own ``/v1/responses``. Nothing leaves 127.0.0.1: the frameworks' tracing
is turned off before they are imported."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import gateway_config
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, scripted_upstream, serving_gateway

# before any framework is imported: no trace, no telemetry, no hub
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
os.environ.pop("LANGCHAIN_API_KEY", None)
os.environ.pop("LANGSMITH_API_KEY", None)

CONTEXT = "agent-tools"
#: what the mock answers when a user text holds it: a call of a tool it was not offered
ROGUE = "CLIENTS-ROGUE-CALL"
SCRIPT = {"rules": [{"contains": ROGUE, "tool_calls": [{"name": "delete_account"}]}]}
POLICY: dict[str, Any] = {
    "context": CONTEXT,
    "purpose": "An assistant that looks up the weather and may move small sums to friends.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small", "native-small"]},
    "tools": {
        "allow": [
            "get_weather",
            {
                "name": "transfer",
                "arguments": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "number", "maximum": 100},
                        "recipient": {"enum": ["alice", "bob"]},
                    },
                    "required": ["amount", "recipient"],
                },
            },
            "extract_*",  # the function-calling form of structured output
            "Person",  # langchain names its structured-output tool after the model
        ],
        "on_declared": "remove",
        "on_call": "block",
        "refusal": "I can't use that tool here.",
    },
}


class Captured:
    """The gateway's x-request-id of every answer a client got: its records to read."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def hook(self, response: httpx.Response) -> None:
        request_id = response.headers.get("x-request-id")
        if request_id:
            self.ids.append(request_id)

    async def async_hook(self, response: httpx.Response) -> None:
        self.hook(response)


@pytest.fixture(scope="session")
def agent_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("clients")
    policies = folder / "policies"
    policies.mkdir()
    (policies / f"{CONTEXT}.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'clients.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with scripted_upstream(folder, SCRIPT) as upstream:
        config = gateway_config(upstream, folder, policies)
        _add_native_backend(config)
        with serving_gateway(config, env, [CONTEXT]) as (url, keys):
            yield Gateway(url, keys[CONTEXT], env, config, "sqlite", keys, policies)


def _add_native_backend(config: Path) -> None:
    """The same mock as a backend that speaks the Responses API itself."""
    data = yaml.safe_load(config.read_text())
    native = {**data["backends"]["mock"], "responses": "native"}
    data["backends"]["mock-native"] = native
    data["models"]["native-small"] = {"backend": "mock-native", "model": "mock-small"}
    config.write_text(yaml.safe_dump(data))


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture(scope="session")
def outside() -> list[str]:
    """Every address this process connects to or looks up that is not loopback (an audit
    hook, installed once: hooks cannot be removed, so it only notes)."""
    seen: list[str] = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect" and isinstance(args[1], tuple):
            host = str(args[1][0])
        elif event == "socket.getaddrinfo":
            host = str(args[0])
        else:
            return
        if host not in LOOPBACK:
            seen.append(f"{event} {host}")

    sys.addaudithook(hook)
    return seen


@pytest.fixture(autouse=True)
def only_loopback(outside: list[str]) -> Iterator[None]:
    """No client test reaches past 127.0.0.1: no tracing, telemetry or hub call."""
    before = len(outside)
    yield
    assert outside[before:] == [], "left loopback"


@pytest.fixture
def captured() -> Captured:
    return Captured()


def outcomes(record: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    """The decision's outcomes of one rule (``tools.declared``, ``tools.call``)."""
    decision = record.get("decision") or {}
    return [o for o in decision.get("outcomes", []) if o["rule"] == rule]


def labels(record: dict[str, Any], rule: str) -> list[str]:
    return [e["label"] for o in outcomes(record, rule) for e in o["evidence"]]
