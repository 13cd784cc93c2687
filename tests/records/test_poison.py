"""Bodies PostgreSQL would refuse to store: each is answered, its row is written normalised,
and readiness never wavers; a record that still fails alone is quarantined, not blocking."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.config.sections import RecordingConfig
from gateway.pipeline.context import ExchangeRecord
from gateway.records.entries import TRUNCATED, existing_ids, read_spill
from gateway.records.recorder import ExchangeRecorder
from gateway.records.status import Status
from tests.databases import in_a_thread, sessions_on, upgrade
from tests.servers import Gateway

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]


def _ready(gateway: Gateway) -> dict[str, Any]:
    ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    body: dict[str, Any] = ready.json()
    return body


def _sent(gateway: Gateway, content: bytes) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        content=content,
        headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_number_no_json_document_holds_never_poisons_recording(
    postgres_gateway: Gateway, literal: str
) -> None:
    body = (
        '{"model": "test-small", "messages": [{"role": "user", "content": "Hello"}], '
        f'"metadata": {{"score": {literal}, "deep": [[{literal}]]}}}}'
    ).encode()
    answered = _sent(postgres_gateway, body)
    assert answered.status_code < 500, answered.text  # answered (or refused at the door)
    record = postgres_gateway.record(answered.headers["x-request-id"])
    assert record["http_status"] == answered.status_code
    stored = record["request_body"]
    if stored is not None:  # kept: the numbers as the strings that name them
        expected = {"NaN": "NaN", "Infinity": "Infinity"}.get(literal, "-Infinity")
        expected = "Infinity" if literal == "1e400" else expected
        assert stored["metadata"] == {"score": expected, "deep": [[expected]]}
    assert _ready(postgres_gateway)["checks"]["recorder"]["ok"]


def test_a_lone_surrogate_is_stored_as_the_replacement_character(
    postgres_gateway: Gateway,
) -> None:
    # Python's SDK cannot send one (it encodes to UTF-8 first); a JavaScript client's
    # JSON.stringify sends it as an escape, which json.loads turns into a lone surrogate.
    body = (
        b'{"model": "test-small", "messages": [{"role": "user", '
        b'"content": "Hello \\ud800 there \\udfff"}], '
        b'"metadata": {"\\udc00key": "v\\ud83d"}}'
    )
    answered = _sent(postgres_gateway, body)
    assert answered.status_code == 200, answered.text
    record = postgres_gateway.record(answered.headers["x-request-id"])
    assert record["status"] == "ok"
    request = record["request_body"]
    assert request["messages"][0]["content"] == "Hello \ufffd there \ufffd"
    assert request["metadata"] == {"\ufffdkey": "v\ufffd"}
    assert _ready(postgres_gateway)["checks"]["recorder"]["ok"]


def test_a_model_name_longer_than_its_column_is_cut_with_a_marker(
    postgres_gateway: Gateway,
) -> None:
    name = "m" * 250
    with openai.OpenAI(
        base_url=postgres_gateway.v1, api_key=postgres_gateway.key, max_retries=0
    ) as sdk, pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(model=name, messages=HELLO)
    assert refused.value.status_code < 500
    record = postgres_gateway.record(refused.value.response.headers["x-request-id"])
    stored = record["requested_model"]
    assert len(stored) == 200 and stored.endswith(TRUNCATED)
    assert stored.startswith("m" * 150)
    assert record["request_body"]["model"] == name  # the body keeps it whole
    assert _ready(postgres_gateway)["checks"]["recorder"]["ok"]


def test_poison_records_in_process_are_written_normalised_on_both_dialects(
    database_url: str, tmp_path: Path
) -> None:
    """Straight to the recorder: what a backend's answer could hold, too."""
    upgrade(database_url)
    poison: dict[str, Any] = {
        "n": math.nan,
        "big": math.inf,
        "text": "a\x00b\ud800",
        "list": [-math.inf, 1.5],
    }
    record = ExchangeRecord(id=f"poison-{tmp_path.name[-12:]}", endpoint="chat.completions")
    record.request_body, record.response_body = poison, {"answer": [math.nan]}
    record.response_model = "r" * 300
    record.error_message = "bad \ud800 text"

    async def main() -> tuple[ExchangeRecorder, Any]:
        async with sessions_on(database_url) as sessions:
            recorder = ExchangeRecorder(sessions, RecordingConfig(spill_dir=tmp_path))
            recorder.start()
            recorder.submit(record)
            await recorder.stop()
            from gateway.records.repository import ExchangeRepository

            row = await ExchangeRepository(sessions).get(record.id)
            return recorder, row

    recorder, row = in_a_thread(lambda: asyncio.run(main()))
    assert recorder.stats.written == 1 and recorder.stats.quarantined == 0
    assert row.request_body == {
        "n": "NaN",
        "big": "Infinity",
        "text": "a\ufffdb\ufffd",
        "list": ["-Infinity", 1.5],
    }
    assert row.response_body == {"answer": ["NaN"]}
    assert row.response_model.endswith(TRUNCATED) and len(row.response_model) == 200
    assert row.error_message == "bad \ufffd text"


