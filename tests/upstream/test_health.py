"""Passive health and the retry budget, on gateway processes of their own: a backend that keeps
failing is ejected (``/readyz`` says so, and is 503 while an alias has no backend left), probed
again by one live request when its time is up, and ejected for longer when the probe fails;
many concurrent requests against a failing backend make only the retries the budget allows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.servers import Gateway, Upstream
from tests.upstream.faults import (
    fault_gateway,
    fault_script,
    marker,
    mock,
    readyz,
    sdk,
    seen_for,
    wait_for,
)

CONCURRENT = 20


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with mock(tmp_path_factory.mktemp("faulty"), fault_script()) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def spare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with mock(tmp_path_factory.mktemp("spare"), {}) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def strict(
    faulty: Upstream, spare: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    health = {"failures": 2, "ejection_seconds": 1, "max_ejection_seconds": 2}
    with fault_gateway(tmp_path_factory.mktemp("strict"), faulty, spare, health) as served:
        yield served


@pytest.fixture(scope="module")
def lenient(
    faulty: Upstream, spare: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    health = {"failures": 1000}
    with fault_gateway(tmp_path_factory.mktemp("lenient"), faulty, spare, health) as served:
        yield served


def _solo(client: openai.OpenAI, text: str) -> httpx.Response:
    return client.chat.completions.with_raw_response.create(
        model="solo", messages=[{"role": "user", "content": text}]
    ).http_response


def _failing(client: openai.OpenAI) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        _solo(client, marker("EJECT-500", False))
    return caught.value


def _backend(gateway: Gateway, name: str) -> dict[str, Any]:
    report: dict[str, Any] = readyz(gateway).json()["checks"]["backends"]["backends"][name]
    return report


def test_a_failing_backend_is_ejected_probed_again_and_ejected_for_longer(
    strict: Gateway, faulty: Upstream
) -> None:
    assert readyz(strict).status_code == 200
    with sdk(strict) as client:
        first = _failing(client)
        record = strict.record(first.response.headers["x-request-id"])
        # the second failure ejected it: the third try was not made
        outcomes = [a["outcome"] for a in record["attempts"]]
        assert outcomes == ["retried", "failed", "ejected_skip"]
        assert len(seen_for(faulty, record["id"])) == 2
        ready = readyz(strict)
        assert ready.status_code == 503
        backends = ready.json()["checks"]["backends"]
        assert backends["aliases_without_backend"] == ["solo"]
        assert backends["backends"]["solo"]["state"] == "ejected"
        assert backends["backends"]["solo"]["consecutive_failures"] == 2
        assert backends["backends"]["solo"]["ejected_until"] > time.time()
        assert backends["backends"]["spare"]["state"] == "healthy"

        skipped = _failing(client)  # while ejected: not tried at all, a 503 that says why
        assert skipped.status_code == 503
        assert skipped.response.json()["error"]["code"] == "upstream_unavailable"
        request_id = skipped.response.headers["x-request-id"]
        assert seen_for(faulty, request_id) == []
        skip_record = strict.record(request_id)
        assert [a["outcome"] for a in skip_record["attempts"]] == ["ejected_skip"]
        assert (skip_record["status"], skip_record["http_status"]) == ("upstream_error", 503)

        wait_for(lambda: readyz(strict).status_code == 200, timeout=3)
        assert _backend(strict, "solo")["state"] == "half_open"
        probe = _failing(client)  # the probe fails: ejected again, for twice as long
        assert len(seen_for(faulty, probe.response.headers["x-request-id"])) == 1
        solo = _backend(strict, "solo")
        assert (solo["state"], solo["ejections"]) == ("ejected", 2)
        assert solo["ejected_until"] - time.time() > 1.2

        wait_for(lambda: readyz(strict).status_code == 200, timeout=4)
        assert _solo(client, "all well again").status_code == 200  # the probe succeeds
        solo = _backend(strict, "solo")
        assert (solo["state"], solo["consecutive_failures"], solo["ejections"]) == (
            "healthy",
            0,
            0,
        )


def test_retries_stay_within_the_budget_under_concurrent_failures(
    lenient: Gateway, faulty: Upstream
) -> None:
    """20 requests at once against a backend that always fails (slowly): without a budget,
    60 tries; with Envoy's (20% of the requests in flight, at least 3), a bounded few more."""
    text = marker("STORM", False)

    def one(_: int) -> str:
        with sdk(lenient) as client, pytest.raises(openai.APIStatusError) as caught:
            _storm(client, text)
        return caught.value.response.headers["x-request-id"]

    with ThreadPoolExecutor(CONCURRENT) as pool:
        ids = list(pool.map(one, range(CONCURRENT)))
    records = [lenient.record(request_id) for request_id in ids]
    tries = sum(len(seen_for(faulty, request_id)) for request_id in ids)
    assert tries == sum(len(r["attempts"]) for r in records)  # every try is on its record
    retries = tries - CONCURRENT
    # at most max(3, 0.2 * 20) = 4 retries in flight at once, and each takes 0.3 s or more
    assert 0 < retries <= 12, retries
    denied = [r for r in records if r["attempts"][-1]["outcome"] == "budget_exhausted"]
    assert denied and "retry budget" in denied[0]["attempts"][-1]["error"]
    assert readyz(lenient).json()["checks"]["backends"]["retries"]["denied_by_budget"] > 0


def _storm(client: openai.OpenAI, text: str) -> None:
    client.chat.completions.create(model="storm", messages=[{"role": "user", "content": text}])
