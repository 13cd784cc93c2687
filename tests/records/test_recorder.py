"""The batched writer against real databases: batching, failure, spill, reload, shutdown."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.auth.keys import KeyService, Principal
from gateway.checks.registry import default_registry
from gateway.config.sections import RecordingConfig
from gateway.db import migrate
from gateway.db.models import Exchange
from gateway.db.session import create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.loader import load_policy
from gateway.records.recorder import Entry, ExchangeRecorder, read_spill
from gateway.records.repository import ExchangeRepository
from gateway.records.status import Status
from tests.servers import cli


def logs(count: int, prefix: str) -> list[ExchangeRecord]:
    return [
        ExchangeRecord(
            id=f"{prefix}{i}", endpoint="chat.completions", status=Status.OK, request_body={"i": i}
        )
        for i in range(count)
    ]


async def count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessions(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(Exchange)) or 0)
    finally:
        await engine.dispose()


def test_many_records_are_written_in_batches_and_stop_drains(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)

    async def main() -> ExchangeRecorder:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(batch_size=100, spill_dir=tmp_path)
        )
        recorder.start()
        for record in logs(1000, "a"):
            recorder.submit(record)  # never awaits: the request path does not wait
        await recorder.stop()
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert asyncio.run(count(url)) == 1000
    assert recorder.stats.written == 1000
    assert recorder.stats.spilled == 0
    assert not list(tmp_path.glob("*.jsonl"))


def test_a_database_that_fails_gets_records_spilled_then_reloaded(tmp_path: Path) -> None:
    broken = f"sqlite+aiosqlite:///{tmp_path / 'no-schema.db'}"  # no migrations: inserts fail
    spill = tmp_path / "spill"

    async def main() -> ExchangeRecorder:
        engine = create_engine(broken)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(retries=1, spill_dir=spill)
        )
        recorder.start()
        for record in logs(25, "b"):
            recorder.submit(record)
        await recorder.stop()
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.stats.spilled == 25
    assert recorder.stats.failing  # the database is unusable: records go to the spool
    assert recorder.healthy  # which still records them
    assert "no such table" in (recorder.stats.last_error or "")
    (spilled,) = spill.glob("spool*.jsonl")
    entries = read_spill(spilled)
    assert sorted(e.row["id"] for e in entries) == sorted(f"b{i}" for i in range(25))

    good = f"sqlite+aiosqlite:///{tmp_path / 'good.db'}"
    env = {"GATEWAY_DATABASE_URL": good}
    assert cli(["db", "upgrade"], env).returncode == 0
    imported = cli(["exchanges", "import-spill", str(spilled)], env)
    assert imported.returncode == 0, imported.stderr
    assert asyncio.run(count(good)) == 25

    async def one() -> Exchange | None:
        engine = create_engine(good)
        try:
            return await ExchangeRepository(create_sessions(engine)).get("b3")
        finally:
            await engine.dispose()

    row = asyncio.run(one())
    assert row is not None and row.request_body == {"i": 3} and row.received_at.tzinfo


def test_a_full_queue_spills_at_once_instead_of_growing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    migrate.upgrade(url)

    async def main() -> ExchangeRecorder:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(max_queue=10, spill_dir=tmp_path)
        )
        recorder.start()
        for record in logs(30, "c"):  # all before the writer gets a turn
            recorder.submit(record)
        await recorder.stop()
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.stats.written + recorder.stats.spilled == 30
    assert recorder.stats.spilled == 20
    (spilled,) = tmp_path.glob("spool*.jsonl")
    assert len(spilled.read_text().splitlines()) == 20


def test_the_cli_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    result = cli(["keys", "list"], env)
    assert result.returncode == 1
    assert "gateway db upgrade" in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("backends: [", "not valid YAML"),
        ("backends: {}\nmodels: {}\nextra: 1", "extra: Extra inputs are not permitted"),
        ("models: {a: {backend: nope, model: x}}\nbackends: {}", "names backend 'nope'"),
        ("backends: {b: {kind: openai}}\nmodels: {}", "needs a base_url"),
    ],
)
def test_a_broken_config_file_is_a_clear_error(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    for command in (["keys", "list"], ["serve"]):
        result = cli([*command, "--config", str(path)], {})
        assert result.returncode == 2
        assert str(path) in result.stderr and says in result.stderr
        assert "Traceback" not in result.stderr


def test_purge_erases_content_past_retention_and_keeps_the_record(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "kept.yaml").write_text(
        "context: kept\npurpose: Retention test.\nowner: t@situate.invalid\naudience: tests\n"
        "models: {allow: [demo-small]}\nrecord: {content: full, retention_days: 1}\n"
    )
    (tmp_path / "gateway.yaml").write_text(
        f"policies_dir: {policies}\nbackends: {{demo: {{kind: demo}}}}\n"
        "models: {demo-small: {backend: demo, model: mock-small}}\n"
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(url)
    old, new = logs(2, "p")
    kept = load_policy(policies / "kept.yaml", default_registry(), ["demo-small"])
    old.received_at = old.received_at - timedelta(days=2)

    async def write() -> None:
        engine = create_engine(url)
        sessions = create_sessions(engine)
        key = await KeyService(sessions).create("kept", "tests")
        old.ctx = new.ctx = RequestContext.of(Principal(key.id, "kept", "tests"), kept)
        recorder = ExchangeRecorder(sessions, RecordingConfig(spill_dir=tmp_path))
        recorder.start()
        recorder.submit(old)
        recorder.submit(new)
        await recorder.stop()
        await engine.dispose()

    asyncio.run(write())
    env = {"GATEWAY_DATABASE_URL": url, "GATEWAY_CONFIG": str(tmp_path / "gateway.yaml")}
    purged = cli(["exchanges", "purge"], env)
    assert purged.returncode == 0, purged.stderr
    assert "erased the content of 1 exchanges" in purged.stdout

    async def read() -> dict[str, Exchange | None]:
        engine = create_engine(url)
        try:
            repo = ExchangeRepository(create_sessions(engine))
            return {"old": await repo.get("p0"), "new": await repo.get("p1")}
        finally:
            await engine.dispose()

    rows = asyncio.run(read())
    assert rows["old"] is not None and rows["old"].request_body is None
    assert rows["old"].status == "ok"  # the record itself stays
    assert rows["new"] is not None and rows["new"].request_body == {"i": 1}


class _Unbuildable:
    """A record whose rows cannot be built at all (a bug in a record type)."""

    def entry(self) -> Entry:
        raise RuntimeError("no rows for this one")


class _BrokenRow(ExchangeRecord):
    """An exchange record whose row building fails (a bug in a view, say)."""

    def _row(self) -> dict[str, Any]:
        raise ValueError("the redaction view broke")


def test_one_record_that_cannot_become_rows_costs_nothing_else(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    migrate.upgrade(url)

    async def main() -> ExchangeRecorder:
        engine = create_engine(url)
        recorder = ExchangeRecorder(create_sessions(engine), RecordingConfig(spill_dir=tmp_path))
        recorder.start()
        good = logs(3, "u")
        recorder.submit(good[0])
        recorder.submit(_Unbuildable())
        recorder.submit(_BrokenRow(id="u-broken", endpoint="chat.completions"))
        recorder.submit(good[1])
        recorder.submit(good[2])
        await recorder.stop()
        await engine.dispose()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.stats.unbuildable == 1  # logged (its id, not its bodies), the writer went on
    assert asyncio.run(count(url)) == 4  # the three good ones and the broken row's fallback

    async def broken() -> Exchange | None:
        engine = create_engine(url)
        try:
            return await ExchangeRepository(create_sessions(engine)).get("u-broken")
        finally:
            await engine.dispose()

    row = asyncio.run(broken())
    assert row is not None and row.status == "gateway_error"
    assert row.error_type == "record_unbuildable"
    assert "the redaction view broke" in (row.error_message or "")


class _Unrenderable(ExchangeRecord):
    """An exchange whose rows cannot be built at all, fallback included."""

    def entry(self) -> Entry:
        raise RuntimeError("no rows for this one")


def test_an_unbuildable_record_is_logged_without_its_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"
    migrate.upgrade(url)
    record = _Unrenderable(id="req_unbuilt", endpoint="embeddings",
                           request_body={"input": "SECRET-PROMPT"},
                           response_body={"data": "SECRET-ANSWER"})

    async def main() -> None:
        engine = create_engine(url)
        recorder = ExchangeRecorder(create_sessions(engine), RecordingConfig(spill_dir=tmp_path))
        recorder.start()
        recorder.begin(record.id)
        recorder.submit(record)
        await recorder.stop()
        assert not recorder.holds(record.id)  # it will never come: no receipt waits for it
        await engine.dispose()

    with caplog.at_level("INFO", logger="gateway.recorder"):
        asyncio.run(main())
    (line,) = [r for r in caplog.records if "could not be turned into rows" in r.getMessage()]
    said = line.getMessage()
    assert "req_unbuilt" in said and "embeddings" in said
    assert "RuntimeError: no rows for this one" in said
    assert "SECRET" not in caplog.text


def test_a_spooled_record_is_pending_until_the_replay_writes_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"  # no schema yet: the writes fail
    records = logs(3, "s")

    async def main() -> tuple[list[bool], list[bool]]:
        engine = create_engine(url)
        recorder = ExchangeRecorder(
            create_sessions(engine), RecordingConfig(retries=1, spill_dir=tmp_path / "spill")
        )
        recorder.start()
        for record in records:
            recorder.begin(record.id)
            recorder.submit(record)
        while recorder.stats.spilled < len(records):
            await asyncio.sleep(0.01)
        spooled = [recorder.holds(r.id) for r in records]
        await asyncio.to_thread(migrate.upgrade, url)  # the database is back
        await recorder.replay()
        replayed = [recorder.holds(r.id) for r in records]
        await recorder.stop()
        await engine.dispose()
        return spooled, replayed

    spooled, replayed = asyncio.run(main())
    assert spooled == [True, True, True]  # in the spool: a receipt is pending, not unknown
    assert replayed == [False, False, False]
    assert asyncio.run(count(url)) == 3
