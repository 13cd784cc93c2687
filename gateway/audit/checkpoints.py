"""Signed checkpoints of a chain, made as it grows.

A checkpoint is the RFC 9162 Merkle root over a chain's first ``size`` entries, signed as a
C2SP tlog-checkpoint (``gateway.audit.note``) with the chain's Ed25519 key, origin
``<audit.origin>/<chain id>``. Each is stored in audit_checkpoints with the tree's compact
range at its size, so the next one goes on from there and reads only the entries after it,
never the whole chain; and written out as a file (``checkpoint_files``) for whoever keeps
copies outside the gateway: a copy that left is what catches a rewrite of the whole chain.

The ``Checkpointer`` signs one after ``audit.checkpoint_every`` new entries, or
``audit.checkpoint_seconds`` after the last one when at least one entry is new, on demand
(a caller's receipt needs one that covers its exchange), and once at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import AuditChain
from gateway.audit.checkpoint_files import CheckpointFiles, missing
from gateway.audit.merkle import Frontier
from gateway.audit.note import NoteError, checkpoint_body, open_checkpoint, sign, vkey
from gateway.clock import now
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditCheckpoint, AuditEntry
from gateway.db.session import Sessions

log = logging.getLogger("gateway.audit.checkpoints")

#: entries read (and hashed) at a time when a checkpoint goes on from the last one
PAGE = 5000
#: the shortest time between two checkpoints signed for receipts
ON_DEMAND_SECONDS = 0.25


class ChainBroken(RuntimeError):
    """The chain's entries do not run unbroken up to its size: no checkpoint is signed."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A checkpoint as stored: the signed note and the tree's compact range at its size."""

    chain_id: str
    size: int
    root: bytes
    note: str
    frontier: Frontier

    @classmethod
    def of(cls, row: AuditCheckpoint) -> Stored:
        return cls(row.chain_id, row.size, bytes.fromhex(row.root), row.note,
                   Frontier.from_json(row.frontier))


def signed_frontier(stored: Stored, verifier_key: str) -> Frontier:
    """A copy of the stored checkpoint's compact range, to go on from, once it is shown to
    be the tree that was signed: the note opens with ``verifier_key`` and its root and size
    are the range's. An edited row fails here (ChainBroken) rather than have a false root
    signed or proved against."""
    where = f"audit chain {stored.chain_id!r}: the checkpoint at size {stored.size}"
    try:
        signed = open_checkpoint(stored.note, verifier_key)
    except NoteError as exc:
        raise ChainBroken(f"{where} does not verify ({exc}); run `gateway audit verify`") from exc
    frontier = stored.frontier.copy()
    if signed.size != stored.size or frontier.size != stored.size:
        raise ChainBroken(f"{where} is stored with a range of {frontier.size} entries, its note "
                          f"says {signed.size}; run `gateway audit verify`")
    if frontier.root() != signed.root:
        raise ChainBroken(f"{where} is stored with a range whose root is not the one signed; "
                          "run `gateway audit verify`")
    return frontier


def origin_of(config: AuditConfig, chain_id: str) -> str:
    """The origin line of a chain's checkpoints."""
    return f"{config.origin}/{chain_id}"


async def chain_size(session: AsyncSession, chain_id: str) -> int:
    """How many entries the chain has (0 before its first)."""
    size = await session.scalar(select(ChainRow.size).where(ChainRow.chain_id == chain_id))
    return int(size or 0)


async def latest(session: AsyncSession, chain_id: str) -> Stored | None:
    """The chain's newest stored checkpoint."""
    row = await session.scalar(
        select(AuditCheckpoint).where(AuditCheckpoint.chain_id == chain_id)
        .order_by(AuditCheckpoint.size.desc()).limit(1)
    )
    return None if row is None else Stored.of(row)


