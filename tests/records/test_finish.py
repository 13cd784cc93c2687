"""The record stage's end of an exchange: its finishing hooks (a limit's settlement, the retry
budget's) run, and one that raises costs neither the record nor the hooks after it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.config.sections import RecordingConfig
from gateway.db import migrate
from gateway.db.session import create_engine, create_sessions
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.stages.record import finish
from gateway.records.recorder import ExchangeRecorder
from gateway.records.repository import ExchangeRepository
from gateway.records.status import Status


def test_a_hook_that_raises_costs_neither_the_record_nor_the_other_hooks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    migrate.upgrade(url)
    ran: list[str] = []

    def settle(record: ExchangeRecord) -> None:
        raise ConnectionError("the limiter's store went away")

    def refund(record: ExchangeRecord) -> None:
        ran.append(record.id)

    record = ExchangeRecord(id="hooked", endpoint="chat.completions", status=Status.OK)
    record.on_finish = [settle, refund]

    async def main() -> str | None:
        engine = create_engine(url)
        recorder = ExchangeRecorder(create_sessions(engine), RecordingConfig(spill_dir=tmp_path))
        recorder.start()
        finish(recorder, record)
        await recorder.stop()
        row = await ExchangeRepository(create_sessions(engine)).get("hooked")
        await engine.dispose()
        return None if row is None else row.status

    with caplog.at_level(logging.ERROR, logger="gateway.record"):
        assert asyncio.run(main()) == "ok"
    assert ran == ["hooked"]
    assert record.on_finish == []  # run once
    failed = [r for r in caplog.records if "hooked" in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # said, with its traceback
