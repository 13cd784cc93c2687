"""Appending to a hash chain: the sequencer.

Each replica keeps its own chain (``audit.chain_id``); within one, every entry takes the next
sequence number and names the previous entry's hash. Appending happens inside the caller's
transaction, beside the rows it is about, and commits or rolls back with them. The chain's
``audit_chains`` row is the lock: an UPDATE of it comes first, on every dialect (a row lock
on PostgreSQL, the write lock on SQLite), so two writers, in one process or in many, take
turns; the row is made on first use (insert if absent, then the UPDATE again). Under
PostgreSQL's read committed, an UPDATE that waited for the lock reads the row as its holder
committed it, so its RETURNING is the head to go on from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Table, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import (
    ZERO_HASH,
    AuditEvent,
    entry_hash,
    event_body,
    exchange_body,
    leaf_text,
)
from gateway.clock import now
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditEntry

#: an exchange as the chain takes it: its row and its findings
ExchangeRows = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: Literal["exchange", "event"]
    label: str
    ref: str
    body: Mapping[str, Any]


class AuditChain:
    """One replica's chain: its id, its keys, and whether records go on it at all."""

    def __init__(self, chain_id: str, keys: AuditKeys, *, enabled: bool = True) -> None:
        self.chain_id = chain_id
        self.keys = keys
        self.enabled = enabled

    @classmethod
    def from_config(cls, config: AuditConfig, *, create_keys: bool = True) -> AuditChain:
        """The chain ``config`` names, its keys loaded (and made when missing, with
        ``create_keys``); raises ``AuditKeyError`` naming a key file it cannot use."""
        keys = AuditKeys.load(config, create=create_keys)
        return cls(config.chain_id, keys, enabled=config.enabled)

    async def append_exchanges(
        self, session: AsyncSession, exchanges: Sequence[ExchangeRows]
    ) -> None:
        """Chain these exchanges, in order, in the session's transaction."""
        if not self.enabled or not exchanges:
            return
        pending = [
            _Pending("exchange", "exchange", str(row["id"]), exchange_body(row, found, self.keys))
            for row, found in exchanges
        ]
        await self._append(session, pending)

    async def append_event(self, session: AsyncSession, event: AuditEvent) -> None:
        """Chain one event, in the session's transaction."""
        if not self.enabled:
            return
        await self._append(session, [_Pending("event", event.type, event.id, event_body(event))])

    async def _append(self, session: AsyncSession, pending: Sequence[_Pending]) -> None:
        size, head = await self._lock(session)
        at = now()
        rows = []
        for offset, item in enumerate(pending):
            leaf = leaf_text(self.chain_id, size + offset, head, item.kind, item.body)
            head = entry_hash(leaf)
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "seq": size + offset,
                    "kind": item.label,
                    "ref": item.ref,
                    "leaf": leaf.decode("utf-8"),
                    "entry_hash": head,
                    "created_at": at,
                }
            )
        await session.execute(insert(_ENTRIES), rows)
        await session.execute(
            update(_CHAINS)
            .where(_CHAINS.c.chain_id == self.chain_id)
            .values(size=size + len(rows), head=head, updated_at=at)
        )

    async def _lock(self, session: AsyncSession) -> tuple[int, str]:
        """Lock the chain's row, making it first when there is none: its (size, head)."""
        found = await self._touch(session)
        if found is None:
            await session.execute(_insert_absent(session, self.chain_id))
            found = await self._touch(session)
        if found is None:  # the row is there now, made by this transaction or another's
            raise RuntimeError(f"audit chain {self.chain_id!r}: its head row is missing")
        return found

    async def _touch(self, session: AsyncSession) -> tuple[int, str] | None:
        result = await session.execute(
            update(_CHAINS)
            .where(_CHAINS.c.chain_id == self.chain_id)
            .values(updated_at=now())
            .returning(_CHAINS.c.size, _CHAINS.c.head)
        )
        row = result.first()
        return None if row is None else (int(row[0]), str(row[1]))


_CHAINS: Table = ChainRow.__table__  # type: ignore[assignment]
_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]


def _insert_absent(session: AsyncSession, chain_id: str) -> Any:
    """INSERT of an empty chain's row that does nothing when a writer made it first."""
    at = now()
    values = {
        "chain_id": chain_id,
        "size": 0,
        "head": ZERO_HASH,
        "created_at": at,
        "updated_at": at,
    }
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_CHAINS).values(values).on_conflict_do_nothing()
    return sqlite.insert(_CHAINS).values(values).on_conflict_do_nothing()
