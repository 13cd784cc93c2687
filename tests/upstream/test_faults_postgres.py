"""The attempts of a failover and of a fallback, as PostgreSQL stores them (the fault suite
itself runs on SQLite; this is the same record on the production database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Gateway
from tests.upstream.faults import fault_gateway, fault_script, marker, mock, sdk


@pytest.fixture(scope="module")
def gateway(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("pg-faults")
    with (
        mock(folder / "faulty", fault_script()) as faulty,
        mock(folder / "spare", {}) as spare,
        fault_gateway(folder, faulty, spare, {"failures": 1000}, postgres_url) as served,
    ):
        yield served


def _attempts(gateway: Gateway, model: str, text: str) -> list[tuple[str, str, str, int | None]]:
    with sdk(gateway) as client:
        answered = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
    record = gateway.record(answered.headers["x-request-id"])
    assert record["status"] == "ok"
    assert all(isinstance(a["ms"], float) and a["started_at"] for a in record["attempts"])
    return [(a["alias"], a["backend"], a["outcome"], a["status"]) for a in record["attempts"]]


def test_a_failover_and_a_fallback_are_stored_with_their_attempts(gateway: Gateway) -> None:
    assert gateway.backend == "postgres"
    assert _attempts(gateway, "pair", "hello") == [
        ("pair", "dead", "retried", None),
        ("pair", "spare", "ok", 200),
    ]
    assert _attempts(gateway, "primary", marker("ALWAYS-500", False)) == [
        ("primary", "flaky", "retried", 503),
        ("primary", "flaky", "retried", 503),
        ("primary", "flaky", "retried", 503),
        ("backup", "spare", "ok", 200),
    ]

