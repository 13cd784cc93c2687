"""What the verifier's tests and benchmark share: an audit section with keys on disk, a chain
of realistic exchanges written the way the recorder writes them (``insert_entries`` with the
chain), events beside them, an emptied database between tests, and ``verify`` run to the end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from gateway.audit import events, merkle, note
from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import origin_of
from gateway.audit.keys import AuditKeys
from gateway.audit.leaf import AuditEvent
from gateway.audit.verify import Report, Verification, verify
from gateway.audit.verify_notes import NoteSource
from gateway.config.observe import AuditConfig
from gateway.db.models import ApiKey, AuditCheckpoint, AuditEntry, Exchange, Finding
from gateway.db.models import AuditChain as ChainRow
from gateway.db.session import Sessions
from gateway.records.entries import Entry, insert_entries
from tests.databases import in_a_thread, run_on

#: the API keys the exchanges are made with
KEYS = 7
START = datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)
_QUESTIONS = (
    "What is the balance on my savings account?",
    "Can I raise the limit on my card to 5000 euros?",
    "Explain the difference between a fixed and a variable rate mortgage.",
    "Wie kann ich eine Überweisung stornieren?",
)
_ANSWERS = (
    "Your savings balance is shown in the app under Accounts.",
    "A limit change needs a signed request; I can start one for you.",
    "A fixed rate stays the same for the term; a variable rate follows the market.",
    "Eine Überweisung lässt sich bis zur Ausführung im Online-Banking stornieren.",
)


def audit_config(folder: Path, chain_id: str = "main", **changes: Any) -> AuditConfig:
    """The audit section of a test: its keys (made here) and checkpoints under ``folder``."""
    config = AuditConfig(
        chain_id=chain_id,
        keys_dir=folder / "audit-keys",
        checkpoint_dir=folder / "checkpoints",
        **changes,
    )
    AuditChain.from_config(config, create_keys=True)
    return config


def exchange(index: int, *, key_id: str | None = None, context: str = "bank",
             endpoint: str = "chat.completions") -> Entry:
    """An exchange as the recorder writes it: a few chat messages, an answer, a decision with
    notes, attempts, usage; a finding on every fifth."""
    at = START + timedelta(seconds=index * 0.37)
    exchange_id = f"ex_{index:010d}"
    question, answer = _QUESTIONS[index % 4], _ANSWERS[index % 4]
    row: dict[str, Any] = {
        "id": exchange_id,
        "endpoint": endpoint,
        "received_at": at,
        "upstream_started_at": at + timedelta(milliseconds=4),
        "first_byte_at": at + timedelta(milliseconds=180) if index % 2 else None,
        "ended_at": at + timedelta(milliseconds=420),
        "key_id": key_id or f"key_{index % KEYS:04d}",
        "context": context,
        "requested_model": "test-small",
        "backend": "mock",
        "upstream_model": "mock-small",
        "response_model": "mock-small",
        "stream": bool(index % 2),
        "status": "ok",
        "http_status": 200,
        "error_type": None,
        "error_message": None,
        "prompt_tokens": 40 + index % 13,
        "completion_tokens": 12 + index % 5,
        "total_tokens": 52 + index % 13 + index % 5,
        **_content(index, question, answer),
        "gateway_version": "0.14.0",
        "decision_id": f"dec_{index:010d}",
        "policy_revision": "rev_5f1c0a",
        "attempts": [{"backend": "mock", "status": 200, "seconds": 0.412}],
        "cost": 0.000123 * (1 + index % 3),
        "currency": "EUR",
        "response_id": None,
        "deleted_at": None,
        "trace_id": f"{index:032x}",
        "erased_at": None,
    }
    findings = [_finding(row, "pii-iban")] if index % 5 == 0 else []
    return Entry(row, findings)


def key_row(index: int) -> dict[str, Any]:
    return {"id": f"key_{index:04d}", "digest": f"{index:064x}", "display": f"sk-gw-…{index:04d}",
            "context": "bank", "name": f"caller {index}", "created_at": START,
            "expires_at": None, "revoked_at": None, "limits": None}


def _content(index: int, question: str, answer: str) -> dict[str, Any]:
    """The request, the answer and the decision of exchange ``index``."""
    messages = [
        {"role": "system", "content": "You are the bank's assistant. Be brief."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "Let me check that for you."},
        {"role": "user", "content": f"{question} (reference {index})"},
    ]
    flagged = index % 5 == 0
    return {
        "request_body": {"model": "test-small", "messages": messages, "temperature": 0.2},
        "response_body": {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 40 + index % 13, "completion_tokens": 12 + index % 5},
        },
        "decision": {
            "action": "flag" if flagged else "allow",
            "rules": [{"rule": "pii-iban", "verdict": "flag"}] if flagged else [],
            "responses": {"admitted_input": question},
        },
    }


def _finding(row: dict[str, Any], rule: str) -> dict[str, Any]:
    return {
        "exchange_id": row["id"], "decision_id": row["decision_id"],
        "policy_revision": row["policy_revision"], "context": row["context"], "rule": rule,
        "detector": "regex", "stage": "input", "action": "flag", "enforced": "flag",
        "received_at": row["received_at"],
    }


def event(index: int) -> AuditEvent:
    """An event among the exchanges (a key created)."""
    return AuditEvent("key.created", "cli:tests", f"key_{index:04d}", None,
                      {"context": "bank", "name": f"key {index}"}, at=START)


async def build(sessions: Sessions, chain: AuditChain, count: int, *, first: int = 0,
                batch: int = 500, events_every: int = 0) -> None:
    """``count`` exchanges chained through ``insert_entries``, an event every so often."""
    if first == 0:
        async with sessions.begin() as session:
            await session.execute(insert(ApiKey), [key_row(i) for i in range(KEYS)])
    for start in range(first, first + count, batch):
        entries = [exchange(i) for i in range(start, min(start + batch, first + count))]
        await insert_entries(sessions, entries, chain)
        if events_every and (start // batch) % events_every == 0:
            async with sessions.begin() as session:
                await chain.append_event(session, event(start))


async def wipe(sessions: Sessions) -> None:
    """Every chain and record gone: a test starts from an empty log."""
    async with sessions.begin() as session:
        for model in (AuditCheckpoint, AuditEntry, ChainRow, Finding, Exchange, ApiKey):
            await session.execute(delete(model))


def erasure_event(keys: AuditKeys, erased: dict[str, Any],
                  scope: dict[str, Any] | None = None) -> AuditEvent:
    """An erasure event as the eraser writes one, for SQL-made erasures: ``erased`` maps each
    exchange id to its decision as the erasure left it."""
    return events.erasure("cli:tests", "a person's request", scope or events.ids_scope(),
                          {name: keys.commit(decision) for name, decision in erased.items()},
                          keys)


def erasure_of(keys: AuditKeys, *indexes: int) -> AuditEvent:
    """The event of erasing the bodies of these exchanges (of ``exchange``), their decisions
    left as they are."""
    return erasure_event(keys, {exchange(i).id: exchange(i).row["decision"] for i in indexes})


def verified(url: str, audit: AuditConfig, *, notes: tuple[NoteSource, ...] = (),
             **changes: Any) -> Report:
    """``verify`` over the database at ``url``, from synchronous test code."""
    job = Verification(url, audit, notes=notes, **changes)
    return in_a_thread(lambda: asyncio.run(verify(job)))


def chained(url: str, audit: AuditConfig, count: int, **options: Any) -> AuditChain:
    """A fresh database holding one chain of ``count`` exchanges: the chain."""
    chain = AuditChain.from_config(audit, create_keys=False)

    async def work(sessions: Sessions) -> None:
        await wipe(sessions)
        await build(sessions, chain, count, **options)

    run_on(url, work)
    return chain


def seq_of(url: str, ref: str) -> int:
    """The position of the entry of exchange (or event) ``ref``."""

    async def work(sessions: Sessions) -> int:
        async with sessions() as session:
            found = await session.scalar(select(AuditEntry.seq).where(AuditEntry.ref == ref))
        assert found is not None, f"no entry for {ref}"
        return found

    return run_on(url, work)


def checkpoint(url: str, audit: AuditConfig, size: int, *, store: bool = False,
               change: int | None = None) -> str:
    """A checkpoint over the chain's first ``size`` entries signed with the real key (with
    ``change``, over a log whose entry of that position was another), stored as the
    checkpointer stores one if asked: its note."""
    keys = AuditKeys.load(audit, create=False)

    async def work(sessions: Sessions) -> str:
        async with sessions() as session:
            found = await session.scalars(
                select(AuditEntry.entry_hash).where(AuditEntry.chain_id == audit.chain_id)
                .order_by(AuditEntry.seq).limit(size)
            )
            hashes = [bytes.fromhex(value) for value in found]
        if change is not None:
            hashes[change] = merkle.leaf_hash(b"another entry")
        frontier = merkle.Frontier()
        frontier.extend(hashes)
        body = note.checkpoint_body(origin_of(audit, audit.chain_id), size, frontier.root())
        text = note.sign(body, audit.key_name, keys.signing_key)
        if store:
            async with sessions.begin() as session:
                await session.execute(insert(AuditCheckpoint).values(
                    chain_id=audit.chain_id, size=size, root=frontier.root().hex(), note=text,
                    frontier=frontier.to_json(), created_at=START,
                ))
        return text

    return run_on(url, work)
