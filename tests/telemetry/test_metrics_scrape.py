"""``GET /metrics`` of a running gateway (``gateway serve``, both dialects), parsed with
prometheus_client's own parser after calls through the openai SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import Gateway


def _families(gateway: Gateway) -> dict[str, Any]:
    scraped = httpx.get(f"{gateway.url}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=1.0.0")
    return {f.name: f for f in text_string_to_metric_families(scraped.text)}


def _value(family: Any, sample_name: str, **labels: str) -> float:
    return sum(
        float(s.value)
        for s in family.samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_after_calls(gateway: Gateway, client: openai.OpenAI) -> None:
    before = _families(gateway)
    ok = {"gateway_context": "test-context", "http_response_status_code": "200"}
    counted = (
        _value(before["gateway_requests"], "gateway_requests_total", **ok)
        if "gateway_requests" in before
        else 0.0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": "hello metrics"}]
    )
    with pytest.raises(openai.BadRequestError) as blocked:
        client.chat.completions.create(
            model="test-small", messages=[{"role": "user", "content": "a forbidden phrase"}]
        )
    gateway.record(raw.headers["x-request-id"])
    gateway.record(blocked.value.response.headers["x-request-id"])

    families = _families(gateway)
    requests = families["gateway_requests"]
    assert requests.type == "counter"
    assert _value(requests, "gateway_requests_total", **ok) >= counted + 1
    assert _value(requests, "gateway_requests_total", gateway_policy_action="block") >= 1
    duration = families["gen_ai_client_operation_duration_seconds"]
    assert duration.type == "histogram"
    call = {"gen_ai_request_model": "test-small", "gen_ai_provider_name": "mock"}
    assert _value(duration, "gen_ai_client_operation_duration_seconds_count", **call) >= 1
    tokens = families["gen_ai_client_token_usage"]
    assert _value(tokens, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") > 0
    hits = families["gateway_rule_hits"]
    assert _value(hits, "gateway_rule_hits_total", gateway_rule="block-error") >= 1
    up = families["gateway_backend_up"]
    assert up.type == "gauge"
    assert _value(up, "gateway_backend_up", gateway_backend="mock") == 1
    assert "gateway_backend_ejections" in families and "gateway_recorder_queue" in families
    for family in families.values():
        for sample in family.samples:
            for value in sample.labels.values():
                assert not value.startswith(("req_", "key_", "sk-", "dec_")), sample
