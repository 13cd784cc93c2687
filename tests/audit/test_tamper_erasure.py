"""Erasure events abused to hide tampering, made directly in the database on both dialects
and caught by ``audit verify``: a decision changed after a real erasure, a later exchange's
bodies stripped under an erasure of the same key, an erasure event forged without the HMAC
key on a chain of its own."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from gateway.audit.chain import AuditChain
from gateway.audit.keys import AuditKeys
from gateway.config.observe import AuditConfig
from gateway.db.models import Exchange
from tests.audit.chained import chain_url, postgres_chain_url, sqlite_chain_url  # noqa: F401
from tests.audit.test_tamper import _append_event, audit, first, row_of, sql, url  # noqa: F401
from tests.audit.verifying import (
    audit_config,
    erasure_event,
    erasure_of,
    exchange,
    seq_of,
    verified,
)

STRIPPED = {"request_body": None, "response_body": None}


def test_a_decision_changed_after_its_erasure_is_content_edited(
    url: str, audit: AuditConfig  # noqa: F811
) -> None:
    chain = AuditChain.from_config(audit, create_keys=False)
    sql(url, update(Exchange).where(row_of(12)).values(**STRIPPED))
    _append_event(url, chain, erasure_of(chain.keys, 12))
    assert verified(url, audit).ok
    decision = {**exchange(12).row["decision"], "action": "block", "rules": []}
    sql(url, update(Exchange).where(row_of(12)).values(decision=decision))
    kind, seq, exchange_id, detail = first(verified(url, audit))
    assert (kind, seq, exchange_id) == ("content_edited", seq_of(url, exchange(12).id),
                                        exchange(12).id)
    assert "decision" in detail


def test_an_erasure_of_a_key_covers_only_the_exchanges_it_named(
    url: str, audit: AuditConfig  # noqa: F811
) -> None:
    """Exchanges 3 and 10 have the same key: erasing 3 under a key scope does not excuse
    stripping 10 later."""
    chain = AuditChain.from_config(audit, create_keys=False)
    key_id = exchange(3).row["key_id"]
    assert exchange(10).row["key_id"] == key_id
    sql(url, update(Exchange).where(row_of(3)).values(**STRIPPED))
    scope = {"key_id": key_id}
    decisions = {exchange(3).id: exchange(3).row["decision"]}
    _append_event(url, chain, erasure_event(chain.keys, decisions, scope))
    sql(url, update(Exchange).where(row_of(10)).values(**STRIPPED))
    kind, seq, exchange_id, _ = first(verified(url, audit))
    assert (kind, seq, exchange_id) == ("content_erased_without_record",
                                        seq_of(url, exchange(10).id), exchange(10).id)


def test_an_erasure_forged_without_the_key_excuses_nothing(
    url: str, audit: AuditConfig, tmp_path: Path  # noqa: F811
) -> None:
    """A chain of its own, its erasure event's mac made with another HMAC key."""
    stranger = audit_config(tmp_path, chain_id="zz-forged")
    forged = AuditChain("zz-forged", AuditKeys.load(stranger, create=False))
    sql(url, update(Exchange).where(row_of(5)).values(**STRIPPED))
    _append_event(url, forged, erasure_of(forged.keys, 5))
    report = verified(url, audit)
    chains = {c.chain: c for c in report.chains}
    found = chains["zz-forged"].first
    assert found is not None and (found.kind, found.seq) == ("erasure_forged", 0)
    found = chains[audit.chain_id].first
    assert found is not None
    assert (found.kind, found.exchange) == ("content_erased_without_record", exchange(5).id)
