"""Supervised background work: a failing task is logged with its traceback, makes the gateway
unready (``/readyz`` names it and its error) and is restarted, or stays failed when it is fatal;
the shutdown stops every task and reports none of them as failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.db.models import Exchange
from gateway.db.session import create_engine, create_sessions
from gateway.supervise import Factory, Supervisor
from tests.inprocess import config_for, eventually, running, write_policy


async def _exchange_ids(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        async with create_sessions(engine)() as session:
            return list(await session.scalars(select(Exchange.id)))
    finally:
        await engine.dispose()


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


async def _forever() -> None:
    await asyncio.Event().wait()


def _flaky(failures: int) -> tuple[list[int], Factory]:
    """A task factory whose first ``failures`` runs raise; the runs are counted."""
    runs: list[int] = []

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) <= failures:
            raise RuntimeError(f"run {len(runs)} broke")
        await _forever()

    return runs, run


def test_a_failing_task_is_logged_reported_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        supervisor = Supervisor(backoff=(0.01, 0.05), settle_seconds=0.2)
        runs, factory = _flaky(2)
        supervisor.restarting("flaky", factory)
        await asyncio.sleep(0.005)
        assert not supervisor.healthy
        assert supervisor.failures["flaky"].error == "RuntimeError: run 1 broke"
        await _until(lambda: len(runs) == 3)  # two restarts (after 0.01 s, then 0.05 s)
        assert supervisor.status()["flaky"]["running"] is True
        assert supervisor.failures["flaky"].error == "RuntimeError: run 2 broke"  # not settled
        await _until(lambda: supervisor.healthy)  # settled: up for 0.2 s
        assert len(runs) == 3
        assert supervisor.status()["flaky"]["restarts"] == 2
        await supervisor.stop()

    with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
        asyncio.run(scenario())
    failed = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failed) == 2
    assert failed[0].exc_info is not None  # the traceback is in the log
    assert "run 1 broke" in str(failed[0].exc_info[1])


def test_a_fatal_task_stays_failed_and_a_returning_task_is_a_failure() -> None:
    async def scenario() -> None:
        supervisor = Supervisor(backoff=(0.01,))

        async def breaks() -> None:
            raise OSError("disk gone")

        async def returns() -> None:
            return None

        loop = asyncio.get_running_loop()
        supervisor.fatal("writer", loop.create_task(breaks(), name="writer"))
        supervisor.restarting("returner", returns)
        await _until(lambda: supervisor.status()["returner"]["restarts"] != 0)
        assert supervisor.failures["writer"].error == "OSError: disk gone"
        assert supervisor.status()["writer"]["restarts"] == 0
        assert "returned" in supervisor.status()["returner"]["error"]  # type: ignore[operator]
        assert supervisor.status()["returner"]["restarts"] >= 1  # type: ignore[operator]
        await supervisor.stop()

    asyncio.run(scenario())


def test_shutdown_stops_in_reverse_order_and_reports_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order: list[str] = []

    async def scenario() -> None:
        supervisor = Supervisor()
        loop = asyncio.get_running_loop()
        drained = loop.create_task(_forever(), name="recorder")

        async def stop_recorder() -> None:
            order.append("recorder")
            drained.cancel()

        async def watcher() -> None:
            try:
                await _forever()
            except asyncio.CancelledError:
                order.append("watcher")
                raise

        supervisor.fatal("recorder", drained, stop=stop_recorder)
        supervisor.restarting("watcher", watcher)
        await asyncio.sleep(0.01)
        await supervisor.stop()
        await asyncio.sleep(0.01)  # the recorder's own cancel lands
        assert supervisor.healthy

    with caplog.at_level(logging.WARNING, logger="gateway.supervise"):
        asyncio.run(scenario())
    assert order == ["watcher", "recorder"]
    assert caplog.records == []


def test_readyz_names_a_failed_task_until_it_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_policy(tmp_path / "policies", "sup-context")
    with running(config_for(tmp_path)) as (client, state):
        supervisor = state.services.supervisor
        assert client.get("/readyz").json()["checks"]["background"]["ok"] is True
        _, factory = _flaky(1)
        # Settling takes long enough for /readyz to be read while the failure stands.
        monkeypatch.setattr(supervisor, "_settle", 0.5)
        assert client.portal is not None
        client.portal.call(supervisor.restarting, "flaky", factory)
        failing = eventually(lambda: (r := client.get("/readyz")).status_code == 503 and r)
        body = failing.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["background"]["failed"] == {"flaky": "RuntimeError: run 1 broke"}
        assert eventually(lambda: client.get("/readyz").status_code == 200, timeout=5)
        tasks = client.get("/readyz").json()["checks"]["background"]["tasks"]
        assert tasks["flaky"]["running"] and tasks["policy-watch"]["running"]


def test_a_recorder_that_dies_makes_the_gateway_unready_and_shutdown_is_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_policy(tmp_path / "policies", "sup-context")
    config = config_for(tmp_path)
    with (
        caplog.at_level(logging.ERROR, logger="gateway.supervise"),
        running(config) as (client, state),
    ):
        task = state.services.recorder.task
        assert task is not None
        assert client.portal is not None
        client.portal.call(task.cancel)
        failing = eventually(lambda: (r := client.get("/readyz")).status_code == 503 and r)
        failed = failing.json()["checks"]["background"]["failed"]
        assert failed == {"exchange-recorder": "cancelled (not by the shutdown)"}
        refused = client.post("/v1/chat/completions", json={"messages": []})
        assert refused.status_code == 401
        assert state.services.recorder.pending == 1  # queued, with no writer to take it
    # The shutdown's fresh writer wrote what the dead one left queued.
    assert asyncio.run(_exchange_ids(config.database_url)) == [refused.headers["x-request-id"]]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("BACKGROUND TASK FAILED: exchange-recorder") for m in messages)
    assert any("at shutdown, exchange-recorder had failed" in m for m in messages)
