"""What the chain's tests share: fixed keys, migrated databases of each dialect, an exchange
row as the recorder writes one, and the check that a chain is whole."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, select

from gateway.audit.chain import AuditChain
from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import ZERO_HASH, entry_hash, exchange_body, leaf_text
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditEntry, Exchange, Finding
from gateway.db.session import Sessions
from tests.conftest import POSTGRES_ENV
from tests.databases import postgres_database, upgrade

_EXCHANGES = cast(Table, Exchange.__table__)
_FINDINGS = cast(Table, Finding.__table__)

#: keys anyone can rebuild: the known leaves below are written with them
KEYS = AuditKeys(bytes(range(32)), Ed25519PrivateKey.from_private_bytes(bytes(32)), "situate")
AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def chain_of(name: str = "") -> AuditChain:
    """A chain of its own (a test's): the tests share their databases."""
    return AuditChain(name or "test-" + secrets.token_hex(4), KEYS)


def exchange_row(exchange_id: str, **changes: Any) -> dict[str, Any]:
    """An exchange row as the recorder writes one (``Entry.row``)."""
    row: dict[str, Any] = {
        "id": exchange_id,
        "endpoint": "chat.completions",
        "received_at": AT,
        "upstream_started_at": AT,
        "first_byte_at": None,
        "ended_at": AT,
        "key_id": "key_0001",
        "context": "bank",
        "requested_model": "test-small",
        "backend": "mock",
        "upstream_model": "mock-small",
        "response_model": "mock-small",
        "stream": False,
        "status": "ok",
        "http_status": 200,
        "error_type": None,
        "error_message": None,
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "request_body": {"model": "test-small", "messages": [{"role": "user", "content": "Hi"}]},
        "response_body": {"choices": [{"message": {"role": "assistant", "content": "Hello"}}]},
        "gateway_version": "0.14.0",
        "decision_id": "dec_0001",
        "policy_revision": "rev_0001",
        "decision": {"verdict": "allow", "responses": {"admitted_input": "Hi"}},
        "attempts": [{"backend": "mock", "status": 200, "seconds": 0.25}],
        "cost": 0.000123,
        "currency": "EUR",
        "response_id": None,
        "deleted_at": None,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "erased_at": None,
    }
    row.update(changes)
    return row


def finding_row(exchange_id: str, rule: str, **changes: Any) -> dict[str, Any]:
    finding: dict[str, Any] = {
        "exchange_id": exchange_id,
        "decision_id": "dec_0001",
        "policy_revision": "rev_0001",
        "context": "bank",
        "rule": rule,
        "detector": "regex",
        "stage": "input",
        "action": "flag",
        "enforced": "flag",
        "received_at": AT,
    }
    finding.update(changes)
    return finding


async def entries_of(sessions: Sessions, chain_id: str) -> list[AuditEntry]:
    async with sessions() as session:
        found = await session.scalars(
            select(AuditEntry).where(AuditEntry.chain_id == chain_id).order_by(AuditEntry.seq)
        )
        return list(found)


async def assert_whole(sessions: Sessions, chain_id: str) -> list[AuditEntry]:
    """The chain's entries up to its head, after checking them: seq contiguous from 0, each
    hash its leaf's, each prev the entry before's hash, the head row at the last one. (The
    head is read first: an append committing meanwhile adds entries past it, never before.)"""
    async with sessions() as session:
        head = await session.get(ChainRow, chain_id)
    size, last = (head.size, head.head) if head is not None else (0, ZERO_HASH)
    entries = [e for e in await entries_of(sessions, chain_id) if e.seq < size]
    assert len(entries) == size
    prev = ZERO_HASH
    for seq, entry in enumerate(entries):
        assert entry.seq == seq
        assert entry.entry_hash == entry_hash(entry.leaf.encode())
        assert f'"prev":"{prev}"' in entry.leaf and f'"seq":{seq},' in entry.leaf
        prev = entry.entry_hash
    assert prev == last
    return entries


async def assert_rows_chained(
    sessions: Sessions, chain_id: str, keys: AuditKeys, ids: Sequence[str]
) -> None:
    """Each of these exchanges is on the chain exactly once, and its leaf is what its row and
    findings, as the database gives them back, make."""
    entries = await assert_whole(sessions, chain_id)
    by_ref: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        by_ref.setdefault(entry.ref, []).append(entry)
    previous = {e.seq: e.entry_hash for e in entries}
    async with sessions() as session:
        for exchange_id in ids:
            (entry,) = by_ref[exchange_id]
            query = select(_EXCHANGES).where(_EXCHANGES.c.id == exchange_id)
            row = (await session.execute(query)).one()
            found = await session.execute(
                select(_FINDINGS).where(_FINDINGS.c.exchange_id == exchange_id)
            )
            body = exchange_body(dict(row._mapping), [dict(f._mapping) for f in found], keys)
            prev = previous[entry.seq - 1] if entry.seq else ZERO_HASH
            assert leaf_text(chain_id, entry.seq, prev, "exchange", body).decode() == entry.leaf


@pytest.fixture(scope="module")
def sqlite_chain_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("chain") / "chain.db"
    return upgrade(f"sqlite+aiosqlite:///{path}")


@pytest.fixture(scope="module")
def postgres_chain_url() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    with postgres_database(base, f"situate_chain_{secrets.token_hex(4)}") as url:
        yield upgrade(url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def chain_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of each dialect, for a test module."""
    url: str = request.getfixturevalue(f"{request.param}_chain_url")
    return url
