"""SIGTERM with streams that outlive the grace: each stream ends with a ``gateway_shutdown``
error frame the SDK raises, every record is written and says why, and the process exits in
about the grace, not at the streams' end."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import openai
from sqlalchemy import select

from gateway.db.models import Exchange
from tests.databases import in_a_thread, sessions_on
from tests.records.fixtures import eventually, serve_process
from tests.servers import scripted_upstream

STREAMS = 8
LONG = " ".join(f"word{i}" for i in range(200))  # 200 pieces, 0.1 s apart: 20 s a stream


class Reader(threading.Thread):
    """One streamed chat read through the SDK until it ends or raises."""

    def __init__(self, sdk: openai.OpenAI) -> None:
        super().__init__(daemon=True)
        self.sdk = sdk
        self.request_id = ""
        self.chunks = 0
        self.error: openai.APIError | None = None
        self.finished = False

    def run(self) -> None:
        raw = self.sdk.chat.completions.with_raw_response.create(
            model="test-small",
            messages=[{"role": "user", "content": "VERY-LONG please"}],
            stream=True,
        )
        self.request_id = raw.headers["x-request-id"]
        try:
            for _ in raw.parse():
                self.chunks += 1
            self.finished = True
        except openai.APIError as exc:
            self.error = exc


def _records(url: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    async def read() -> dict[str, tuple[str, str | None]]:
        async with sessions_on(url) as sessions, sessions() as session:
            rows = await session.execute(
                select(Exchange.id, Exchange.status, Exchange.error_type).where(
                    Exchange.id.in_(ids)
                )
            )
            return {row[0]: (row[1], row[2]) for row in rows}

    return in_a_thread(lambda: asyncio.run(read()))


def test_sigterm_cuts_streams_past_the_grace_with_an_error_frame_and_records_them_all(
    tmp_path: Path,
) -> None:
    script = {"rules": [{"contains": "VERY-LONG", "token_delay": 0.1, "reply": LONG}]}
    url = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    with scripted_upstream(tmp_path, script) as upstream, serve_process(
        upstream, url, tmp_path, server={"shutdown_grace": 2}
    ) as (gateway, proc):
        sdk = openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0)
        readers = [Reader(sdk) for _ in range(STREAMS)]
        for reader in readers:
            reader.start()
        eventually(lambda: all(r.chunks >= 2 for r in readers), 30, "every stream under way")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(timeout=15)
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        took = time.monotonic() - signalled
        sdk.close()
    assert took < 8, took  # the grace (2 s) and the drain, not the streams' 20 s
    for reader in readers:
        assert not reader.finished
        assert reader.error is not None, "the stream was cut without an error frame"
        assert "shutting down" in reader.error.message
        assert reader.chunks < 150
    ids = [r.request_id for r in readers]
    records = _records(url, ids)
    assert set(records) == set(ids)  # every record written
    assert set(records.values()) == {("incomplete", "gateway_shutdown")}
    log = (tmp_path / "gateway.log").read_text()
    assert "never handed their records over" not in log
