"""Every exchange record on the chain exactly once, whichever way it reaches the database:
served by a running gateway (the real SDK), spooled while the database is away and replayed,
replayed again over records already there, and imported with ``gateway exchanges
import-spill``. Each exchange's leaf is what its row and findings, read back, make."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from sqlalchemy import event

from gateway.audit.chain import AuditChain
from gateway.audit.keys import AuditKeys
from gateway.config.observe import AuditConfig
from gateway.config.sections import RecordingConfig
from gateway.db.session import Sessions, create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord
from gateway.records.entries import Entry, insert_entries
from gateway.records.recorder import ExchangeRecorder
from gateway.records.replay import RecorderStats, Replayer
from gateway.records.spool import Spool
from gateway.records.status import Status
from tests.audit.chained import KEYS, assert_rows_chained, entries_of
from tests.databases import empty_database_of, in_a_thread, run_on, sessions_on, upgrade
from tests.servers import Gateway, in_process

# -- through a running gateway ----------------------------------------------------------------


def _audit_of(gateway: Gateway) -> AuditConfig:
    """The audit settings the gateway runs with (its file, then its environment)."""
    written = yaml.safe_load(gateway.config.read_text()).get("audit", {})
    config = AuditConfig(**written)
    chain = gateway.env.get("GATEWAY_AUDIT_CHAIN_ID")
    keys = gateway.env.get("GATEWAY_AUDIT_KEYS_DIR")
    update: dict[str, Any] = {"chain_id": chain} if chain else {}
    if keys:
        update["keys_dir"] = Path(keys)
    return config.model_copy(update=update)


def test_exchanges_served_are_chained_as_the_database_gives_them_back(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    ids = []
    for text in ("hello there", "please flag me, I am ann@example.com", "warn me"):
        raw = client.chat.completions.with_raw_response.create(
            model="test-small", messages=[{"role": "user", "content": text}]
        )
        ids.append(raw.headers["x-request-id"])
    with client.chat.completions.with_streaming_response.create(
        model="test-small", messages=[{"role": "user", "content": "stream it"}], stream=True
    ) as streamed:
        ids.append(streamed.headers["x-request-id"])
        assert list(streamed.iter_lines())
    records = [gateway.record(i) for i in ids]
    assert records[1]["decision"] is not None
    audit = _audit_of(gateway)
    keys = AuditKeys.load(audit, create=False)  # made by the gateway on its first start
    run_on(gateway.database_url, lambda s: assert_rows_chained(s, audit.chain_id, keys, ids))


# -- the spool, its replay, and import-spill --------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def away_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without its schema yet: records go to the spool until it is migrated."""
    with empty_database_of(request.param, tmp_path, "away") as url:
        yield url


def _records(prefix: str, count: int) -> list[ExchangeRecord]:
    return [
        ExchangeRecord(
            id=f"{prefix}-{i}",
            endpoint="chat.completions",
            status=Status.OK,
            request_body={"messages": [{"role": "user", "content": f"prompt {i}"}], "t": 1e20},
            response_body={"choices": [{"message": {"content": f"answer {i}"}}]},
        )
        for i in range(count)
    ]


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.01)


def test_records_spooled_while_the_database_is_away_are_chained_once_replayed(
    away_url: str, tmp_path: Path
) -> None:
    chain = AuditChain("spooled", KEYS)
    away, after = _records("away", 5), _records("after", 3)
    settings = RecordingConfig(spill_dir=tmp_path / "spill", replay_seconds=0.1, fsync_seconds=0.05)

    async def main() -> None:
        async with sessions_on(away_url) as sessions:
            recorder = ExchangeRecorder(sessions, settings, chain=chain)
            recorder.start()
            for record in away:
                recorder.submit(record)
            await _until(lambda: recorder.stats.spilled == 5, "the records spooled")
            await asyncio.to_thread(upgrade, away_url)  # the database is back
            await _until(lambda: recorder.stats.replayed == 5, "the spool replayed")
            for record in after:
                recorder.submit(record)
            await recorder.stop()
            assert recorder.stats.written == 8
            ids = [r.id for r in away + after]
            await assert_rows_chained(sessions, chain.chain_id, KEYS, ids)
            assert len(await entries_of(sessions, chain.chain_id)) == 8

    in_a_thread(lambda: asyncio.run(main()))


