"""The sequencer on PostgreSQL with several replicas' worth of writers (each its own engine,
so its own connection pool): appending at once to one chain, and to two, the entries stay
contiguous from 0 with no sequence number taken twice and every prev the entry before's hash;
a writer waits for the one holding the chain's row, and goes on from what it committed (or
from where it was, when it rolled back), even on the chain's very first entry."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.audit.chain import AuditChain
from gateway.audit.leaf import ZERO_HASH, AuditEvent
from gateway.db.session import create_engine, create_sessions
from tests.audit.chained import (
    KEYS,
    assert_whole,
    exchange_row,
    postgres_chain_url,
)
from tests.databases import in_a_thread

__all__ = ["postgres_chain_url"]

WRITERS = 4  # engines, as replicas would each have theirs
ROUNDS = 15  # appends per writer


def _event(writer: int, n: int) -> AuditEvent:
    return AuditEvent("key.limits", "gateway", f"w{writer}-{n}", None, {"n": n})


async def _write(engine: AsyncEngine, chains: Sequence[AuditChain], writer: int) -> None:
    """ROUNDS appends, alternating events and batches of three exchanges (rows of nothing:
    the chain is what is tested), across the chains given."""
    sessions = create_sessions(engine)
    for n in range(ROUNDS):
        chain = chains[n % len(chains)]
        async with sessions.begin() as session:
            if n % 2:
                await chain.append_event(session, _event(writer, n))
            else:
                rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
                    (exchange_row(f"exc_{chain.chain_id}_{writer}_{n}_{i}"), []) for i in range(3)
                ]
                await chain.append_exchanges(session, rows)


def _run(url: str, chains: Sequence[AuditChain]) -> dict[str, list[Any]]:
    async def main() -> dict[str, list[Any]]:
        engines = [create_engine(url, pool_size=2, max_overflow=0) for _ in range(WRITERS)]
        try:
            await asyncio.gather(*(_write(e, chains, w) for w, e in enumerate(engines)))
            sessions = create_sessions(engines[0])
            return {c.chain_id: await assert_whole(sessions, c.chain_id) for c in chains}
        finally:
            for engine in engines:
                await engine.dispose()

    return in_a_thread(lambda: asyncio.run(main()))


def _expected(rounds: int) -> int:
    """Entries ``rounds`` appends make: events one each, batches three."""
    return sum(1 if n % 2 else 3 for n in range(rounds))


def test_replicas_appending_at_once_to_one_chain_never_share_a_number(
    postgres_chain_url: str,
) -> None:
    chain = AuditChain("one-" + secrets.token_hex(4), KEYS)
    entries = _run(postgres_chain_url, [chain])[chain.chain_id]
    assert len(entries) == WRITERS * _expected(ROUNDS)
    refs = [e.ref for e in entries if e.kind == "exchange"]
    assert len(refs) == len(set(refs))
    order = [e.leaf.split('"subject":"w')[1][0] for e in entries if e.kind != "exchange"]
    assert set(order) == {str(w) for w in range(WRITERS)}
    turns = sum(1 for a, b in pairwise(order) if a != b)
    assert turns >= WRITERS, f"the writers took turns only {turns} times: not at once"


def test_replicas_appending_at_once_to_two_chains_keep_them_apart(
    postgres_chain_url: str,
) -> None:
    chains = [AuditChain(f"two-{n}-" + secrets.token_hex(4), KEYS) for n in range(2)]
    found = _run(postgres_chain_url, chains)
    for n, chain in enumerate(chains):
        rounds = [r for r in range(ROUNDS) if r % 2 == n]
        entries = found[chain.chain_id]
        assert len(entries) == WRITERS * sum(1 if r % 2 else 3 for r in rounds)
        assert all(chain.chain_id in e.leaf for e in entries)


async def _held(session: AsyncSession, chain: AuditChain, subject: str) -> None:
    await chain.append_event(session, AuditEvent("key.created", "gateway", subject, None, {}))


def test_a_writer_waits_for_the_chains_holder_and_goes_on_from_what_it_did(
    postgres_chain_url: str,
) -> None:
    async def main() -> None:
        first, second = create_engine(postgres_chain_url), create_engine(postgres_chain_url)
        try:
            for outcome in ("commit", "rollback"):
                chain = AuditChain(f"held-{outcome}-" + secrets.token_hex(4), KEYS)
                await _one_holder(first, second, chain, outcome)
        finally:
            await first.dispose()
            await second.dispose()

    in_a_thread(lambda: asyncio.run(main()))


async def _one_holder(
    first: AsyncEngine, second: AsyncEngine, chain: AuditChain, outcome: str
) -> None:
    """The holder makes the chain's row (its first entry) and waits; the other writer blocks
    until the holder commits or rolls back, then appends after it, or first."""
    holder = create_sessions(first)()
    await holder.begin()
    await _held(holder, chain, "holder")

    async def other() -> None:
        async with create_sessions(second).begin() as session:
            await _held(session, chain, "other")

    waiting = asyncio.create_task(other())
    await asyncio.sleep(0.3)
    assert not waiting.done(), "the second writer did not wait for the chain's row"
    await (holder.commit() if outcome == "commit" else holder.rollback())
    await holder.close()
    await asyncio.wait_for(waiting, 5)
    entries = await assert_whole(create_sessions(first), chain.chain_id)
    subjects = ["holder", "other"] if outcome == "commit" else ["other"]
    assert [e.leaf.split('"subject":"')[1].split('"')[0] for e in entries] == subjects
    assert f'"prev":"{ZERO_HASH}"' in entries[0].leaf
