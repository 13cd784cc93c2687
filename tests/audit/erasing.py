"""What the erasure and event tests share: policies of their own, exchange records written
through the recorder's path with a chain, the events a chain holds, and the verifier's word."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.audit.chain import AuditChain
from gateway.audit.verify import Report, Verification, verify
from gateway.auth.keys import KeyService, Principal
from gateway.checks.registry import default_registry
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditEntry, Exchange
from gateway.db.session import Sessions
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import load_policy
from gateway.records.entries import insert_entries
from gateway.records.status import Status
from tests.databases import sessions_on

ALIASES = ["test-small"]


def policy_file(folder: Path, context: str, record: str) -> CompiledPolicy:
    """A policy of ``context`` whose ``record:`` section is ``record`` (YAML flow)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{context}.yaml"
    path.write_text(
        f"context: {context}\npurpose: Erasure tests.\nowner: t@situate.invalid\n"
        f"audience: tests\nmodels: {{allow: [test-small]}}\nrecord: {record}\n"
    )
    return load_policy(path, default_registry(), ALIASES)


@dataclass(frozen=True)
class Chained:
    """A chain of the module's keys, and its audit config (for the verifier)."""

    audit: AuditConfig
    chain: AuditChain


def chained(keys_dir: Path) -> Chained:
    audit = AuditConfig(keys_dir=keys_dir, chain_id="erase-" + secrets.token_hex(4))
    return Chained(audit, AuditChain.from_config(audit))


async def new_key(sessions: Sessions, chain: AuditChain, context: str) -> str:
    return (await KeyService(sessions, chain).create(context, "erasure tests")).id


def record(
    policy: CompiledPolicy, key_id: str, received_at: datetime, text: str, **changes: Any
) -> ExchangeRecord:
    """An exchange with a question and an answer, as the pipeline leaves one."""
    made = ExchangeRecord(
        id="req_" + secrets.token_hex(8),
        endpoint="chat.completions",
        received_at=received_at,
        ended_at=received_at,
        ctx=RequestContext.of(Principal(key_id, policy.context, "tests"), policy),
        status=Status.OK,
        request_body={"messages": [{"role": "user", "content": text}]},
        response_body={"choices": [{"message": {"role": "assistant", "content": "ok " + text}}]},
    )
    for name, value in changes.items():
        setattr(made, name, value)
    return made


async def write(sessions: Sessions, chain: AuditChain, records: list[ExchangeRecord]) -> list[str]:
    """The records written as the recorder writes them (rows and chain in one transaction)."""
    await insert_entries(sessions, [r.entry() for r in records], chain)
    return [r.id for r in records]


async def events_of(sessions: Sessions, chain_id: str, kind: str) -> list[dict[str, Any]]:
    """The bodies of a chain's events of one type, oldest first, with their leaf text."""
    async with sessions() as session:
        found = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.chain_id == chain_id, AuditEntry.kind == kind)
            .order_by(AuditEntry.seq)
        )
        leaves = [entry.leaf for entry in found]
    return [{**json.loads(leaf)["body"], "leaf": leaf} for leaf in leaves]


async def rows(sessions: Sessions, ids: list[str]) -> dict[str, Exchange]:
    async with sessions() as session:
        found = await session.scalars(select(Exchange).where(Exchange.id.in_(ids)))
        return {row.id: row for row in found}


async def verified(url: str, audit: AuditConfig) -> Report:
    return await verify(Verification(url, audit, chain=audit.chain_id, workers=1))


def then_verified(url: str, setup: Chained, work: Callable[[Sessions], Awaitable[None]]) -> None:
    """``work`` on the database at ``url``, then the verifier's word on the chain: clean."""

    async def main() -> None:
        async with sessions_on(url) as sessions:
            await work(sessions)
        report = await verified(url, setup.audit)
        assert report.ok, report.to_json()

    asyncio.run(main())
