"""Servers in this process, on loopback ports, each in a thread of its own: the gateway's app
(so a test can hand it an in-memory span exporter) and a scripted mock upstream. Both are real
HTTP servers (uvicorn): the openai SDK talks to them as to any other."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.mock import MockUpstream, load_script
from tests.databases import make_keys, upgrade
from tests.servers import free_port

TESTS = Path(__file__).resolve().parent.parent

#: the upstream's script: a 500 on the first FLAKY request only (a retry then succeeds)
SCRIPT = {
    "rules": [
        {"contains": "FLAKY", "fault": {"status": 500, "times": 1}},
        {"contains": "capital of France", "reply": "The capital of France is Paris."},
        {"contains": "SLOWLY", "token_delay": 0.02, "reply": "one two three four five six"},
    ]
}


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port until the block ends: its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def threaded(server: HTTPServer) -> Iterator[str]:
    """A standard library HTTP server answering on its own thread until the block ends: its
    URL (a receiver the gateway exports to)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scripted_upstream(folder: Path) -> Iterator[str]:
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump(SCRIPT))
    with serving(MockUpstream(load_script(path))) as url:
        yield url


@dataclass
class Traced:
    """A gateway whose spans go to ``exporter``: its URL, its keys by context (``key``:
    test-context's) and its database file."""

    url: str
    keys: dict[str, str]
    database: Path
    exporter: InMemorySpanExporter

    @property
    def key(self) -> str:
        return self.keys["test-context"]

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def trace_id_of(self, request_id: str) -> str | None:
        return trace_id_of(self.database, request_id)

    def spans(self, trace_id: str, count: int, timeout: float = 10.0) -> list[ReadableSpan]:
        """The trace's spans, once ``count`` of them were exported (no more arrive after)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                s
                for s in self.exporter.get_finished_spans()
                if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
            ]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} spans: {[s.name for s in found]}")
            time.sleep(0.02)


def trace_id_of(database: Path, request_id: str, timeout: float = 10.0) -> str | None:
    """The trace id an exchange's record says, once the recorder wrote it."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(database) as db:
            found = db.execute(
                "SELECT trace_id FROM exchanges WHERE id = ?", (request_id,)
            ).fetchone()
        if found is not None:
            value: str | None = found[0]
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no record of {request_id}")
        time.sleep(0.02)


def gateway_config(folder: Path, upstream: str, **fields: Any) -> GatewayConfig:
    """A gateway on a fresh SQLite database (migrated) with the tests' policies: test-small
    and test-large on the scripted upstream, dead-model on a port nobody listens on, two
    tries per request."""
    policies = folder / "policies"
    shutil.copytree(TESTS / "policies", policies)
    url = f"sqlite+aiosqlite:///{folder / 'situate.db'}"
    upgrade(url)
    raw: dict[str, Any] = {
        "database_url": url,
        "backends": {
            "mock": {"base_url": f"{upstream}/v1", "timeouts": {"connect": 2, "response": 10}},
            "dead": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeouts": {"connect": 1}},
        },
        "models": {
            "test-small": {"backend": "mock", "model": "mock-small"},
            "test-large": {"backend": "mock", "model": "mock-large"},
            "dead-model": {"backend": "dead", "model": "anything"},
        },
        "policies_dir": str(policies),
        "recording": {"spill_dir": str(folder / "spill")},
        "audit": {
            "keys_dir": str(folder / "audit"),
            "checkpoint_dir": str(folder / "audit" / "checkpoints"),
        },
        "upstream": {
            "retry": {"attempts": 2, "backoff_base": 0, "backoff_max": 0},
            "health": {"failures": 1_000_000},
        },
        **fields,
    }
    return GatewayConfig.model_validate(raw)


@contextmanager
def traced_gateway(
    config: GatewayConfig, exporter: SpanExporter | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """The gateway served with ``exporter`` (None: what the config and OTEL_* say): its URL
    and its keys of test-context (rules) and plain-context (none)."""
    keys = make_keys(config.database_url, ("test-context", "plain-context"))
    with serving(create_app(config, span_exporter=exporter)) as url:
        yield url, keys


def database_file(config: GatewayConfig) -> Path:
    return Path(config.database_url.removeprefix("sqlite+aiosqlite:///"))


def by_name(spans: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.name.startswith(prefix)), key=lambda s: s.start_time or 0
    )
