"""``gateway audit verify`` as an operator runs it (the typer app, exit codes, progress, the
JSON report), its process pool over ranges, its fast path against the exact one, receipts,
and logs after erasures made by the erasure code: each on both dialects."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, update

from gateway.audit.chain import AuditChain
from gateway.audit.checkpoints import Checkpointer
from gateway.audit.proofs import locate, receipt
from gateway.audit.verify import ReceiptSource
from gateway.config.observe import AuditConfig
from gateway.db.models import AuditEntry, Exchange
from gateway.db.session import Sessions
from gateway.records.entries import Entry, insert_entries
from gateway.records.erasure import Eraser, Who
from gateway.records.responses import ENDPOINT
from tests.audit.chained import chain_url, postgres_chain_url, sqlite_chain_url  # noqa: F401
from tests.audit.test_tamper import first, sql
from tests.audit.verifying import START, audit_config, chained, exchange, verified
from tests.databases import run_on
from tests.servers import in_process

WHO = Who("cli:tests", "a person's request (Art. 17)")


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> AuditConfig:
    return audit_config(tmp_path_factory.mktemp("verify"))


@pytest.fixture
def command(audit: AuditConfig, chain_url: str, tmp_path: Path) -> Any:  # noqa: F811
    """``gateway audit verify ARGS`` on the module's database, with the audit section (the
    checkpoint files the command reads in a folder of the test's own)."""
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "backends": {"mock": {"base_url": "http://127.0.0.1:9/v1"}},
        "models": {"test-small": {"backend": "mock", "model": "mock-small"}},
        "audit": {"keys_dir": str(audit.keys_dir),
                  "checkpoint_dir": str(tmp_path / "checkpoints")},
    }))

    def run(*args: str) -> Any:
        env = {"GATEWAY_DATABASE_URL": chain_url, "GATEWAY_CONFIG": str(config)}
        return in_process(["audit", "verify", *args], env)

    return run


def test_a_whole_record_exits_0_with_progress_and_a_summary(
    command: Any, chain_url: str, audit: AuditConfig  # noqa: F811
) -> None:
    chained(chain_url, audit, 30, batch=10, events_every=1)
    done = command()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chain main: 33 entries (30 exchanges, 3 events), 0 checkpoints: ok" in done.stdout
    assert "the record is whole" in done.stdout
    assert "verified 33 / 33 entries (" in done.stderr  # progress: done / total, rate


def test_a_broken_record_exits_1_saying_the_first_broken_place(
    command: Any, chain_url: str, audit: AuditConfig  # noqa: F811
) -> None:
    chained(chain_url, audit, 30, batch=10)
    sql(chain_url, update(Exchange).where(Exchange.id == exchange(12).id)
        .values(completion_tokens=999))
    done = command()
    assert done.returncode == 1
    assert (f"first broken place: edited at chain main, seq 12, exchange {exchange(12).id}: "
            "the row's completion_tokens differ") in done.stdout
    report = json.loads(command("--json").stdout)
    assert report["ok"] is False
    assert report["chains"][0]["first"]["kind"] == "edited"


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--chain", "nope"], "no audit chain 'nope'"), (["--key", "situate+zz+x"], "--key"),
     (["--receipt", "{path}"], "cannot read the receipt as JSON")],
)
def test_what_cannot_be_checked_exits_2(
    command: Any, chain_url: str, audit: AuditConfig, tmp_path: Path,  # noqa: F811
    args: list[str], says: str,
) -> None:
    chained(chain_url, audit, 3)
    broken = tmp_path / "receipt.json"
    broken.write_text("not json")
    done = command(*[a.format(path=broken) for a in args])
    assert done.returncode == 2
    assert says in done.stderr


def test_a_long_log_is_verified_by_a_pool_over_ranges(
    sqlite_chain_url: str, audit: AuditConfig  # noqa: F811
) -> None:
    """Ranges of 25 entries over two processes: the links between ranges are checked (no
    false break at a range's start), and a break in a later range is found in its place.
    About 5 s, the two spawned interpreters' imports: one dialect only (the workers read
    through the same Core selects as the tests above on both)."""
    url = sqlite_chain_url
    chained(url, audit, 120, batch=40)
    sql(url, delete(AuditEntry).where(AuditEntry.seq == 75),
        update(Exchange).where(Exchange.id == exchange(101).id).values(status="error"))
    report = verified(url, audit, workers=2, span=25)
    found = [(p.kind, p.seq) for p in report.chains[0].problems]
    assert found == [("deleted", 75), ("edited", 101)]
    assert report.chains[0].exchanges == 119


