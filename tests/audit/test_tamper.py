"""Each way of changing the record behind the gateway's back, made directly in the database
with SQL on both dialects, and caught by ``audit verify`` with its kind and place.

The log of every test: 40 exchanges chained in batches of ten, an event after the first and
third batch (so positions and exchange numbers differ), on a database emptied first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from gateway.audit.chain import AuditChain
from gateway.audit.leaf import AuditEvent, entry_hash, event_body, exchange_body, leaf_text
from gateway.audit.verify import Report
from gateway.audit.verify_notes import NoteSource
from gateway.audit.verify_scan import ENTRIES
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditCheckpoint, AuditEntry, Exchange
from gateway.db.session import Sessions
from tests.audit.chained import chain_url, postgres_chain_url, sqlite_chain_url  # noqa: F401
from tests.audit.verifying import (
    START,
    audit_config,
    chained,
    checkpoint,
    erasure_of,
    exchange,
    seq_of,
    verified,
)
from tests.databases import run_on

COUNT = 40


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> AuditConfig:
    return audit_config(tmp_path_factory.mktemp("tamper"))


@pytest.fixture
def url(chain_url: str, audit: AuditConfig) -> str:  # noqa: F811
    """The module's database holding a fresh log of ``COUNT`` exchanges."""
    chained(chain_url, audit, COUNT, batch=10, events_every=2)
    return chain_url


def sql(url: str, *statements: Any) -> None:
    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            for statement in statements:
                await session.execute(statement)

    run_on(url, work)


def first(report: Report) -> tuple[str, int | None, str | None, str]:
    broken = report.broken()
    assert broken, "verify passed a tampered log"
    problem = broken[0]
    return problem.kind, problem.seq, problem.exchange, problem.detail


def row_of(index: int) -> Any:
    return Exchange.id == exchange(index).id


def test_an_untouched_log_verifies_clean(url: str, audit: AuditConfig) -> None:
    report = verified(url, audit)
    assert report.ok, report.to_json()
    (chain,) = report.chains
    assert (chain.entries, chain.exchanges, chain.events) == (COUNT + 2, COUNT, 2)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"status": "error"}, "status"), ({"prompt_tokens": 1}, "prompt_tokens"),
     ({"context": "other"}, "context")],
)
def test_an_edited_exchange_field_is_edited_at_its_entry(
    url: str, audit: AuditConfig, change: dict[str, Any], field: str
) -> None:
    sql(url, update(Exchange).where(row_of(17)).values(**change))
    kind, seq, exchange_id, detail = first(verified(url, audit))
    assert (kind, seq, exchange_id) == ("edited", seq_of(url, exchange(17).id), exchange(17).id)
    assert field in detail


def test_edited_content_without_an_erasure_is_content_edited(
    url: str, audit: AuditConfig
) -> None:
    body = {**exchange(8).row["request_body"], "temperature": 0.9}
    sql(url, update(Exchange).where(row_of(8)).values(request_body=body))
    kind, seq, exchange_id, detail = first(verified(url, audit))
    assert (kind, seq, exchange_id) == ("content_edited", seq_of(url, exchange(8).id),
                                        exchange(8).id)
    assert "request_body" in detail


def test_edited_content_stays_tampering_even_under_an_erasure_event(
    url: str, audit: AuditConfig
) -> None:
    chain = AuditChain.from_config(audit, create_keys=False)
    edited = {"choices": [{"message": {"role": "assistant", "content": "Approved."}}]}
    sql(url, update(Exchange).where(row_of(9)).values(response_body=edited))
    _append_event(url, chain, erasure_of(chain.keys, 9))
    kind, _, exchange_id, _ = first(verified(url, audit))
    assert (kind, exchange_id) == ("content_edited", exchange(9).id)


def test_content_removed_without_an_erasure_event_is_said(url: str, audit: AuditConfig) -> None:
    sql(url, update(Exchange).where(row_of(30)).values(response_body=None))
    kind, seq, exchange_id, detail = first(verified(url, audit))
    assert (kind, seq, exchange_id) == ("content_erased_without_record",
                                        seq_of(url, exchange(30).id), exchange(30).id)
    assert "response_body" in detail


