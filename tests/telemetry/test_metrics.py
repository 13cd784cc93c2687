"""The metrics as the SDK's in-memory reader sees them, after calls through the openai SDK: a
call, a stream, an upstream error retried, a block, a shadow hit, a limit's refusal; then the
gauges the periodic refresher reads from the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from gateway.config.observe import TelemetryConfig
from gateway.telemetry.gauges import gauge_refresher
from gateway.telemetry.metrics import OTHER_MODEL, Metrics
from tests.inprocess import ADMIN, eventually
from tests.servers import Upstream
from tests.telemetry.metrics_app import (
    CONTEXT,
    LIMITED,
    MeteredGateway,
    audit_rows,
    environment,
    metered,
    metered_config,
    traffic,
)

GENAI = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "error.type"}
LABELS = GENAI | {
    "gen_ai.token.type",
    "gateway.context",
    "gateway.endpoint",
    "http.response.status_code",
    "gateway.policy.action",
    "gateway.rule",
    "gateway.rule.mode",
    "gateway.rule.action",
    "gateway.rule.enforced",
    "gateway.limit",
    "gateway.backend",
    "gateway.upstream.outcome",
    "gateway.review.queue",
    "gateway.audit.chain",
}


@pytest.fixture(scope="module")
def gateway(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MeteredGateway]:
    with environment():
        config = metered_config(tmp_path_factory.mktemp("metered"), upstream)
        with metered(config) as served:
            traffic(served)
            yield served


def _one(points: list[tuple[dict[str, Any], Any]], **wanted: Any) -> Any:
    found = [p for attrs, p in points if all(attrs.get(k) == v for k, v in wanted.items())]
    assert found, f"no point with {wanted} in {[a for a, _ in points]}"
    return found[0]


def test_the_genai_client_instruments(gateway: MeteredGateway) -> None:
    call = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "mock"}
    assert gateway.unit("gen_ai.client.operation.duration") == "s"
    durations = gateway.points("gen_ai.client.operation.duration")
    ok = [p for a, p in durations if "error.type" not in a and a["gen_ai.provider.name"] == "mock"]
    assert sum(p.count for p in ok) >= 2 and all(p.sum > 0 for p in ok)
    assert {a["gen_ai.request.model"] for a, _ in durations} - {OTHER_MODEL} == {"test-small"}
    failed = [a for a, _ in durations if "error.type" in a]
    assert failed and all(set(a) <= GENAI for a in failed)

    assert gateway.unit("gen_ai.client.token.usage") == "{token}"
    tokens = gateway.points("gen_ai.client.token.usage")
    assert _one(tokens, **call, **{"gen_ai.token.type": "input"}).sum > 0
    assert _one(tokens, **call, **{"gen_ai.token.type": "output"}).sum > 0

    assert gateway.unit("gen_ai.client.operation.time_to_first_chunk") == "s"
    first = gateway.points("gen_ai.client.operation.time_to_first_chunk")
    assert _one(first, **call).count == 1  # the stream's; a whole answer has no chunks


def test_requests_by_context_status_and_action(gateway: MeteredGateway) -> None:
    requests = gateway.points("gateway.requests")
    by = {"gateway.context": CONTEXT, "gateway.endpoint": "chat.completions"}
    allowed = _one(requests, **by, **{"http.response.status_code": 200})
    assert allowed.value >= 3  # the call, the stream, the shadow hit (the flag is allowed too)
    assert _one(requests, **by, **{"gateway.policy.action": "block"}).value == 1
    assert _one(requests, **by, **{"http.response.status_code": 502}).value == 1
    limited = {"gateway.context": LIMITED, "http.response.status_code": 429}
    assert _one(requests, **limited, **{"gateway.policy.action": "block"}).value == 1


def test_rule_hits_by_mode_and_limit_rejections(gateway: MeteredGateway) -> None:
    hits = gateway.points("gateway.rule.hits")
    enforced = _one(hits, **{"gateway.rule": "no-forbidden"})
    assert enforced.value == 1
    attrs = {a["gateway.rule"]: a for a, _ in hits}
    assert attrs["no-forbidden"]["gateway.rule.mode"] == "enforced"
    assert attrs["no-forbidden"]["gateway.rule.action"] == "block"
    assert attrs["shadow-stop"]["gateway.rule.mode"] == "shadow"
    assert attrs["shadow-stop"]["gateway.rule.enforced"] == "shadow"
    assert attrs["flag-it"]["gateway.rule.action"] == "flag"
    assert not any(name.startswith("limits.") for name in attrs)  # limits are counted apart
    (rejection,) = gateway.points("gateway.limit.rejections")
    assert rejection[0] == {
        "gateway.context": LIMITED,
        "gateway.limit": "limits.rate.requests_per_minute",
    }
    assert rejection[1].value == 1


def test_a_retry_is_two_attempts(gateway: MeteredGateway) -> None:
    attempts = gateway.points("gateway.upstream.attempts")
    outcomes = {a["gateway.upstream.outcome"]: p.value for a, p in attempts}
    assert outcomes["retried"] == 1  # the 500's first try; the second failed too
    assert outcomes["ok"] >= 5
    assert {a["gateway.backend"] for a, _ in attempts} == {"mock"}


def test_labels_are_few_and_never_ids(gateway: MeteredGateway) -> None:
    data = gateway.reader.get_metrics_data()
    assert data is not None
    metrics = [m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]
    for metric in metrics:
        for point in metric.data.data_points:
            attrs = dict(point.attributes or {})
            assert set(attrs) <= LABELS, (metric.name, attrs)
            for value in attrs.values():
                assert not str(value).startswith(("req_", "key_", "sk-", "dec_")), metric.name


def test_the_in_memory_gauges(gateway: MeteredGateway) -> None:
    (up,) = gateway.points("gateway.backend.up")
    assert up[0] == {"gateway.backend": "mock"} and up[1].value == 1
    (ejections,) = gateway.points("gateway.backend.ejections")
    assert ejections[1].value == 0
    (queue,) = gateway.points("gateway.recorder.queue")
    assert queue[1].value == 0
    (lag,) = gateway.points("gateway.recorder.lag")
    assert gateway.unit("gateway.recorder.lag") == "s" and lag[1].value == 0  # nothing waits
    assert gateway.unit("gateway.recorder.spool.size") == "By"


def test_the_database_gauges_after_a_refresh(gateway: MeteredGateway) -> None:
    services = gateway.state.services
    portal = gateway.client.portal
    assert portal is not None
    audit_rows(gateway, "gauged", 42, seconds_ago=30)
    reader = InMemoryMetricReader()
    own = Metrics(TelemetryConfig(prometheus=False), [reader])
    refresher = gauge_refresher(own, services.sessions, services.recorder, services.router.health)
    portal.call(refresher.refresh)
    probe = MeteredGateway(gateway.client, gateway.state, reader, {})
    length = _one(probe.points("gateway.audit.chain.length"), **{"gateway.audit.chain": "gauged"})
    assert length.value == 42
    age = _one(probe.points("gateway.audit.checkpoint.age"), **{"gateway.audit.chain": "gauged"})
    assert 29 < age.value < 120
    queue = {"gateway.context": CONTEXT, "gateway.review.queue": "triage"}
    assert _one(probe.points("gateway.review.backlog"), **queue).value == 1
    assert _one(probe.points("gateway.review.oldest_age"), **queue).value >= 0
    assert probe.unit("gateway.review.oldest_age") == "s"
    own.shutdown()


def test_random_model_names_add_no_series(gateway: MeteredGateway) -> None:
    """Any number of models the router does not know make one ``_other`` series (with the
    refusal's error.type), whatever ran before."""
    refused_series = {"gen_ai.request.model": OTHER_MODEL, "error.type": "model_not_found"}
    durations = gateway.points("gen_ai.client.operation.duration")
    seen = [p.count for a, p in durations if refused_series.items() <= a.items()]
    before = len(durations) - len(seen)
    sdk = gateway.sdk()
    ids = []
    for n in range(12):
        with pytest.raises(openai.NotFoundError) as refused:
            sdk.chat.completions.create(model=f"made-up-{n}-{uuid.uuid4().hex}",
                                        messages=[{"role": "user", "content": "hi"}])
        ids.append(refused.value.response.headers["x-request-id"])
    for request_id in ids:
        path = f"/admin/exchanges/{request_id}"
        eventually(partial(lambda p: gateway.client.get(p, headers=ADMIN).is_success, path))
    durations = gateway.points("gen_ai.client.operation.duration")
    assert {a["gen_ai.request.model"] for a, _ in durations} == {"test-small", OTHER_MODEL}
    assert len(durations) == before + 1
    assert _one(durations, **refused_series).count == sum(seen) + 12
