"""The recorder when the database or the disk is slow: nothing lost at the shutdown, a slow
database's timeouts spooled (not quarantined), and a slow disk never holding the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gateway.config.sections import RecordingConfig
from gateway.db import migrate
from gateway.db.session import create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord
from gateway.records.entries import existing_ids
from gateway.records.recorder import ExchangeRecorder, read_spill
from gateway.records.status import Status
from tests.databases import _asyncpg_dsn, upgrade

#: how long the slow disk's fsync takes, and the longest the event loop may stall meanwhile
SLOW_FSYNC = 0.5
STALL_BOUND = 0.25


def records(count: int, prefix: str) -> list[ExchangeRecord]:
    return [
        ExchangeRecord(id=f"{prefix}-{i}", endpoint="chat.completions", status=Status.OK)
        for i in range(count)
    ]


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def write_locked(url: str) -> AsyncIterator[None]:
    """Another client holds the exchanges table against writes (reads still answer): the
    recorder's inserts wait until it lets go, or until their statement timeout."""
    if url.startswith("sqlite"):
        holder = sqlite3.connect(str(make_url(url).database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("LOCK TABLE exchanges IN SHARE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await connection.close()


class Heartbeat:
    """The event loop's longest stall while it runs: a task that wants to wake every 10 ms."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last - 0.01)
            last = now

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@contextmanager
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every fsync takes SLOW_FSYNC seconds (then really syncs); yields the ids of the
    threads that called it."""
    real, callers = os.fsync, []

    def fsync(fd: int) -> None:
        callers.append(threading.get_ident())
        time.sleep(SLOW_FSYNC)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield callers


def test_a_record_handed_over_during_the_final_write_is_spooled_not_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url)
    first, late = records(2, "race")

    async def main() -> ExchangeRecorder:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(spill_dir=tmp_path / "spill")
        )
        async with write_locked(url):  # the final write waits for the lock
            recorder.start()
            recorder.submit(first)
            await until(lambda: recorder.pending == 0, "the writer taking the first record")
            stopping = asyncio.create_task(recorder.stop(open_wait=0))
            await until(lambda: recorder.pending == 1, "the stop queued behind the write")
            recorder.submit(late)  # handed over while the final batch is written
        await stopping
        ids = await existing_ids(create_sessions(engine), [first.id, late.id])
        await engine.dispose()
        assert ids == {first.id}
        return recorder

    recorder = asyncio.run(main())
    assert recorder.stats.written == 1 and recorder.stats.spilled == 1
    assert recorder.pending == 0
    spooled = read_spill(tmp_path / "spill" / "spool.jsonl")
    assert [e.id for e in spooled] == [late.id]


def test_a_statement_timeout_spools_the_records_and_they_are_replayed_not_quarantined(
    database_url: str, tmp_path: Path
) -> None:
    """The database answers (its reachability probe reads), but every insert waits on a lock
    past ``database.statement_timeout``: slow, not a bad record."""
    upgrade(database_url)
    batch = records(3, f"slow-{tmp_path.name[-10:]}")
    ids = [r.id for r in batch]

    async def main() -> ExchangeRecorder:
        engine = create_engine(database_url, statement_timeout=0.3)
        sessions = create_sessions(engine)
        settings = RecordingConfig(
            spill_dir=tmp_path, retries=1, replay_seconds=0.2, fsync_seconds=0.05
        )
        recorder = ExchangeRecorder(sessions, settings)
        async with write_locked(database_url):
            recorder.start()
            for record in batch:
                recorder.submit(record)
            await until(lambda: recorder.stats.spilled == 3, "the records spooled")
            assert recorder.stats.quarantined == 0
        await until(lambda: recorder.stats.replayed == 3, "the spool replayed")
        await recorder.stop()
        assert await existing_ids(sessions, ids) == set(ids)
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.stats.quarantined == 0
    assert not list(tmp_path.glob("quarantine-*.jsonl"))
    assert not recorder.spool.waiting()


def test_the_spools_fsync_on_a_slow_disk_never_stalls_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = f"sqlite+aiosqlite:///{tmp_path / 'no-schema.db'}"  # every record is spooled

    async def main(callers: list[int]) -> tuple[ExchangeRecorder, float]:
        engine = create_engine(broken)
        settings = RecordingConfig(spill_dir=tmp_path / "spill", fsync_seconds=0.05, retries=1)
        recorder = ExchangeRecorder(create_sessions(engine), settings)
        recorder.start()
        with Heartbeat() as beat:
            for record in records(30, "disk"):
                recorder.submit(record)
                await asyncio.sleep(0.03)
            await recorder.stop()  # its last fsync too
        await engine.dispose()
        assert callers and threading.get_ident() not in callers  # each on a worker thread
        return recorder, beat.longest

    with slow_disk(monkeypatch) as callers:
        recorder, stall = asyncio.run(main(callers))
    assert recorder.stats.spilled == 30
    assert stall < STALL_BOUND, f"the event loop stalled {stall:.2f}s on the disk"


def test_quarantining_on_a_slow_disk_never_stalls_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    migrate.upgrade(url)
    batch = records(3, "twin")
    twins = [ExchangeRecord(id=r.id, endpoint="chat.completions") for r in batch]

    async def main(callers: list[int]) -> tuple[ExchangeRecorder, float]:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(spill_dir=tmp_path / "spill", retries=1)
        )
        recorder.start()
        with Heartbeat() as beat:
            for record in [*batch, *twins]:  # each twin is refused on its own: quarantined
                recorder.submit(record)
            await until(lambda: recorder.stats.quarantined == 3, "the twins quarantined")
        await recorder.stop()
        await engine.dispose()
        assert callers and threading.get_ident() not in callers
        return recorder, beat.longest

    with slow_disk(monkeypatch) as callers:
        recorder, stall = asyncio.run(main(callers))
    assert recorder.stats.written == 3
    assert stall < STALL_BOUND, f"the event loop stalled {stall:.2f}s on the disk"


def test_replaying_a_spool_file_that_is_slow_to_read_never_stalls_the_event_loop(
    tmp_path: Path,
) -> None:
    """The sealed file is a named pipe whose writer starts late: reading it blocks."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(url)
    spill = tmp_path / "spill"
    spill.mkdir()
    sealed = spill / "spool-00000000000000000001.jsonl"
    os.mkfifo(sealed)
    batch = records(5, "pipe")

    def slow_writer() -> None:
        time.sleep(SLOW_FSYNC)
        with sealed.open("w", encoding="utf-8") as pipe:
            pipe.write("".join(r.entry().fitted().to_json() + "\n" for r in batch))

    writer = threading.Thread(target=slow_writer, daemon=True)

    async def main() -> tuple[ExchangeRecorder, float]:
        engine = create_engine(url)
        settings = RecordingConfig(spill_dir=spill, replay_seconds=0.05, fsync_seconds=0.05)
        recorder = ExchangeRecorder(create_sessions(engine), settings)
        writer.start()
        with Heartbeat() as beat:
            recorder.start()
            await until(lambda: recorder.stats.replayed == 5, "the spool replayed")
        await recorder.stop()
        await engine.dispose()
        return recorder, beat.longest

    recorder, stall = asyncio.run(main())
    writer.join(5)
    assert recorder.stats.written == 5
    assert not sealed.exists()
    assert stall < STALL_BOUND, f"the event loop stalled {stall:.2f}s reading the spool"