def test_content_removed_with_an_erasure_event_verifies(url: str, audit: AuditConfig) -> None:
    chain = AuditChain.from_config(audit, create_keys=False)
    sql(url, update(Exchange).where(row_of(30)).values(request_body=None, response_body=None))
    _append_event(url, chain, erasure_of(chain.keys, 30))
    assert verified(url, audit).ok


def test_a_deleted_exchange_row_is_deleted_at_its_entry(url: str, audit: AuditConfig) -> None:
    seq = seq_of(url, exchange(5).id)
    sql(url, delete(Exchange).where(row_of(5)))
    kind, found, exchange_id, detail = first(verified(url, audit))
    assert (kind, found, exchange_id) == ("deleted", seq, exchange(5).id)
    assert "row is gone" in detail


def test_a_deleted_entry_is_deleted_at_its_place(url: str, audit: AuditConfig) -> None:
    sql(url, delete(AuditEntry).where(AuditEntry.seq == 21))
    kind, seq, _, detail = first(verified(url, audit))
    assert (kind, seq) == ("deleted", 21)
    assert "entry 21 missing" in detail


def test_two_entries_swapped_are_reordered(url: str, audit: AuditConfig) -> None:
    entries = ENTRIES
    sql(
        url,
        update(entries).where(entries.c.seq == 6).values(seq=-1),
        update(entries).where(entries.c.seq == 7).values(seq=6),
        update(entries).where(entries.c.seq == -1).values(seq=7),
    )
    kind, seq, _, detail = first(verified(url, audit))
    assert (kind, seq) == ("reordered", 6)
    assert "says it is entry 7" in detail


def test_an_exchange_row_put_in_without_an_entry_is_inserted(
    url: str, audit: AuditConfig
) -> None:
    forged = exchange(900)
    sql(url, insert(Exchange).values(forged.row))
    report = verified(url, audit)
    assert not report.chains[0].problems  # the chain is whole: the row is beside it
    kind, seq, exchange_id, _ = first(report)
    assert (kind, seq, exchange_id) == ("inserted", None, forged.id)


def test_an_entry_put_in_the_middle_is_inserted(url: str, audit: AuditConfig) -> None:
    """A well-formed entry (its own row, leaf, hash and link) put in at 12 and the rest moved
    up one: the entry that was 12 now says so from position 13."""
    chain = AuditChain.from_config(audit, create_keys=False)
    entries = ENTRIES
    prev = _hash_at(url, 11)
    forged = exchange(901)
    leaf = leaf_text(chain.chain_id, 12, prev, "exchange",
                     exchange_body(forged.row, [], chain.keys))
    sql(
        url,
        update(entries).where(entries.c.seq >= 12).values(seq=-(entries.c.seq + 1)),
        update(entries).where(entries.c.seq < 0).values(seq=-entries.c.seq),
        insert(Exchange).values(forged.row),
        insert(entries).values(_entry(chain.chain_id, 12, "exchange", forged.id, leaf)),
        update(ChainRow).values(size=COUNT + 3),
    )
    kind, seq, _, detail = first(verified(url, audit))
    assert (kind, seq) == ("inserted", 13)
    assert "put in before it" in detail


def test_an_entry_appended_past_the_head_is_inserted(url: str, audit: AuditConfig) -> None:
    chain = AuditChain.from_config(audit, create_keys=False)
    size = COUNT + 2
    event = AuditEvent("key.revoked", "cli:mallory", "key_0001", None, {"context": "bank"})
    leaf = leaf_text(chain.chain_id, size, _hash_at(url, size - 1), "event", event_body(event))
    sql(url, insert(AuditEntry).values(_entry(chain.chain_id, size, event.type, event.id,
                                              leaf)))
    kind, seq, _, detail = first(verified(url, audit))
    assert (kind, seq) == ("inserted", size)
    assert "beyond the head" in detail