async def first_covering(session: AsyncSession, chain_id: str, seq: int) -> Stored | None:
    """The chain's first stored checkpoint whose tree holds entry ``seq``."""
    row = await session.scalar(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain_id == chain_id, AuditCheckpoint.size > seq)
        .order_by(AuditCheckpoint.size).limit(1)
    )
    return None if row is None else Stored.of(row)


class Checkpointer:
    """Signs one chain's checkpoints, stores them and writes their files; one per process
    and chain (a second one elsewhere, such as ``gateway audit checkpoint``, is harmless:
    the one that stores a size first wins, the other takes its checkpoint)."""

    def __init__(self, chain: AuditChain, sessions: Sessions, config: AuditConfig, *,
                 clock: Callable[[], float] = time.monotonic,
                 poll_seconds: float | None = None) -> None:
        self.chain = chain
        #: how often the loop looks at the chain's size
        self.poll_seconds = poll_seconds or max(0.02, min(1.0, config.checkpoint_seconds / 4))
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self.files = CheckpointFiles(config.checkpoint_dir, chain.chain_id)
        self._lock = asyncio.Lock()
        #: the newest checkpoint's size as this process knows it, and when it was made
        self._size = -1
        self._made_at = clock()

    @property
    def origin(self) -> str:
        return origin_of(self._config, self.chain.chain_id)

    @property
    def verifier_key(self) -> str:
        """The key a checkpoint is checked with, to publish (``gateway audit key``)."""
        return vkey(self.chain.keys.name, self.chain.keys.public_key)

    async def checkpoint(self) -> Stored | None:
        """Sign, store and write a checkpoint for the chain's current size, unless the newest
        stored one has that size already: the newest checkpoint either way (None while the
        chain is empty)."""
        async with self._lock:
            stored = await self._sign()
            if stored is not None and stored.size > self._size:
                self._size, self._made_at = stored.size, self._clock()
                self.files.add(stored.size, stored.note)
            await asyncio.to_thread(self.files.flush)
            return stored

    async def covering(self, seq: int) -> Stored | None:
        """A checkpoint whose tree holds entry ``seq``: the first stored one, or one signed
        now; None when the chain has no such entry."""
        async with self._sessions() as session:
            found = await first_covering(session, self.chain.chain_id, seq)
        if found is not None:
            return found
        # Callers asking for receipts right after their calls would each sign a checkpoint
        # (a row, two fsynced files): one every ON_DEMAND_SECONDS at most, covering them all.
        await asyncio.sleep(max(0.0, self._made_at + ON_DEMAND_SECONDS - self._clock()))
        made = await self.checkpoint()
        return made if made is not None and made.size > seq else None

    async def run(self) -> None:
        """The background task: a checkpoint after ``checkpoint_every`` new entries or
        ``checkpoint_seconds`` after the last one, and the files the disk refused retried.
        A database away is waited out here, tick after tick (the gateway serves on, degraded,
        and this task is no failure of its own); a chain with entries missing fails it."""
        recovered, away = False, False
        while True:
            try:
                if not recovered:
                    await self._recover()
                    recovered = True
                await self._tick()
            except (SQLAlchemyError, OSError) as exc:
                if not away:
                    log.warning("audit checkpoints wait for the database: %s", exc)
                away = True
            else:
                if away:
                    log.warning("audit checkpoints go on: the database answers again")
                away = False
            await asyncio.sleep(self.poll_seconds)

    async def _tick(self) -> None:
        if await self._due():
            await self.checkpoint()
        elif self.files.waiting:
            async with self._lock:
                await asyncio.to_thread(self.files.flush)

    async def close(self) -> None:
        """The shutdown's checkpoint, once the records are written: nothing goes unsigned.
        A failure is logged, never the shutdown's (the next start signs what is left)."""
        try:
            stored = await self.checkpoint()
        except Exception:
            log.exception("the shutdown's audit checkpoint failed")
            return
        if self.files.waiting:
            log.error("at shutdown, %d checkpoint files could not be written to %s (they are "
                      "in the database's audit_checkpoints)", self.files.waiting,
                      self.files.folder)
        if stored is not None:
            log.info("audit chain %s: checkpoint at size %d", stored.chain_id, stored.size)

    async def _due(self) -> bool:
        async with self._sessions() as session:
            size = await chain_size(session, self.chain.chain_id)
        new = size - max(self._size, 0)
        if new >= self._config.checkpoint_every:
            return True
        return new > 0 and self._clock() - self._made_at >= self._config.checkpoint_seconds

    async def _recover(self) -> None:
        """At start: the newest stored checkpoint, and the files that are not on the disk
        (a write refused before a restart) written now."""
        async with self._sessions() as session:
            newest = await latest(session, self.chain.chain_id)
            sizes = list(await session.scalars(
                select(AuditCheckpoint.size).where(AuditCheckpoint.chain_id == self.chain.chain_id)
            ))
        if newest is None:
            return
        self._size = newest.size
        absent = await asyncio.to_thread(missing, self.files, sizes)
        if absent:
            await self._rewrite([*absent, newest.size])

    async def _rewrite(self, sizes: list[int]) -> None:
        async with self._sessions() as session:
            rows = await session.execute(
                select(AuditCheckpoint.size, AuditCheckpoint.note).where(
                    AuditCheckpoint.chain_id == self.chain.chain_id,
                    AuditCheckpoint.size.in_(sizes),
                )
            )
            for size, note in rows:
                self.files.add(int(size), note)
        async with self._lock:
            await asyncio.to_thread(self.files.flush)

    async def _sign(self) -> Stored | None:
        try:
            async with self._sessions.begin() as session:
                return await self._sign_in(session)
        except IntegrityError:  # another process stored this size first: take its note
            async with self._sessions() as session:
                return await latest(session, self.chain.chain_id)

    async def _sign_in(self, session: AsyncSession) -> Stored | None:
        chain_id = self.chain.chain_id
        size = await chain_size(session, chain_id)
        last = await latest(session, chain_id)
        if size == 0 or (last is not None and last.size >= size):
            return last
        frontier = Frontier() if last is None else signed_frontier(last, self.verifier_key)
        await extend(session, chain_id, frontier, size)
        root = frontier.root()
        keys = self.chain.keys
        note = sign(checkpoint_body(self.origin, size, root), keys.name, keys.signing_key)
        session.add(AuditCheckpoint(chain_id=chain_id, size=size, root=root.hex(), note=note,
                                    frontier=frontier.to_json(), created_at=now()))
        await session.flush()
        return Stored(chain_id, size, root, note, frontier)


