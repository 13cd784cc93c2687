"""The spool's seal and the recorder's stop when something fails: a driver error classified
by its cause, a seal the disk refuses, the fsyncs a seal owes, a writer that died."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError

from gateway.config.sections import RecordingConfig
from gateway.db import migrate
from gateway.db.session import Sessions, create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord
from gateway.records.entries import Entry, existing_ids, read_spill, transient
from gateway.records.recorder import ExchangeRecorder
from gateway.records.replay import STUCK_REPLAYS, RecorderStats, Replayer
from gateway.records.spool import Spool
from gateway.records.status import Status
from tests.databases import in_a_thread, sessions_on, upgrade


def entry(name: str) -> Entry:
    record = ExchangeRecord(id=name, endpoint="chat.completions", status=Status.OK)
    return record.entry().fitted()


def test_a_bare_interface_error_is_the_records_own_and_a_lost_connection_is_not() -> None:
    refused = InterfaceError("INSERT …", {}, ValueError("invalid input for query argument"))
    assert not transient(refused)
    closed = InterfaceError("INSERT …", {}, ValueError("x"), connection_invalidated=True)
    assert transient(closed)
    behind = InterfaceError("INSERT …", {}, ValueError("x"))
    behind.orig.__cause__ = ConnectionResetError("reset by peer")  # type: ignore[union-attr]
    assert transient(behind)


def test_a_seal_the_disk_refuses_returns_and_the_replay_gives_the_loop_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)
    renames: list[Path] = []

    def rename(self: Path, target: Path) -> Path:
        renames.append(self)
        if len(renames) > 20:  # the old loop, which never returned: stop it
            raise RuntimeError("seal retried in a loop")
        raise OSError(30, "Read-only file system")

    async def main() -> tuple[Spool, RecorderStats]:
        engine = create_engine(url)
        spool, stats = Spool(tmp_path / "spool"), RecorderStats(failing=True)
        assert spool.append([entry("ro-1")])

        async def quarantine(_: Entry, __: str) -> None:
            raise AssertionError("nothing is quarantined")

        replayer = Replayer(create_sessions(engine), spool, stats, 10, quarantine)
        monkeypatch.setattr(Path, "rename", rename)
        await asyncio.wait_for(replayer.replay(), 5)
        monkeypatch.undo()
        await spool.close()
        await engine.dispose()
        return spool, stats

    spool, stats = asyncio.run(main())
    assert len(renames) == 1
    assert stats.failing and spool.waiting()  # kept, for the next round
    assert [e.id for e in read_spill(spool.active)] == ["ro-1"]


def test_a_seal_fsyncs_what_came_during_its_fsync_and_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, synced = os.fsync, []

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    async def main() -> Path | None:
        spool = Spool(tmp_path)
        assert spool.append([entry("a")])
        sync = spool.sync

        async def appended_during_the_fsync() -> None:
            await sync()
            assert spool.append([entry("b")])  # as the loop may while the fsync runs

        monkeypatch.setattr(spool, "sync", appended_during_the_fsync)
        sealed = await spool.seal()
        monkeypatch.setattr(spool, "sync", sync)
        assert not spool.active.exists()  # new records start a new file
        return sealed

    sealed = asyncio.run(main())
    assert sealed is not None and [e.id for e in read_spill(sealed)] == ["a", "b"]
    inode = sealed.stat().st_ino
    assert synced.count((inode, False)) == 2  # before "b", and after it
    assert (tmp_path.stat().st_ino, True) in synced  # the rename
    assert synced.index((tmp_path.stat().st_ino, True)) > synced.index((inode, False))


def test_a_failed_writers_queue_is_still_spooled_at_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)

    async def broken(_: list[Entry]) -> None:
        raise RuntimeError("the writer failed")

    async def main() -> ExchangeRecorder:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(spill_dir=tmp_path / "spill")
        )
        monkeypatch.setattr(recorder, "_write", broken)
        recorder.start()
        recorder.submit(ExchangeRecord(id="first", endpoint="chat.completions"))
        task = recorder.task
        assert task is not None
        await asyncio.wait([task], timeout=5)
        assert task.done()
        for name in ("left-1", "left-2"):
            recorder.submit(ExchangeRecord(id=name, endpoint="chat.completions"))
        with pytest.raises(RuntimeError, match="the writer failed"):
            await recorder.stop(open_wait=0)
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.task is None
    spooled = read_spill(tmp_path / "spill" / "spool.jsonl")
    assert [e.id for e in spooled] == ["left-1", "left-2"]
    assert recorder.stats.spilled == 2


def test_a_record_that_fails_alone_replay_after_replay_is_quarantined_not_kept_forever(
    postgres_url: str, tmp_path: Path
) -> None:
    """A trigger refuses one record with a serialization failure (SQLSTATE 40001, the
    database's kind of error) every time: after STUCK_REPLAYS replays it is quarantined and
    the spool behind it is written."""
    upgrade(postgres_url)
    tag = tmp_path.name[-10:]
    stuck, rest = f"stuck-{tag}", [f"behind-{tag}-{i}" for i in range(2)]
    function = f"refuse_{tag.replace('-', '_')}"

    async def ddl(sessions: Sessions, *statements: str) -> None:
        async with sessions() as session, session.begin():
            for statement in statements:
                await session.execute(text(statement))

    async def main() -> tuple[list[str], set[str], Spool, RecorderStats]:
        kept: list[str] = []

        async def quarantine(e: Entry, why: str) -> None:
            kept.append(e.id)
            assert "in 5 replays in a row" in why

        async with sessions_on(postgres_url) as sessions:
            await ddl(
                sessions,
                f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.id = '{stuck}' THEN RAISE EXCEPTION 'busy' USING ERRCODE = '40001'; "
                "END IF; RETURN NEW; END $$",
                f"CREATE TRIGGER {function} BEFORE INSERT ON exchanges FOR EACH ROW "
                f"EXECUTE FUNCTION {function}()",
            )
            try:
                spool, stats = Spool(tmp_path), RecorderStats(failing=True)
                assert spool.append([entry(stuck)]) and spool.append([entry(i) for i in rest])
                replayer = Replayer(sessions, spool, stats, 10, quarantine)
                for _ in range(2 * STUCK_REPLAYS):
                    await replayer.replay()
                    if not stats.failing:
                        break
                stored = await existing_ids(sessions, [stuck, *rest])
            finally:
                await ddl(
                    sessions,
                    f"DROP TRIGGER {function} ON exchanges",
                    f"DROP FUNCTION {function}()",
                )
            await spool.close()
        return kept, stored, spool, stats

    kept, stored, spool, stats = in_a_thread(lambda: asyncio.run(main()))
    assert kept == [stuck]
    assert stored == set(rest)
    assert not stats.failing and not spool.waiting()
