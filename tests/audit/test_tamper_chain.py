"""Tampering with the chain as a whole, made directly in the database on both dialects and
caught by ``audit verify``: every chain deleted while the exchanges stay, a truncated tail
with the stored checkpoints deleted (caught by the checkpoint files the gateway wrote), an
entry forged far beyond the head (one problem, verified at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert

from gateway.audit.chain import AuditChain
from gateway.audit.leaf import AuditEvent, event_body, leaf_text
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditChain as ChainRow
from gateway.db.models import AuditCheckpoint, AuditEntry
from tests.audit.chained import chain_url, postgres_chain_url, sqlite_chain_url  # noqa: F401
from tests.audit.test_tamper import (  # noqa: F401
    COUNT,
    _entry,
    _hash_at,
    audit,
    cut_tail,
    first,
    sql,
    url,
)
from tests.audit.test_verify import command  # noqa: F401
from tests.audit.verifying import checkpoint, verified

SIZE = COUNT + 2


def test_every_chain_deleted_with_exchanges_left_is_missing_chain(
    url: str, audit: AuditConfig  # noqa: F811
) -> None:
    sql(url, delete(AuditCheckpoint), delete(AuditEntry), delete(ChainRow))
    report = verified(url, audit)
    assert report.chains == []
    kind, seq, _, detail = first(report)
    assert (kind, seq) == ("missing_chain", None)
    assert f"{COUNT} exchange rows" in detail


def test_a_truncated_tail_is_caught_by_the_checkpoint_files_by_default(
    url: str, audit: AuditConfig, tmp_path: Path, command: Any  # noqa: F811
) -> None:
    """The gateway's files in audit.checkpoint_dir/<chain>/ are read without --checkpoint:
    a tail cut with its head rewound and the stored checkpoints deleted is caught."""
    folder = tmp_path / "checkpoints" / audit.chain_id
    folder.mkdir(parents=True)
    note = checkpoint(url, audit, SIZE, store=True)
    for name in (f"{SIZE}.checkpoint", "latest.checkpoint"):
        (folder / name).write_text(note)
    cut_tail(url, SIZE - 5, delete(AuditCheckpoint))
    done = command()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"first broken place: truncated at chain {audit.chain_id}, seq {SIZE - 5}" in (
        done.stdout)
    assert "1 checkpoints" in done.stdout  # latest.checkpoint is the same note: read once
    skipped = command("--no-checkpoint-files")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr


def test_an_entry_forged_far_beyond_the_head_is_one_gap(
    url: str, audit: AuditConfig  # noqa: F811
) -> None:
    """seq 10**12: the ranges come from the entry count, the gap is one deleted problem."""
    chain = AuditChain.from_config(audit, create_keys=False)
    far = 10**12
    event = AuditEvent("key.revoked", "cli:mallory", "key_0001", None, {"context": "bank"})
    leaf = leaf_text(chain.chain_id, far, _hash_at(url, SIZE - 1), "event", event_body(event))
    sql(url, insert(AuditEntry).values(
        _entry(chain.chain_id, far, event.type, event.id, leaf)))
    report = verified(url, audit, span=10)
    (found,) = report.chains
    gaps = [p for p in found.problems if p.kind == "deleted"]
    assert [(p.seq, p.detail) for p in gaps] == [
        (SIZE, f"entries {SIZE}..{far - 1} missing from the chain")]
    assert found.events == 3 and found.exchanges == COUNT
