"""The real-client tests' gateway: the session's scoped gateway (tests/scoped.py) on a context
whose policy scopes tools (tests/clients/served.py), in front of a mock upstream whose script
makes a model call a tool it was never offered. The backend is reached two ways:
``test-small`` through the gateway's Responses translation, ``native-small`` through the mock's
own ``/v1/responses``. Nothing leaves 127.0.0.1: the frameworks' tracing is turned off before
they are imported."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.served import CONTEXT, ROGUE
from tests.scoped import Scoped
from tests.servers import Gateway

__all__ = ["CONTEXT", "ROGUE", "Captured", "labels", "outcomes"]

# before any framework is imported: no trace, no telemetry, no hub
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
os.environ.pop("LANGCHAIN_API_KEY", None)
os.environ.pop("LANGSMITH_API_KEY", None)


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
def agent_gateway(scoped_gateway: Scoped) -> Gateway:
    """The scoped gateway on this suite's context: ``test-small`` through the gateway's
    Responses translation, ``native-small`` through the mock's own ``/v1/responses``."""
    return dataclasses.replace(scoped_gateway.gateway, key=scoped_gateway.keys[CONTEXT])


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