async def entry_pages(session: AsyncSession, chain_id: str, start: int,
                      end: int) -> AsyncIterator[list[bytes]]:
    """The leaf hashes of entries ``start`` to ``end - 1``, a page at a time; ChainBroken
    when one is missing."""
    at = start
    while at < end:
        rows = (await session.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash)
            .where(AuditEntry.chain_id == chain_id, AuditEntry.seq >= at,
                   AuditEntry.seq < min(end, at + PAGE))
            .order_by(AuditEntry.seq)
        )).all()
        if not rows or any(seq != at + offset for offset, (seq, _) in enumerate(rows)):
            raise ChainBroken(f"audit chain {chain_id!r}: entries missing after {at} "
                              f"(its size says {end}); run `gateway audit verify`")
        at += len(rows)
        yield [bytes.fromhex(value) for _, value in rows]


async def entry_hashes(session: AsyncSession, chain_id: str, start: int,
                       end: int) -> list[bytes]:
    """The leaf hashes of entries ``start`` to ``end - 1``, all of them."""
    return [value async for page in entry_pages(session, chain_id, start, end)
            for value in page]


async def extend(session: AsyncSession, chain_id: str, frontier: Frontier, size: int) -> None:
    """Grow ``frontier`` with the chain's entries from its size up to ``size``, a page at a
    time, the hashing off the event loop."""
    async for page in entry_pages(session, chain_id, frontier.size, size):
        await asyncio.to_thread(frontier.extend, page)
