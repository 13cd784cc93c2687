"""Two gateway processes on different ports against one PostgreSQL database and one Redis (a
throwaway of this module's own, so it can be stopped): a limit of N a minute lets exactly N
through across both, budgets are shared, usage sums both; and with Redis stopped, each
``limits.on_unavailable`` mode does what it says, recorded and counted."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.quota.fixtures import (
    RedisServer,
    limits_gateway,
    minute_left,
    new_key,
    throwaway_redis,
    usage_when,
)
from tests.servers import Gateway, Upstream

ASK = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    upstream: Upstream,
    postgres_url: str,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, Gateway]]:
    """Replica ``local`` (counts in process while Redis is away) and replica ``closed``
    (refuses then), sharing the counters' names as replicas of one deployment do."""
    folder = tmp_path_factory.mktemp("replicas")
    shared = {"redis_url": redis_server.url, "key_prefix": f"t-{secrets.token_hex(6)}"}
    # a generous bound: on a loaded machine no admission may fall back for being slow
    shared["timeout"] = 2
    with (
        limits_gateway(
            upstream, postgres_url, folder / "local", {**shared, "on_unavailable": "local"}
        ) as local,
        limits_gateway(
            upstream, postgres_url, folder / "closed", {**shared, "on_unavailable": "fail_closed"}
        ) as closed,
    ):
        yield local, closed


def ask(gateway: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        json={"model": "test-small", "messages": ASK},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_n_per_minute_lets_exactly_n_through_across_both(
    replicas: tuple[Gateway, Gateway],
) -> None:
    minute_left(20)
    key_id, key = new_key(replicas[0].url, requests_per_minute=5)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: ask(replicas[i % 2], key), range(14)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 9
    assert {a.url.port for a in answers} == {int(g.url.rsplit(":", 1)[1]) for g in replicas}
    rows = usage_when(replicas[1], lambda r: bool(r) and r[0]["requests"] == 14, key=key_id)
    assert rows[0]["ok"] == 5 and rows[0]["limited"] == 9


def _one_by_one(replicas: tuple[Gateway, Gateway], key: str, times: int) -> list[int]:
    """Requests alternating between the replicas, each after the last one's record is written
    (its settlement, which comes first, has landed by then)."""
    codes = []
    for index in range(times):
        gateway = replicas[index % 2]
        answer = ask(gateway, key)
        gateway.record(answer.headers["x-request-id"])
        codes.append(answer.status_code)
    return codes


def test_budgets_are_shared(replicas: tuple[Gateway, Gateway]) -> None:
    # one question is 12 tokens by the mock's usage (estimated at 8 beforehand) and costs
    # 0.018 EUR: held per replica, the third request would pass on a replica that has seen one
    _, tokens = new_key(replicas[0].url, tokens_per_day=30)
    assert _one_by_one(replicas, tokens, 3) == [200, 200, 429]
    _, spend = new_key(replicas[0].url, spend_per_day=0.03)
    assert _one_by_one(replicas, spend, 3) == [200, 200, 429]
    refused = ask(replicas[1], spend)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert refused.headers["x-should-retry"] == "false"


def test_usage_sums_both(replicas: tuple[Gateway, Gateway]) -> None:
    key_id, key = new_key(replicas[0].url)
    answers = [ask(replicas[0 if i < 2 else 1], key) for i in range(5)]  # 2 here, 3 there
    assert {a.status_code for a in answers} == {200}
    for gateway in replicas:
        rows = usage_when(gateway, lambda r: bool(r) and r[0]["requests"] == 5, key=key_id)
        assert rows[0]["requests"] == 5
        assert rows[0]["spend"] == pytest.approx(5 * 0.018)
    shown = replicas[0].command("usage", "--key", key_id)
    assert shown.returncode == 0 and shown.stdout.splitlines()[1].split()[:2] == ["EUR", "5"]


def test_redis_stopped_each_mode_does_as_configured(
    replicas: tuple[Gateway, Gateway], redis_server: RedisServer
) -> None:
    local, closed = replicas
    _, key = new_key(local.url, requests_per_minute=1000)
    assert ask(local, key).status_code == 200 and ask(closed, key).status_code == 200
    redis_server.stop()
    try:
        served = ask(local, key)
        assert served.status_code == 200
        record = local.record(served.headers["x-request-id"])
        notes = [o for o in record["decision"]["outcomes"] if o["rule"] == "limits.store"]
        assert notes and "counted in this process" in (notes[0].get("note") or "")
        ready = httpx.get(f"{local.url}/readyz")
        limits = ready.json()["checks"]["limits"]
        assert ready.status_code == 200 and limits["ok"] and limits["reachable"] is False
        assert limits["store_failures"] >= 1 and limits["counted_locally"] >= 1

        refused = ask(closed, key)
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "limits_unavailable" and "127.0.0.1" not in error["message"]
        record = closed.record(refused.headers["x-request-id"])
        assert record["error_type"] == "limits_unavailable"
        assert "Error" in record["error_message"]  # what failed, for the operator
        ready = httpx.get(f"{closed.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["limits"]["ok"] is False
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while ask(closed, key).status_code != 200:  # tried again a second after the failure
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert httpx.get(f"{closed.url}/readyz").status_code == 200


def test_keys_limits_command(replicas: tuple[Gateway, Gateway]) -> None:
    key_id, key = new_key(replicas[0].url, requests_per_minute=50)
    changed = replicas[0].command("keys", "limits", key_id, "--tpd", "1")
    assert changed.returncode == 0, changed.stderr
    assert '"tokens_per_day": 1' in changed.stdout and '"requests_per_minute": 50' in changed.stdout
    deadline = time.monotonic() + 5  # the key cache (0.5 s in the tests) forgets it
    while ask(replicas[1], key).status_code != 429:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cleared = replicas[0].command("keys", "limits", key_id, "--clear")
    assert cleared.returncode == 0 and '"limits": null' in cleared.stdout
    missing = replicas[0].command("keys", "limits", "key_nope", "--rpm", "1")
    assert missing.returncode != 0