def test_a_record_that_still_fails_alone_is_quarantined_and_blocks_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two records under one id: the database takes the first and every other record of the
    batch, and refuses the second, which is kept in a quarantine file; readiness holds."""
    upgrade(postgres_url)
    tag = tmp_path.name[-10:]
    records = [
        ExchangeRecord(id=f"q-{tag}-{i}", endpoint="chat.completions", status=Status.OK)
        for i in range(5)
    ]
    twin = ExchangeRecord(id=f"q-{tag}-2", endpoint="chat.completions", request_body={"x": 1})

    async def main() -> ExchangeRecorder:
        async with sessions_on(postgres_url) as sessions:
            recorder = ExchangeRecorder(sessions, RecordingConfig(spill_dir=tmp_path, retries=1))
            recorder.start()
            for r in [*records[:3], twin, *records[3:]]:
                recorder.submit(r)
            await recorder.stop()
            return recorder

    recorder = in_a_thread(lambda: asyncio.run(main()))
    assert recorder.stats.written == 5
    assert recorder.stats.quarantined == 1
    assert recorder.healthy and not recorder.stats.failing
    (kept,) = tmp_path.glob("quarantine-*.jsonl")
    (entry,) = read_spill(kept)
    assert entry.row["id"] == twin.id and entry.row["request_body"] == {"x": 1}
    line = json.loads(kept.read_text())
    assert "UniqueViolation" in line["quarantined"] or "unique" in line["quarantined"].lower()
    assert "'x'" not in line["quarantined"]  # the reason names no values


def test_a_value_the_driver_refuses_is_quarantined_and_later_records_are_written(
    postgres_url: str, tmp_path: Path
) -> None:
    """asyncpg refuses prompt_tokens 3_000_000_000 (past int4) client-side, an InterfaceError
    to SQLAlchemy: the record's own fault, quarantined; the database stays in use."""
    upgrade(postgres_url)
    tag = tmp_path.name[-10:]
    bad = ExchangeRecord(
        id=f"big-{tag}", endpoint="chat.completions", status=Status.OK, prompt_tokens=3_000_000_000
    )
    after = [
        ExchangeRecord(id=f"after-{tag}-{i}", endpoint="chat.completions", status=Status.OK)
        for i in range(3)
    ]

    async def main() -> tuple[ExchangeRecorder, set[str]]:
        async with sessions_on(postgres_url) as sessions:
            recorder = ExchangeRecorder(sessions, RecordingConfig(spill_dir=tmp_path, retries=1))
            recorder.start()
            recorder.submit(bad)
            while recorder.pending or (recorder.stats.quarantined + recorder.stats.spilled) == 0:
                await asyncio.sleep(0.01)
            for r in after:
                recorder.submit(r)
            await recorder.stop()
            return recorder, await existing_ids(sessions, [r.id for r in [bad, *after]])

    recorder, stored = in_a_thread(lambda: asyncio.run(main()))
    assert stored == {r.id for r in after}
    assert recorder.stats.quarantined == 1 and recorder.stats.spilled == 0
    assert not recorder.stats.failing and not recorder.spool.waiting()
    (kept,) = tmp_path.glob("quarantine-*.jsonl")
    assert [e.id for e in read_spill(kept)] == [bad.id]
