"""A stored checkpoint's frontier is gone on from only when it is the tree that was signed: an
edited audit_checkpoints row stops the checkpointer (its task fails, nothing more is signed)
and a receipt, on each dialect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import ChainBroken, Checkpointer
from gateway.audit.leaf import AuditEvent
from gateway.audit.note import vkey
from gateway.audit.proofs import locate, receipt
from gateway.clock import now
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditCheckpoint
from gateway.db.session import Sessions
from tests.audit.chained import (
    KEYS,
    chain_of,
    chain_url,
    exchange_row,
    postgres_chain_url,
    sqlite_chain_url,
)
from tests.databases import run_on

__all__ = ["chain_url", "postgres_chain_url", "sqlite_chain_url"]

VKEY = vkey(KEYS.name, KEYS.public_key)

#: an edit of the stored frontier, and what the refusal says
EDITS: dict[str, tuple[dict[str, Any], str]] = {
    "a hash": ({"size": 7, "hashes": ["00" * 32, "11" * 32, "22" * 32]}, "root is not"),
    "its size": ({"size": 8, "hashes": ["00" * 32]}, "range of 8 entries"),
}


def _config(tmp_path: Path) -> AuditConfig:
    return AuditConfig(checkpoint_dir=tmp_path / "checkpoints", keys_dir=tmp_path / "keys",
                       checkpoint_every=5, checkpoint_seconds=3600.0)


async def _grow(sessions: Sessions, chain: AuditChain, events: int, exchanges: int) -> None:
    async with sessions.begin() as session:
        for n in range(events):
            await chain.append_event(session, AuditEvent("key.created", "cli:tests", f"k{n}",
                                                         None, {"context": "bank"}))
        await chain.append_exchanges(
            session, [(exchange_row(f"req_{chain.chain_id}_{n}"), []) for n in range(exchanges)]
        )


async def _sizes(sessions: Sessions, chain: AuditChain) -> list[int]:
    async with sessions() as session:
        return list(await session.scalars(
            select(AuditCheckpoint.size).where(AuditCheckpoint.chain_id == chain.chain_id)))


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_frontier_is_refused_and_nothing_signed(chain_url: str, tmp_path: Path,
                                                          edit: str) -> None:
    chain = chain_of()
    frontier, says = EDITS[edit]

    async def work(sessions: Sessions) -> None:
        await _grow(sessions, chain, 7, 0)
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path), poll_seconds=0.01)
        assert await checkpointer.checkpoint() is not None
        async with sessions.begin() as session:
            await session.execute(update(AuditCheckpoint).where(
                AuditCheckpoint.chain_id == chain.chain_id).values(frontier=frontier))
        await _grow(sessions, chain, 0, 6)
        with pytest.raises(ChainBroken, match=says):
            await checkpointer.checkpoint()
        task = asyncio.get_running_loop().create_task(checkpointer.run())  # due: 6 new
        with pytest.raises(ChainBroken, match=says):
            await asyncio.wait_for(task, 10)
        async with sessions() as session:
            where = await locate(session, f"req_{chain.chain_id}_2")  # entry 9
        assert where is not None
        with pytest.raises(ChainBroken, match=says):
            await receipt(sessions, checkpointer, "x", where, VKEY)
        assert await _sizes(sessions, chain) == [7]

    run_on(chain_url, work)


def test_a_receipt_refuses_an_edited_frontier_it_proves_from(sqlite_chain_url: str,
                                                             tmp_path: Path) -> None:
    chain = chain_of()

    async def work(sessions: Sessions) -> None:
        await _grow(sessions, chain, 7, 6)
        checkpointer = Checkpointer(chain, sessions, _config(tmp_path))
        assert await checkpointer.checkpoint() is not None  # at 13: covers entry 9
        async with sessions.begin() as session:  # one at 7 too, its frontier edited
            session.add(AuditCheckpoint(
                chain_id=chain.chain_id, size=7, root="00" * 32, note="not a note",
                frontier=EDITS["a hash"][0], created_at=now()))
        async with sessions() as session:
            where = await locate(session, f"req_{chain.chain_id}_2")
        assert where is not None
        with pytest.raises(ChainBroken, match="does not verify"):
            await receipt(sessions, checkpointer, "x", where, VKEY)

    run_on(sqlite_chain_url, work)
