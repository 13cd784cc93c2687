"""PostgreSQL stopped under traffic and started again: the records spool to disk and are
replayed, in order, with nothing missing and nothing twice; known keys keep being served.
Then a spool that cannot be written: new traffic refused (or, if the operator says so,
served and counted), and what only the log holds imported back from it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import func, select

from gateway.db.models import Exchange
from gateway.db.session import Sessions
from tests.databases import run_on
from tests.db.cluster import Cluster, throwaway_cluster
from tests.records.fixtures import eventually, serve_on, serve_process
from tests.servers import Gateway, Upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


def _ask(sdk: openai.OpenAI) -> tuple[str, int, str | None]:
    """One chat request: its id, HTTP status and error code."""
    try:
        raw = sdk.chat.completions.with_raw_response.create(model="test-small", messages=HELLO)
    except openai.APIStatusError as exc:
        code = exc.body.get("code") if isinstance(exc.body, dict) else None
        return exc.response.headers["x-request-id"], exc.status_code, code
    return raw.headers["x-request-id"], raw.http_response.status_code, None


class Traffic:
    """Requests one after another from a thread until stopped, each remembered."""

    def __init__(self, gateway: Gateway) -> None:
        self.sent: list[tuple[str, int, str | None, float]] = []
        self._stop = threading.Event()
        self._sdk = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent.append((*_ask(self._sdk), time.monotonic()))
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._sdk.close()


def _stored(url: str, ids: list[str]) -> dict[str, int]:
    async def work(sessions: Sessions) -> dict[str, int]:
        async with sessions() as session:
            rows = await session.execute(
                select(Exchange.id, func.count()).where(Exchange.id.in_(ids)).group_by(Exchange.id)
            )
            return {row[0]: int(row[1]) for row in rows}

    return run_on(url, work)


def _recorder(gateway: Gateway) -> dict[str, Any]:
    checks: dict[str, Any] = httpx.get(f"{gateway.url}/readyz", timeout=10).json()["checks"]
    recorder: dict[str, Any] = checks["recorder"]
    return recorder


def test_records_spool_while_postgres_is_down_and_replay_when_it_is_back(
    upstream: Upstream, cluster: Cluster, tmp_path: Path
) -> None:
    with serve_on(
        upstream,
        cluster.url,
        tmp_path,
        recording={"fsync_seconds": 0.05, "replay_seconds": 0.3},
        auth={"cache_seconds": 0.2, "stale_seconds": 600},
        database={"connect_timeout": 1, "statement_timeout": 2},
    ) as gateway, Traffic(gateway) as traffic:
        eventually(lambda: len(traffic.sent) >= 10, 30, "ten requests before the outage")
        cluster.stop()
        stopped = time.monotonic()
        eventually(lambda: _recorder(gateway)["database_unreachable"], 20, "the outage seen")
        eventually(lambda: (tmp_path / "spill" / "spool.jsonl").exists(), 20, "a spool")
        time.sleep(1.0)
        cluster.start()
        started = time.monotonic()
        eventually(lambda: not _recorder(gateway)["database_unreachable"], 30, "the replay")
        time.sleep(0.5)  # a few requests after it
    during = [s for s in traffic.sent if stopped < s[3] < started]
    assert len(during) >= 5
    # known keys served through the outage (the lookup of under a minute ago stood)
    assert all(status == 200 for _, status, _, _ in during), during
    ids = [request_id for request_id, _, _, _ in traffic.sent]
    assert len(set(ids)) == len(ids)
    stored = eventually(
        lambda: (found if len(found := _stored(cluster.url, ids)) == len(ids) else None),
        30,
        "every record in the database",
    )
    assert set(stored) == set(ids)  # nothing missing
    assert set(stored.values()) == {1}  # nothing twice
    assert not list((tmp_path / "spill").glob("quarantine-*"))
    assert not list((tmp_path / "spill").glob("spool-*"))  # every sealed file replayed


def test_a_spool_that_cannot_be_written_refuses_new_traffic_and_the_log_has_the_records(
    upstream: Upstream, cluster: Cluster, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "spool.jsonl").symlink_to("/dev/full")  # every write: ENOSPC, a full disk
    sent: list[tuple[str, int, str | None]] = []
    with serve_on(
        upstream,
        cluster.url,
        tmp_path,
        recording={"replay_seconds": 0.3},
        auth={"cache_seconds": 0.2, "stale_seconds": 600},
        database={"connect_timeout": 1, "statement_timeout": 2},
    ) as gateway, openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as sdk:
        sent.append(_ask(sdk))
        cluster.stop()
        try:
            refused = eventually(
                lambda: (got if (got := _ask(sdk))[1] == 503 else sent.append(got)),
                20,
                "a refusal",
            )
            sent.append(refused)
            assert refused[2] == "recording_unavailable"
            recorder = _recorder(gateway)
            assert recorder["ok"] is False and recorder["spool_error"]
            assert recorder["logged_only"] >= 1
        finally:
            cluster.start()
        eventually(lambda: _ask(sdk)[1] == 200, 30, "serving again")
    log = tmp_path / "gateway.log"
    assert "SITUATE-UNRECORDED " in log.read_text()
    ids = [request_id for request_id, _, _ in sent]
    missing = set(ids) - set(_stored(cluster.url, ids))
    assert missing  # only the log has them
    first = gateway.cli("exchanges", "import-spill", "--from-log", str(log))
    assert first.returncode == 0, first.stderr
    assert set(_stored(cluster.url, ids)) == set(ids)  # every request sent is on record
    again = gateway.cli("exchanges", "import-spill", "--from-log", str(log))
    assert again.returncode == 0, again.stderr
    assert "imported 0 records" in again.stderr and "skipped" in again.stderr
    assert set(_stored(cluster.url, ids).values()) == {1}


def test_serve_mode_keeps_serving_when_nothing_can_record_and_counts_it(
    upstream: Upstream, cluster: Cluster, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "spool.jsonl").symlink_to("/dev/full")
    with serve_on(
        upstream,
        cluster.url,
        tmp_path,
        recording={"replay_seconds": 0.3, "on_spool_failure": "serve"},
        auth={"cache_seconds": 0.2, "stale_seconds": 600},
        database={"connect_timeout": 1, "statement_timeout": 2},
    ) as gateway, openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as sdk:
        assert _ask(sdk)[1] == 200
        cluster.stop()
        try:
            # a record to write is what finds the database and the spool both failing
            eventually(
                lambda: _ask(sdk) and _recorder(gateway)["spool_error"], 30, "the spool failing"
            )
            statuses = [_ask(sdk)[1] for _ in range(5)]
            recorder = _recorder(gateway)
        finally:
            cluster.start()
    assert statuses == [200] * 5
    assert recorder["served_unrecorded"] >= 5
    assert "SITUATE-UNRECORDED " in (tmp_path / "gateway.log").read_text()


def test_a_spool_left_by_a_killed_gateway_is_replayed_by_the_next_one(
    upstream: Upstream, cluster: Cluster, tmp_path: Path
) -> None:
    """SIGKILL while the database is down: what was spooled survives the kill (each append
    is in the system's hands at once), and the next gateway on the same spill_dir replays it."""
    spill = tmp_path / "spill"
    settings: dict[str, dict[str, Any]] = {
        "recording": {"spill_dir": str(spill), "replay_seconds": 0.3},
        "auth": {"cache_seconds": 0.2, "stale_seconds": 600},
        "database": {"connect_timeout": 1, "statement_timeout": 2},
    }
    (tmp_path / "first").mkdir()
    first = serve_process(upstream, cluster.url, tmp_path / "first", **settings)
    with first as (gateway, proc), openai.OpenAI(
        base_url=gateway.v1, api_key=gateway.key, max_retries=0
    ) as sdk:
        sent = [_ask(sdk)]
        cluster.stop()
        try:
            sent += [_ask(sdk) for _ in range(5)]
            eventually(lambda: _recorder(gateway)["spilled"] >= 5, 20, "the records spooled")
            proc.kill()
            proc.wait(timeout=10)
        finally:
            cluster.start()
    assert [status for _, status, _ in sent] == [200] * 6
    ids = [request_id for request_id, _, _ in sent]
    assert set(_stored(cluster.url, ids)) != set(ids)  # the killed one never replayed them
    (tmp_path / "second").mkdir()
    with serve_on(upstream, cluster.url, tmp_path / "second", **settings):
        stored = eventually(
            lambda: (found if len(found := _stored(cluster.url, ids)) == len(ids) else None),
            30,
            "the next gateway's replay",
        )
    assert set(stored) == set(ids) and set(stored.values()) == {1}