def _entries(records: list[ExchangeRecord]) -> list[Entry]:
    return [r.entry().fitted() for r in records]


def test_a_replay_over_records_already_written_chains_only_the_new_ones(
    tmp_path: Path,
) -> None:
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    chain = AuditChain("replayed", KEYS)
    written, fresh = _entries(_records("had", 3)), _entries(_records("new", 2))

    async def quarantine(entry: Entry, why: str) -> None:
        raise AssertionError(f"{entry.id} quarantined: {why}")

    async def work(sessions: Sessions) -> None:
        await insert_entries(sessions, written, chain)
        spool = Spool(tmp_path / "spool")
        assert spool.append(written[1:] + fresh + written[:1])  # the writer died mid-replay
        stats = RecorderStats(failing=True)
        await Replayer(sessions, spool, stats, 2, quarantine, chain).replay()
        await spool.close()
        assert (stats.replayed, stats.replay_skipped) == (2, 3)
        ids = [e.id for e in written + fresh]
        await assert_rows_chained(sessions, chain.chain_id, KEYS, ids)
        assert [e.ref for e in await entries_of(sessions, chain.chain_id)] == ids

    run_on(url, work)


def test_import_spill_chains_each_record_once_however_often_it_runs(tmp_path: Path) -> None:
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'good.db'}")
    spill = tmp_path / "spill.jsonl"
    records = _entries(_records("spilled", 6))
    spill.write_text("".join(e.to_json() + "\n" for e in records))
    env = {
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_AUDIT_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_AUDIT_CHAIN_ID": "importer",
    }

    async def two_there(sessions: Sessions) -> None:
        # two were written by the gateway before it spilled the rest (on its own chain)
        await insert_entries(sessions, records[2:4], AuditChain("gateway", KEYS))

    run_on(url, two_there)
    assert in_process(["audit", "key"], env).returncode == 0  # the operator's keys, made
    first = in_process(["exchanges", "import-spill", str(spill)], env)
    assert first.returncode == 0, first.stderr
    assert "imported 4 records" in first.stderr and "skipped 2" in first.stderr
    again = in_process(["exchanges", "import-spill", str(spill)], env)
    assert "imported 0 records" in again.stderr and "skipped 6" in again.stderr
    keys = AuditKeys.load(AuditConfig(keys_dir=tmp_path / "keys"), create=False)
    imported = [e.id for e in records[:2] + records[4:]]

    async def check(sessions: Sessions) -> None:
        await assert_rows_chained(sessions, "importer", keys, imported)
        assert [e.ref for e in await entries_of(sessions, "importer")] == imported
        assert [e.ref for e in await entries_of(sessions, "gateway")] == ["spilled-2", "spilled-3"]

    run_on(url, check)


def test_a_batch_takes_the_chains_lock_once_however_many_records_it_holds(
    tmp_path: Path,
) -> None:
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    chain = AuditChain("batched", KEYS)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    async def main() -> None:
        engine = create_engine(url)
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        sessions = create_sessions(engine)
        await insert_entries(sessions, _entries(_records("batch", 50)), chain)
        await insert_entries(sessions, _entries(_records("more", 50)), chain)
        await assert_rows_chained(sessions, chain.chain_id, KEYS, [])
        await engine.dispose()

    in_a_thread(lambda: asyncio.run(main()))
    writes = [s for s in statements if s.split()[0] in ("INSERT", "UPDATE")]
    # per batch: its exchanges, the chain's row locked (made first, the first time), its
    # entries, the head moved on
    assert writes == [
        "INSERT INTO exchanges",
        "UPDATE audit_chains SET",
        "INSERT INTO audit_chains",
        "UPDATE audit_chains SET",
        "INSERT INTO audit_entries",
        "UPDATE audit_chains SET",
        "INSERT INTO exchanges",
        "UPDATE audit_chains SET",
        "INSERT INTO audit_entries",
        "UPDATE audit_chains SET",
    ]
