"""An in-process gateway whose metrics an ``InMemoryMetricReader`` reads, in front of the
tests' mock upstream (a real process): the openai SDK calls it through Starlette's TestClient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
import yaml
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.clock import now
from gateway.config import GatewayConfig
from gateway.db.migrate import upgrade
from gateway.db.models import AuditChain, AuditCheckpoint
from gateway.deps import APP_STATE, AppState
from tests.inprocess import ADMIN, admin_key, eventually
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Upstream

CONTEXT = "metered-context"
LIMITED = "limited-context"

POLICY = {
    "context": CONTEXT,
    "purpose": "The metrics' tests.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small"]},
    "review": {"queues": {"triage": {"guidelines": "guidelines/triage.md"}}},
    "rules": [
        {
            "id": "no-forbidden",
            "stage": "input",
            "why": "Refused outright.",
            "detect": {"keywords": ["forbidden phrase"]},
            "action": "block",
        },
        {
            "id": "shadow-stop",
            "stage": "input",
            "why": "Would block, in shadow.",
            "detect": {"keywords": ["shadow stop"]},
            "action": "block",
            "mode": "shadow",
        },
        {
            "id": "flag-it",
            "stage": "input",
            "why": "A human looks.",
            "detect": {"keywords": ["flag me"]},
            "action": "flag",
            "review": "triage",
        },
    ],
}
LIMITED_POLICY = {
    "context": LIMITED,
    "purpose": "One request a minute.",
    "owner": "tests@situate.invalid",
    "audience": "the test suite",
    "models": {"allow": ["test-small"]},
    "limits": {"rate": {"requests_per_minute": 1}},
}


@dataclass
class MeteredGateway:
    client: TestClient
    state: AppState
    reader: InMemoryMetricReader
    keys: dict[str, str]

    def sdk(self, context: str = CONTEXT) -> openai.OpenAI:
        return openai.OpenAI(
            base_url="http://testserver/v1",
            api_key=self.keys[context],
            http_client=cast(httpx.Client, self.client),  # a TestClient is one
            max_retries=0,
        )

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Each data point of the metric: its attributes and the point."""
        return [(dict(p.attributes or {}), p) for p in _metric(self.reader, name).data.data_points]

    def unit(self, name: str) -> str:
        return str(_metric(self.reader, name).unit)


def _metric(reader: InMemoryMetricReader, name: str) -> Any:
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    return metric
    raise AssertionError(f"no metric {name}")


def metered_config(folder: Path, upstream: Upstream, **telemetry: Any) -> GatewayConfig:
    policies = folder / "policies"
    (policies / "guidelines").mkdir(parents=True)
    (policies / "guidelines" / "triage.md").write_text("# Triage\n\nJudge what you see.\n")
    for policy in (POLICY, LIMITED_POLICY):
        (policies / f"{policy['context']}.yaml").write_text(yaml.safe_dump(policy))
    url = f"sqlite+aiosqlite:///{folder / 'situate.db'}"
    upgrade(url)
    return GatewayConfig.model_validate(
        {
            "database_url": url,
            "backends": {
                "mock": {"base_url": f"{upstream.url}/v1", "api_key_env": "MOCK_UPSTREAM_KEY"}
            },
            "models": {"test-small": {"backend": "mock", "model": "mock-small"}},
            "policies_dir": str(policies),
            "recording": {"spill_dir": str(folder / "spill")},
            "audit": {
                "keys_dir": str(folder / "audit"),
                "checkpoint_dir": str(folder / "audit" / "checkpoints"),
            },
            "telemetry": telemetry,
            "upstream": {
                "retry": {"attempts": 2, "backoff_base": 0, "backoff_max": 0},
                "health": {"failures": 1_000_000},
            },
        }
    )


@contextmanager
def metered(config: GatewayConfig) -> Iterator[MeteredGateway]:
    reader = InMemoryMetricReader()
    app = create_app(config, metric_readers=[reader])
    with TestClient(app, raise_server_exceptions=False) as client:
        state = client.app_state[APP_STATE]
        assert isinstance(state, AppState)
        keys = {context: admin_key(client, context) for context in (CONTEXT, LIMITED)}
        yield MeteredGateway(client, state, reader, keys)


def traffic(served: MeteredGateway) -> list[str]:
    """One of each: a call, a stream, an upstream error retried, a block, a shadow hit, a
    flag, a limit's refusal; their request ids, once their records are written."""
    sdk, limited = served.sdk(), served.sdk(LIMITED)
    ids = [
        chat(sdk, "hello there"),
        chat(sdk, "hello stream", stream=True),
        chat(sdk, "FAULT-500 please"),
        chat(sdk, "a forbidden phrase"),
        chat(sdk, "shadow stop now"),
        chat(sdk, "flag me"),
        chat(limited, "first"),
        chat(limited, "second"),
    ]
    for request_id in ids:
        path = f"/admin/exchanges/{request_id}"
        eventually(partial(lambda p: served.client.get(p, headers=ADMIN).is_success, path))
    return ids


def chat(sdk: openai.OpenAI, text: str, **extra: Any) -> str:
    """One call; its request id, whatever the answer."""
    messages: Any = [{"role": "user", "content": text}]
    try:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=messages, **extra
        )
    except openai.APIStatusError as error:
        return str(error.response.headers["x-request-id"])
    if extra.get("stream"):
        for _ in raw.parse():
            pass
    return str(raw.headers["x-request-id"])


@contextmanager
def environment() -> Iterator[None]:
    """The admin token and the upstream's key, as a served gateway's environment has them."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
        env.setenv("MOCK_UPSTREAM_KEY", UPSTREAM_SECRET)
        env.delenv("OTEL_METRICS_EXPORTER", raising=False)
        yield


def audit_rows(served: MeteredGateway, chain_id: str, size: int, seconds_ago: float) -> None:
    """A chain of ``size`` entries and a checkpoint of it made ``seconds_ago``, as the chain
    and the checkpointer leave them (the gauges read only these rows)."""
    made = now() - timedelta(seconds=seconds_ago)
    sessions = served.state.services.sessions

    async def write() -> None:
        async with sessions.begin() as session:
            session.add(
                AuditChain(chain_id=chain_id, size=size, head="0" * 64, created_at=made,
                           updated_at=made)
            )  # fmt: skip
            session.add(
                AuditCheckpoint(chain_id=chain_id, size=size, root="0" * 64, note="n",
                                frontier=[], created_at=made)
            )  # fmt: skip

    assert served.client.portal is not None
    served.client.portal.call(write)
