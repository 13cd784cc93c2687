"""A frozen PostgreSQL (every process of a throwaway cluster SIGSTOPped: connections are
accepted and never answered): requests and ``/readyz`` answer within the database's bounds,
known keys keep being served, an unknown key is a clear 503, and nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.db.cluster import Cluster, throwaway_cluster
from tests.records.fixtures import eventually, serve_on
from tests.servers import Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
CONNECT, STATEMENT = 1.0, 1.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


def test_a_frozen_database_bounds_requests_and_readiness_and_known_keys_are_served(
    upstream: Upstream, cluster: Cluster, tmp_path: Path
) -> None:
    with serve_on(
        upstream,
        cluster.url,
        tmp_path,
        recording={"replay_seconds": 0.3},
        auth={"cache_seconds": 0.2, "stale_seconds": 600},
        database={"connect_timeout": CONNECT, "statement_timeout": STATEMENT},
    ) as gateway:
        sdk = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
        ids = [sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=HELLO
        ).headers["x-request-id"]]
        time.sleep(0.3)  # past cache_seconds: the next request asks the database
        cluster.freeze()
        try:
            took = []
            for _ in range(3):
                started = time.monotonic()
                raw = sdk.chat.completions.with_raw_response.create(
                    model="test-small", messages=HELLO
                )
                took.append(time.monotonic() - started)
                assert raw.http_response.status_code == 200
                ids.append(raw.headers["x-request-id"])
            started = time.monotonic()
            ready = httpx.get(f"{gateway.url}/readyz", timeout=30)
            ready_took = time.monotonic() - started
            started = time.monotonic()
            unknown = httpx.post(
                f"{gateway.v1}/chat/completions",
                headers={"authorization": "Bearer sk-gw-" + "x" * 43},
                json={"model": "test-small", "messages": HELLO},
                timeout=30,
            )
            unknown_took = time.monotonic() - started
            ids.append(unknown.headers["x-request-id"])
        finally:
            cluster.thaw()
        sdk.close()
        # each bounded by the database's timeouts (today: 15 s and more)
        assert max(took) < CONNECT + STATEMENT + 2, took
        # degraded, still serving: known keys and the spool carry the outage
        assert ready.status_code == 200 and ready_took < CONNECT + STATEMENT + 2, ready_took
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"]["ok"] is False
        assert unknown.status_code == 503 and unknown_took < CONNECT + STATEMENT + 2
        assert unknown.json()["error"]["code"] == "database_unavailable"
        # nothing lost: each record reaches the database once it answers again
        records = [gateway.record(request_id, timeout=30) for request_id in ids]
        assert [r["id"] for r in records] == ids
        # the record says a key was served on a stale lookup, and how stale
        assert "key_checked_seconds_ago" not in records[0]["decision"]
        for record in records[1:4]:
            assert record["decision"]["key_checked_seconds_ago"] > 0.2
        log = (tmp_path / "gateway.log").read_text()
        assert "served on its lookup of" in log  # the stale key said so
        eventually(
            lambda: httpx.get(f"{gateway.url}/readyz", timeout=10).json()["status"] == "ready",
            30,
            "ready again",
        )
