"""A caller's receipt for one exchange: its chain entry, a signed checkpoint whose tree holds
it, and the inclusion proof between the two (checked offline by ``gateway.audit.receipt``).

The proof needs no leaf before the entry: its left siblings are the tree's compact range at
the entry's position, which the last checkpoint before it stored (and the few entries
between); only the entries from it up to the covering checkpoint are read. A receipt costs
about two checkpoint intervals of hashing, whatever the chain's length.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.checkpoints import (
    Checkpointer,
    Stored,
    entry_hashes,
    extend,
    first_covering,
    signed_frontier,
)
from gateway.audit.merkle import Frontier, inclusion_proof_after
from gateway.db.models import AuditCheckpoint, AuditEntry
from gateway.db.session import Sessions

RECEIPT_OBJECT = "receipt"


@dataclass(frozen=True, slots=True)
class Located:
    """Where an exchange's record is on a chain."""

    chain_id: str
    seq: int
    leaf: str
    entry_hash: str


async def locate(session: AsyncSession, exchange_id: str) -> Located | None:
    """The exchange's chain entry (None when it was never chained)."""
    row = (await session.execute(
        select(AuditEntry.chain_id, AuditEntry.seq, AuditEntry.leaf, AuditEntry.entry_hash)
        .where(AuditEntry.ref == exchange_id, AuditEntry.kind == "exchange")
        .order_by(AuditEntry.chain_id, AuditEntry.seq).limit(1)
    )).first()
    return None if row is None else Located(str(row[0]), int(row[1]), str(row[2]), str(row[3]))


async def before(session: AsyncSession, chain_id: str, seq: int,
                 verifier_key: str) -> Frontier:
    """The compact range of the chain's first ``seq`` entries: the last checkpoint's at or
    before ``seq`` (once shown to be the signed one), grown with the entries after it."""
    row = await session.scalar(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain_id == chain_id, AuditCheckpoint.size <= seq)
        .order_by(AuditCheckpoint.size.desc()).limit(1)
    )
    frontier = Frontier() if row is None else signed_frontier(Stored.of(row), verifier_key)
    await extend(session, chain_id, frontier, seq)
    return frontier


async def receipt(sessions: Sessions, checkpointer: Checkpointer | None, request_id: str,
                  where: Located, verifier_key: str) -> dict[str, Any] | None:
    """The receipt of the exchange at ``where``; None when no checkpoint covers it yet and
    none can be made here (its chain is another replica's)."""
    stored = await _covering(sessions, checkpointer, where)
    if stored is None:
        return None
    async with sessions() as session:
        left = await before(session, where.chain_id, where.seq, verifier_key)
        right = await entry_hashes(session, where.chain_id, where.seq, stored.size)
    proof = await asyncio.to_thread(inclusion_proof_after, left, right)
    return {
        "object": RECEIPT_OBJECT,
        "request_id": request_id,
        "chain": where.chain_id,
        "seq": where.seq,
        "leaf": where.leaf,
        "leaf_hash": where.entry_hash,
        "checkpoint": stored.note,
        "tree_size": stored.size,
        "inclusion_proof": [base64.b64encode(value).decode() for value in proof],
        "verifier_key": verifier_key,
    }


async def _covering(sessions: Sessions, checkpointer: Checkpointer | None,
                    where: Located) -> Stored | None:
    if checkpointer is not None and checkpointer.chain.chain_id == where.chain_id:
        return await checkpointer.covering(where.seq)
    async with sessions() as session:  # another replica's chain: its own checkpoints only
        return await first_covering(session, where.chain_id, where.seq)