def test_a_truncated_tail_is_caught_by_a_checkpoint(
    url: str, audit: AuditConfig, tmp_path: Path
) -> None:
    """The last five entries and their rows gone and the head rewound: the chain alone is
    whole again, and only a checkpoint over the longer log says what happened."""
    size = COUNT + 2
    kept = checkpoint(url, audit, size)
    note = tmp_path / "checkpoint.txt"
    note.write_text(kept)
    cut_tail(url, size - 5)
    assert verified(url, audit).ok  # nothing in the database tells
    notes = (NoteSource(str(note), note.read_text()),)
    kind, seq, _, detail = first(verified(url, audit, notes=notes))
    assert (kind, seq) == ("truncated", size - 5)
    assert f"signed over {size} entries" in detail


def test_a_checkpoint_with_a_bad_signature_is_said(url: str, audit: AuditConfig) -> None:
    text = checkpoint(url, audit, 20)
    body, signature = text.rsplit("— ", 1)
    name, value = signature.split(" ")
    flipped = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    notes = (NoteSource("kept.txt", f"{body}— {name} {flipped}"),)
    kind, seq, _, detail = first(verified(url, audit, notes=notes))
    assert (kind, seq) == ("checkpoint_signature", 20)
    assert detail.startswith("kept.txt: ")


def test_a_stored_checkpoint_with_a_bad_signature_is_said(
    url: str, audit: AuditConfig
) -> None:
    checkpoint(url, audit, 20, store=True)
    sql(url, update(AuditCheckpoint).values(note=checkpoint(url, audit, 20)
                                               .replace("— situate ", "— situate AAAA")))
    kind, seq, _, _ = first(verified(url, audit))
    assert (kind, seq) == ("checkpoint_signature", 20)


def test_a_checkpoint_of_another_log_is_not_a_prefix(url: str, audit: AuditConfig) -> None:
    """Signed with the real key over a log whose entry 3 was different."""
    text = checkpoint(url, audit, 30, change=3)
    kind, seq, _, detail = first(verified(url, audit, notes=(NoteSource("w.txt", text),)))
    assert (kind, seq) == ("checkpoint_not_prefix", 30)
    assert "another Merkle root" in detail


def test_checkpoints_of_the_log_verify(url: str, audit: AuditConfig) -> None:
    checkpoint(url, audit, 10, store=True)
    checkpoint(url, audit, COUNT + 2, store=True)
    outside = NoteSource("kept.txt", checkpoint(url, audit, 25))
    report = verified(url, audit, notes=(outside,))
    assert report.ok, report.to_json()
    assert report.chains[0].checkpoints == 3


def cut_tail(url: str, keep: int, *more: Any) -> None:
    """The entries from ``keep`` on and their exchange rows deleted, the head row rewound
    (and ``more`` statements in the same transaction)."""
    refs = _refs_from(url, keep)
    sql(
        url,
        delete(Exchange).where(Exchange.id.in_(refs)),
        delete(AuditEntry).where(AuditEntry.seq >= keep),
        update(ChainRow).values(size=keep, head=_hash_at(url, keep - 1)),
        *more,
    )


def _append_event(url: str, chain: AuditChain, event: AuditEvent) -> None:
    async def work(sessions: Sessions) -> None:
        async with sessions.begin() as session:
            await chain.append_event(session, event)

    run_on(url, work)


def _hash_at(url: str, seq: int) -> str:
    async def work(sessions: Sessions) -> str:
        async with sessions() as session:
            found = await session.scalar(select(AuditEntry.entry_hash)
                                         .where(AuditEntry.seq == seq))
        assert found is not None
        return found

    return run_on(url, work)


def _refs_from(url: str, seq: int) -> list[str]:
    async def work(sessions: Sessions) -> list[str]:
        async with sessions() as session:
            return list(await session.scalars(select(AuditEntry.ref)
                                              .where(AuditEntry.seq >= seq)))

    return run_on(url, work)


def _entry(chain_id: str, seq: int, kind: str, ref: str, leaf: bytes) -> dict[str, Any]:
    return {"chain_id": chain_id, "seq": seq, "kind": kind, "ref": ref,
            "leaf": leaf.decode(), "entry_hash": entry_hash(leaf), "created_at": START}
