"""``gateway exchanges import-spill``: idempotent (a second run succeeds and says what it
skipped), a poison record or a torn last line does not fail the file, and no traceback (full
of prompts) ever reaches the terminal."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from gateway.config.sections import RecordingConfig
from gateway.pipeline.context import ExchangeRecord
from gateway.records.recorder import ExchangeRecorder
from gateway.records.status import Status
from tests.databases import in_a_thread, sessions_on, upgrade
from tests.servers import cli


def _spooled(folder: Path, count: int) -> Path:
    """A spool written by a recorder whose database has no schema (every insert fails)."""
    broken = f"sqlite+aiosqlite:///{folder / 'no-schema.db'}"
    records = [
        ExchangeRecord(
            id=f"s{i}",
            endpoint="chat.completions",
            status=Status.OK,
            request_body={"i": i, "secret prompt": "do not print me", "odd": math.nan},
        )
        for i in range(count)
    ]

    async def main() -> None:
        async with sessions_on(broken) as sessions:
            recorder = ExchangeRecorder(sessions, RecordingConfig(spill_dir=folder / "spill"))
            recorder.start()
            for record in records:
                recorder.submit(record)
            await recorder.stop()

    in_a_thread(lambda: asyncio.run(main()))
    (spool,) = (folder / "spill").glob("spool*.jsonl")
    return spool


def test_import_spill_twice_imports_once_and_says_what_it_skipped(tmp_path: Path) -> None:
    spool = _spooled(tmp_path, 25)
    with spool.open("a") as handle:
        handle.write('{"exchange": {"id": "torn", "endp')  # a process killed mid-line
    env = {"GATEWAY_DATABASE_URL": upgrade(f"sqlite+aiosqlite:///{tmp_path / 'good.db'}")}
    first = cli(["exchanges", "import-spill", str(spool)], env)
    assert first.returncode == 0, first.stderr
    assert "imported 25 records" in first.stderr and "skipped 0" in first.stderr
    again = cli(["exchanges", "import-spill", str(spool)], env)
    assert again.returncode == 0, again.stderr
    assert "imported 0 records" in again.stderr and "skipped 25" in again.stderr
    listed = cli(["exchanges", "show", "s3"], env)
    assert '"odd": "NaN"' in listed.stdout  # normalised, on both dialects alike


def test_import_spill_into_a_database_it_cannot_use_is_one_line_no_traceback(
    tmp_path: Path,
) -> None:
    spool = _spooled(tmp_path, 3)
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    failed = cli(["exchanges", "import-spill", str(spool)], env)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "do not print me" not in failed.stderr
    assert "gateway db upgrade" in failed.stderr


def test_a_record_the_database_refuses_costs_only_itself_and_is_named(tmp_path: Path) -> None:
    spool = _spooled(tmp_path, 3)
    lines = spool.read_text().splitlines()
    orphan = json.loads(lines[1])
    orphan["exchange"]["key_id"] = "key_that_never_existed"  # a foreign key the database refuses
    lines[1] = json.dumps(orphan)
    spool.write_text("\n".join(lines) + "\n")
    env = {"GATEWAY_DATABASE_URL": upgrade(f"sqlite+aiosqlite:///{tmp_path / 'good.db'}")}
    done = cli(["exchanges", "import-spill", str(spool)], env)
    assert done.returncode == 1
    assert "imported 2 records" in done.stderr
    assert "refused by the database: s1" in done.stderr
    assert "Traceback" not in done.stderr and "do not print me" not in done.stderr