def test_values_outside_plain_json_take_the_exact_path_and_verify(
    chain_url: str, audit: AuditConfig  # noqa: F811
) -> None:
    """Floats JCS writes otherwise than Python, escapes, non-ASCII keys, huge integers, NaN:
    the fast path declines them and the chain's own functions agree with the stored leaf."""
    odd: list[dict[str, Any]] = [
        {"temperature": 1.0, "top_p": 1e-7, "max_tokens": 10**20},
        {"messages": [{"role": "user", "content": "tab\there \u0007 bell"}]},
        {"größe": "Größe", "nan": float("nan"), "inf": float("inf")},
    ]
    chain = chained(chain_url, audit, 10)
    entries = [_with_body(exchange(100 + i), body) for i, body in enumerate(odd)]

    async def work(sessions: Sessions) -> None:
        await insert_entries(sessions, entries, chain)

    run_on(chain_url, work)
    report = verified(chain_url, audit)
    assert report.ok, report.to_json()
    assert report.chains[0].rechecked == len(odd)


def test_a_realistic_log_takes_the_fast_path(chain_url: str, audit: AuditConfig) -> None:  # noqa: F811
    chained(chain_url, audit, 50)
    report = verified(chain_url, audit)
    assert report.ok and report.chains[0].rechecked == 0


def _with_body(entry: Entry, body: dict[str, Any]) -> Entry:
    return Entry({**entry.row, "request_body": body}, entry.findings)


@pytest.mark.parametrize("how", ["ids", "key", "retention"])
def test_a_log_after_an_erasure_verifies(
    chain_url: str, audit: AuditConfig, how: str  # noqa: F811
) -> None:
    """Erased by the erasure code (content gone, a Responses record's admitted input taken
    out of its decision, one event a batch): the commitments no longer match and the events
    excuse exactly the records they cover."""
    chain = chained(chain_url, audit, 20)
    extra = exchange(50, endpoint=ENDPOINT)

    async def erase(sessions: Sessions) -> int:
        await insert_entries(sessions, [extra], chain)
        eraser = Eraser(sessions, chain, batch=4)
        if how == "ids":
            return await eraser.exchanges([exchange(3).id, exchange(11).id, extra.id], WHO)
        if how == "key":
            return await eraser.key(str(extra.row["key_id"]), WHO)
        return await eraser.received_before("bank", START + timedelta(seconds=5), WHO)

    erased = run_on(chain_url, erase)
    assert erased >= 3
    report = verified(chain_url, audit)
    assert report.ok, report.to_json()
    assert report.chains[0].events >= 1


def test_receipts_check_against_the_log(chain_url: str, audit: AuditConfig) -> None:  # noqa: F811
    """A receipt from the gateway verifies; one whose proof was altered fails as an inclusion
    proof; once the log is cut below the receipt's entry, its checkpoint says truncated."""
    chain = chained(chain_url, audit, 30)
    wanted = exchange(20).id
    given = run_on(chain_url, lambda sessions: _receipt(sessions, chain, audit, wanted))
    assert verified(chain_url, audit, receipts=(ReceiptSource("r.json", given),)).ok
    proof = list(given["inclusion_proof"])
    proof[0] = base64.b64encode(bytes(32)).decode()
    forged = ReceiptSource("forged.json", {**given, "inclusion_proof": proof})
    kind, seq, exchange_id, _ = first(verified(chain_url, audit, receipts=(forged,)))
    assert (kind, seq, exchange_id) == ("inclusion_proof", 20, wanted)
    sql(chain_url, delete(AuditEntry).where(AuditEntry.seq >= 15),
        delete(Exchange).where(Exchange.id.in_([exchange(i).id for i in range(15, 30)])))
    report = verified(chain_url, audit, receipts=(ReceiptSource("r.json", given),))
    assert ("truncated", 15) in [(p.kind, p.seq) for p in report.chains[0].problems]


async def _receipt(sessions: Sessions, chain: AuditChain, audit: AuditConfig,
                   exchange_id: str) -> dict[str, Any]:
    checkpointer = Checkpointer(chain, sessions, audit)
    await checkpointer.checkpoint()
    async with sessions() as session:
        where = await locate(session, exchange_id)
    assert where is not None
    made = await receipt(sessions, checkpointer, exchange_id, where, checkpointer.verifier_key)
    assert made is not None
    return made
