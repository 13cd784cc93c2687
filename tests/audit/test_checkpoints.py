"""The checkpointer on each dialect: a signed checkpoint after N entries or T seconds, its files,
a restart that goes on from the stored frontier, a refused write retried, and receipts made
from the frontiers (checked offline)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import ChainBroken, Checkpointer, Stored
from gateway.audit.leaf import AuditEvent
from gateway.audit.merkle import leaf_hash, root
from gateway.audit.note import open_checkpoint, vkey
from gateway.audit.proofs import locate, receipt
from gateway.audit.receipt import ReceiptError, verify_receipt
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditCheckpoint, AuditEntry
from gateway.db.session import Sessions
from tests.audit.chained import (
    KEYS,
    chain_of,
    chain_url,
    entries_of,
    exchange_row,
    postgres_chain_url,
    sqlite_chain_url,
)
from tests.databases import run_on

__all__ = ["chain_url", "postgres_chain_url", "sqlite_chain_url"]

VKEY = vkey(KEYS.name, KEYS.public_key)
POLL = 0.01


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _events(sessions: Sessions, chain: AuditChain, count: int) -> None:
    async with sessions.begin() as session:
        for n in range(count):
            await chain.append_event(session, AuditEvent("key.created", "cli:tests", f"k{n}",
                                                         None, {"context": "bank"}))


async def _exchanges(sessions: Sessions, chain: AuditChain, ids: list[str]) -> None:
    async with sessions.begin() as session:
        await chain.append_exchanges(session, [(exchange_row(i), []) for i in ids])


async def _stored(sessions: Sessions, chain: AuditChain) -> list[int]:
    async with sessions() as session:
        return list(await session.scalars(
            select(AuditCheckpoint.size).where(AuditCheckpoint.chain_id == chain.chain_id)
            .order_by(AuditCheckpoint.size)))


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(POLL)


async def _true_root(sessions: Sessions, chain: AuditChain, size: int) -> bytes:
    entries = await entries_of(sessions, chain.chain_id)
    return root([bytes.fromhex(e.entry_hash) for e in entries[:size]])


def _config(tmp_path: Path, **changes: Any) -> AuditConfig:
    values: dict[str, Any] = {"checkpoint_dir": tmp_path / "checkpoints",
                              "keys_dir": tmp_path / "keys", "checkpoint_every": 1000,
                              "checkpoint_seconds": 3600.0}
    values.update(changes)
    return AuditConfig(**values)


def _running(checkpointer: Checkpointer) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(checkpointer.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_one_after_every_n_entries(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path, checkpoint_every=5),
                                    poll_seconds=POLL)
        task = _running(checkpointer)
        await _events(sessions, chain, 5)
        await _until(lambda: _has(sessions, chain, [5]))
        await _events(sessions, chain, 3)
        await asyncio.sleep(POLL * 10)
        assert await _stored(sessions, chain) == [5]  # 3 new: not yet
        await _events(sessions, chain, 2)
        await _until(lambda: _has(sessions, chain, [5, 10]))
        await _stop(task)

    run_on(chain_url, work)


async def _has(sessions: Sessions, chain: AuditChain, sizes: list[int]) -> bool:
    return await _stored(sessions, chain) == sizes


def test_one_after_t_seconds_when_an_entry_is_new(chain_url: str, tmp_path: Path) -> None:
    chain, clock = chain_of(), Clock()

    async def work(sessions: Sessions) -> None:
        config = _config(tmp_path, checkpoint_seconds=60.0)
        checkpointer = Checkpointer(chain, sessions, config, clock=clock, poll_seconds=POLL)
        task = _running(checkpointer)
        clock.now = 120.0
        await asyncio.sleep(POLL * 10)
        assert await _stored(sessions, chain) == []  # time passed, nothing new: none
        await _events(sessions, chain, 2)
        await _until(lambda: _has(sessions, chain, [2]))
        await _events(sessions, chain, 1)
        clock.now = 150.0
        await asyncio.sleep(POLL * 10)
        assert await _stored(sessions, chain) == [2]  # 30 s after the last: not yet
        clock.now = 181.0
        await _until(lambda: _has(sessions, chain, [2, 3]))
        await _stop(task)

    run_on(chain_url, work)


def test_the_checkpoint_signs_the_trees_root_and_is_written_out(chain_url: str,
                                                               tmp_path: Path) -> None:
    chain = chain_of()
    config = _config(tmp_path)

    async def work(sessions: Sessions) -> Stored | None:
        checkpointer = Checkpointer(chain, sessions, config)
        assert await checkpointer.checkpoint() is None  # an empty chain has none
        await _events(sessions, chain, 11)
        stored = await checkpointer.checkpoint()
        assert stored is not None and stored.root == await _true_root(sessions, chain, 11)
        assert await checkpointer.checkpoint() == stored  # nothing new: the same one
        return stored

    stored = run_on(chain_url, work)
    assert stored is not None
    opened = open_checkpoint(stored.note, VKEY)
    assert (opened.origin, opened.size, opened.root) == (
        f"situate.local/audit/{chain.chain_id}", 11, stored.root)
    folder = config.checkpoint_dir / chain.chain_id
    assert (folder / "11.checkpoint").read_text() == stored.note
    assert (folder / "latest.checkpoint").read_text() == stored.note
    assert sorted(p.name for p in folder.iterdir()) == ["11.checkpoint", "latest.checkpoint"]


def test_a_restart_goes_on_from_the_stored_frontier(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()
    config = _config(tmp_path)

    async def work(sessions: Sessions) -> None:
        await _events(sessions, chain, 7)
        assert (await Checkpointer(chain, sessions, config).checkpoint()) is not None
        await _events(sessions, chain, 6)
        expected = await _true_root(sessions, chain, 13)
        # Spoil an entry the first checkpoint covered: going on from its frontier, the next
        # one never reads it again.
        async with sessions.begin() as session:
            await session.execute(update(AuditEntry).where(
                AuditEntry.chain_id == chain.chain_id, AuditEntry.seq == 0
            ).values(entry_hash="00" * 32))
        again = Checkpointer(chain, sessions, config)  # a new process
        task = _running(again)
        made = await again.checkpoint()
        assert made is not None and (made.size, made.root) == (13, expected)
        assert open_checkpoint(made.note, VKEY).size == 13
        await _stop(task)
        assert (config.checkpoint_dir / chain.chain_id / "latest.checkpoint").read_text() == (
            made.note)

    run_on(chain_url, work)


def test_a_refused_write_is_kept_and_retried(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()
    blocker = tmp_path / "checkpoints"
    blocker.write_text("a file where the folder should be")  # every write there fails
    config = _config(tmp_path, checkpoint_every=3)

    async def work(sessions: Sessions) -> None:
        checkpointer = Checkpointer(chain, sessions, config, poll_seconds=POLL)
        await _events(sessions, chain, 3)
        stored = await checkpointer.checkpoint()
        assert stored is not None and checkpointer.files.waiting == 1  # the row holds it
        task = _running(checkpointer)
        await asyncio.sleep(POLL * 5)
        assert checkpointer.files.waiting == 1 and not task.done()
        blocker.unlink()
        await _until(lambda: _written(checkpointer))
        assert (blocker / chain.chain_id / "3.checkpoint").read_text() == stored.note
        await _stop(task)

    run_on(chain_url, work)


async def _written(checkpointer: Checkpointer) -> bool:
    return checkpointer.files.waiting == 0


def test_files_lost_before_a_restart_are_written_again(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()
    config = _config(tmp_path)
    folder = config.checkpoint_dir / chain.chain_id

    async def work(sessions: Sessions) -> None:
        first = Checkpointer(chain, sessions, config)
        for _ in range(3):
            await _events(sessions, chain, 2)
            await first.checkpoint()
        for name in ("2.checkpoint", "6.checkpoint", "latest.checkpoint"):
            (folder / name).unlink()
        task = _running(Checkpointer(chain, sessions, config, poll_seconds=POLL))
        await _until(lambda: _files(folder, ["2", "4", "6", "latest"]))
        await _stop(task)

    run_on(chain_url, work)
    assert (folder / "latest.checkpoint").read_text() == (folder / "6.checkpoint").read_text()


async def _files(folder: Path, stems: list[str]) -> bool:
    return sorted(p.stem for p in folder.glob("*.checkpoint")) == stems


class _Away:
    """Sessions on a database that is away for the first ``failures`` uses."""

    def __init__(self, sessions: Sessions, failures: int) -> None:
        self._sessions, self.failures = sessions, failures

    def _use(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is away"))

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        self._use()
        return self._sessions()

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]:
        self._use()
        return self._sessions.begin()


def test_a_database_away_is_waited_out(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        away = _Away(sessions, 6)
        config = _config(tmp_path, checkpoint_every=3)
        task = _running(Checkpointer(chain, away, config, poll_seconds=POLL))
        await _events(sessions, chain, 3)
        await _until(lambda: _has(sessions, chain, [3]))
        assert away.failures == 0 and not task.done()
        await _stop(task)

    run_on(chain_url, work)


def test_two_signers_of_one_size_agree(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        await _events(sessions, chain, 4)
        one = Checkpointer(chain, sessions, _config(tmp_path / "one"))
        other = Checkpointer(chain, sessions, _config(tmp_path / "other"))
        made = await asyncio.gather(one.checkpoint(), other.checkpoint())
        assert [m.size if m else None for m in made] == [4, 4]
        assert await _stored(sessions, chain) == [4]

    run_on(chain_url, work)


def test_close_signs_what_is_left_and_a_broken_chain_none(chain_url: str,
                                                        tmp_path: Path) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path))
        await _events(sessions, chain, 2)
        await checkpointer.close()
        assert await _stored(sessions, chain) == [2]
        async with sessions.begin() as session:  # the head says 5, two entries exist
            await session.execute(update(ChainRow).where(
                ChainRow.chain_id == chain.chain_id).values(size=5))
        with pytest.raises(ChainBroken, match="entries missing after 2"):
            await checkpointer.checkpoint()
        await checkpointer.close()  # logged, not raised: the shutdown goes on
        assert await _stored(sessions, chain) == [2]

    run_on(chain_url, work)


def test_receipts_from_frontiers_check_out_offline(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()
    ids = [f"req_{chain.chain_id}_{n}" for n in range(23)]

    async def work(sessions: Sessions) -> list[dict[str, Any]]:
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path))
        for start in range(0, 23, 5):  # checkpoints at 5, 10, 15, 20; 21-23 by a receipt
            await _exchanges(sessions, chain, ids[start:start + 5])
            if start + 5 <= 20:
                await checkpointer.checkpoint()
        found = []
        for request_id in ids:
            async with sessions() as session:
                where = await locate(session, request_id)
            assert where is not None
            made = await receipt(sessions, checkpointer, request_id, where, VKEY)
            assert made is not None
            found.append(made)
        return found

    receipts = run_on(chain_url, work)
    for seq, made in enumerate(receipts):
        verified = verify_receipt(made, VKEY, origin="situate.local/audit")
        assert (verified.seq, verified.request_id) == (seq, f"req_{chain.chain_id}_{seq}")
    assert [r["tree_size"] for r in receipts[3:6]] == [5, 5, 10]
    assert receipts[-1]["tree_size"] == 23
    assert json.loads(json.dumps(receipts[0])) == receipts[0]


def test_receipts_asked_at_once_share_one_checkpoint(chain_url: str, tmp_path: Path) -> None:
    chain = chain_of()
    ids = [f"req_{chain.chain_id}_{n}" for n in range(8)]

    async def one(sessions: Sessions, checkpointer: Checkpointer,
                  request_id: str) -> dict[str, Any] | None:
        async with sessions() as session:
            where = await locate(session, request_id)
        assert where is not None
        return await receipt(sessions, checkpointer, request_id, where, VKEY)

    async def work(sessions: Sessions) -> list[dict[str, Any] | None]:
        for request_id in ids:  # each call's record in its own batch
            await _exchanges(sessions, chain, [request_id])
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path))
        made = await asyncio.gather(*(one(sessions, checkpointer, i) for i in ids))
        assert await _stored(sessions, chain) == [8]
        return made

    for made in run_on(chain_url, work):
        assert made is not None and verify_receipt(made, VKEY).checkpoint.size == 8


def _changed(made: dict[str, Any], what: str) -> dict[str, Any]:
    changed = dict(made)
    if what == "leaf":
        changed["leaf"] = made["leaf"].replace('"status":"ok"', '"status":"error"')
    elif what == "leaf and hash":
        changed["leaf"] = made["leaf"].replace('"status":"ok"', '"status":"error"')
        changed["leaf_hash"] = leaf_hash(changed["leaf"].encode()).hex()
    elif what == "proof":
        changed["inclusion_proof"] = list(reversed(made["inclusion_proof"]))
    elif what == "seq":
        changed["seq"] = made["seq"] + 1
    elif what == "request_id":
        changed["request_id"] = "req_someone_else"
    elif what == "tree_size":
        changed["tree_size"] = made["tree_size"] + 1
    elif what == "checkpoint":
        changed["checkpoint"] = made["checkpoint"].replace("\n7\n", "\n8\n")
    return changed


@pytest.mark.parametrize("what", ["leaf", "leaf and hash", "proof", "seq", "request_id",
                                  "tree_size", "checkpoint"])
def test_a_changed_receipt_is_refused(chain_url: str, tmp_path: Path, what: str) -> None:
    chain = chain_of()
    ids = [f"req_{chain.chain_id}_{n}" for n in range(7)]

    async def work(sessions: Sessions) -> dict[str, Any] | None:
        await _exchanges(sessions, chain, ids)
        async with sessions() as session:
            where = await locate(session, ids[2])
        assert where is not None
        return await receipt(sessions, Checkpointer(chain, sessions, _config(tmp_path)),
                             ids[2], where, VKEY)

    made = run_on(chain_url, work)
    assert made is not None and verify_receipt(made, VKEY).seq == 2
    with pytest.raises(ReceiptError):
        verify_receipt(_changed(made, what), VKEY)


def test_a_receipt_needs_the_operators_key_and_origin(sqlite_chain_url: str,
                                                     tmp_path: Path) -> None:
    chain = chain_of()
    other = AuditChain.from_config(_config(tmp_path / "forger"))

    async def work(sessions: Sessions) -> dict[str, Any] | None:
        await _exchanges(sessions, chain, ["req_x"])
        async with sessions() as session:
            where = await locate(session, "req_x")
        assert where is not None
        return await receipt(sessions, Checkpointer(chain, sessions, _config(tmp_path)),
                             "req_x", where, VKEY)

    made = run_on(sqlite_chain_url, work)
    assert made is not None
    with pytest.raises(ReceiptError, match="no signature by situate"):
        verify_receipt(made, vkey("situate", other.keys.public_key))
    with pytest.raises(ReceiptError, match="origin"):
        verify_receipt(made, VKEY, origin="someone.else/audit")
    with pytest.raises(ReceiptError, match="malformed"):
        verify_receipt({**made, "object": "chat.completion"}, VKEY)
