"""Erasure and rows another transaction holds (PostgreSQL, where rows are locked one by one):
a person's erasure waits for them and erases every record that matches; the retention pass
leaves them, says how many it left, and a later pass takes them."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.clock import now
from gateway.db.models import Exchange
from gateway.db.session import Sessions
from gateway.records.erasure import Eraser, Who
from tests.audit.chained import postgres_chain_url
from tests.audit.erasing import chained, new_key, policy_file, record, rows, then_verified, write

__all__ = ["postgres_chain_url"]  # the fixture, used by name

WHO = Who("cli:tester", "a person's request (ticket 8)")


def test_a_persons_erasure_waits_for_locked_rows_and_retention_leaves_them(
    postgres_chain_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup = chained(tmp_path / "keys")
    policy = policy_file(tmp_path, "erase-locked", "{content: full}")

    async def work(sessions: Sessions) -> None:
        key = await new_key(sessions, setup.chain, policy.context)
        old = now() - timedelta(days=40)
        ids = await write(sessions, setup.chain,
                          [record(policy, key, old, f"locked {i}") for i in range(3)])
        eraser = Eraser(sessions, setup.chain)
        async with sessions.begin() as holder:  # another transaction holds the first row
            await holder.execute(select(Exchange.id).where(Exchange.id == ids[0])
                                 .with_for_update())
            with caplog.at_level(logging.WARNING, logger="gateway.records.erasure"):
                assert await eraser.received_before(policy.context, now(), WHO) == 2
            assert "1 records left for the next pass" in caplog.text
            waiting = asyncio.create_task(eraser.key(key, WHO))
            await asyncio.sleep(0.5)
            assert not waiting.done()  # it waits for the lock, it does not skip the row
        assert await asyncio.wait_for(waiting, 10) == 1
        found = await rows(sessions, ids)
        assert all(found[i].request_body is None and found[i].erased_at for i in ids)

    then_verified(postgres_chain_url, setup, work)
