"""A backend's usage count past what JSON holds exactly (2**53 - 1), or negative, is recorded as
unknown with the reason in the decision: the record still makes its chain entry, rather than
fail canonical JSON and be quarantined for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit.leaf import ZERO_HASH, exchange_body, leaf_text
from gateway.auth.keys import Principal
from gateway.checks.registry import default_registry
from gateway.pipeline.context import MAX_COUNT, ExchangeRecord, RequestContext
from gateway.policy.loader import load_policy
from tests.audit.chained import KEYS

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def _record() -> ExchangeRecord:
    policy = load_policy(POLICIES / "test-context.yaml", default_registry(),
                         ["test-small", "test-large", "dead-model"])
    ctx = RequestContext.of(Principal("key_1", policy.context, "tests"), policy)
    return ExchangeRecord(id="req_usage", endpoint="chat.completions", ctx=ctx)


@pytest.mark.parametrize("count", [2**60, MAX_COUNT + 1, -1])
def test_an_out_of_range_count_is_unknown_and_the_record_chains(count: int) -> None:
    record = _record()
    record.take_usage({"prompt_tokens": count, "completion_tokens": 5, "total_tokens": 9})
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        None, None, None)
    entry = record.entry()
    assert entry.row["error_type"] is None  # built as it is, not the unbuildable fallback
    assert "prompt_tokens" in entry.row["decision"]["usage_unknown"]
    leaf = leaf_text("main", 0, ZERO_HASH, "exchange",
                     exchange_body(entry.row, entry.findings, KEYS))
    assert b'"prompt_tokens":null' in leaf


def test_counts_in_range_are_kept() -> None:
    record = _record()
    record.take_usage({"prompt_tokens": MAX_COUNT, "completion_tokens": 0, "total_tokens": 7})
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        MAX_COUNT, 0, 7)
    entry = record.entry()
    assert "usage_unknown" not in entry.row["decision"]
    leaf_text("main", 0, ZERO_HASH, "exchange", exchange_body(entry.row, entry.findings, KEYS))
