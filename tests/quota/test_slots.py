"""Stream slots in the real Redis (GATEWAY_TEST_REDIS_URL): none left behind by an admission
whose answer came late or was cancelled, renewed while their streams are open, and released
by the limiter's close (its settlements sent before Redis is closed).

A late answer is made by a real TCP relay in front of that Redis that passes each command at
once and each reply ``delay`` seconds later: the script runs in Redis, its answer misses
``limits.timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from gateway.config import LimitsConfig, PricingConfig
from gateway.policy.schema import RateLimits
from gateway.quota.checks import SLOT_SECONDS, Scope
from gateway.quota.counters import LocalCounters
from gateway.quota.limiter import Limiter, Ticket
from gateway.quota.slots import SlotKeeper
from tests.quota.test_limiter import redis_url
from tests.servers import free_port

STREAMS = [Scope("key", "key_1", RateLimits(concurrent_streams=2))]


class Relay:
    """A TCP relay to the tests' Redis; replies are held ``delay`` seconds (0 at first, so a
    connection is made in time)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.url = ""


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, relay: Relay | None
) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            if relay is not None and relay.delay:
                await asyncio.sleep(relay.delay)  # in order: each reply after the one before
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def late_redis() -> AsyncIterator[Relay]:
    """A relay to the tests' Redis whose replies come late once its ``delay`` is set."""
    target = urlsplit(redis_url())
    tasks: set[asyncio.Task[None]] = set()
    control = Relay()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection(target.hostname, target.port or 6379)
        for work in (_pipe(client_r, redis_w, None), _pipe(redis_r, client_w, control)):
            task = asyncio.create_task(work)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        control.url = f"redis://127.0.0.1:{port}{target.path or '/0'}"
        yield control
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def limiter_on(url: str, prefix: str, timeout: float) -> Limiter:
    limits = LimitsConfig(redis_url=url, key_prefix=prefix, timeout=timeout, on_unavailable="local")
    return Limiter(limits, PricingConfig())


async def slot_members(prefix: str) -> dict[bytes, float]:
    client = Redis.from_url(redis_url())
    try:
        found = await client.zrange(f"{prefix}:key:key_1:streams", 0, -1, withscores=True)
        return dict(found)
    finally:
        await client.aclose()


# redis-py drops a connection whose command was cancelled mid-reply without closing its socket
# (the garbage collector does): a ResourceWarning of the library's, not a slot left behind
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("how", ["late", "cancelled"])
def test_an_admission_whose_answer_is_lost_leaves_no_slot(how: str) -> None:
    asyncio.run(_lost_answer(how))
    gc.collect()  # the dropped connection's socket is closed here, not in a later test


async def _lost_answer(how: str) -> None:
    prefix = f"t-{secrets.token_hex(6)}"
    async with late_redis() as relay:
        limiter = limiter_on(relay.url, prefix, timeout=0.2)
        try:
            assert await limiter.redis.ping()  # type: ignore[union-attr]  # connected in time
            relay.delay = 0.5
            admitting = asyncio.create_task(
                limiter.admit(STREAMS, 10, stream=True, member="req-1")
            )
            if how == "late":
                ticket = await admitting
                relay.delay = 0  # a late answer, then Redis as quick as ever
                assert isinstance(ticket, Ticket) and ticket.fallback  # counted in process
            else:
                await asyncio.sleep(0.1)  # the script is in Redis, its answer on the way
                relay.delay = 0  # the answer on its way stays late; Redis is quick again
                admitting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await admitting
            await asyncio.sleep(0.3)  # the script surely ran (its answer is only late)
            await limiter.drain(5)
        finally:
            await limiter.close()
    assert await slot_members(prefix) == {}


def test_open_streams_slots_are_renewed_and_released_ones_are_not() -> None:
    asyncio.run(_renewed())


async def _renewed() -> None:
    prefix = f"t-{secrets.token_hex(6)}"
    limiter = limiter_on(redis_url(), prefix, timeout=2)
    client = Redis.from_url(redis_url())
    key = f"{prefix}:key:key_1:streams"
    try:
        open_one = await limiter.admit(STREAMS, 0, stream=True, member="open")
        done_one = await limiter.admit(STREAMS, 0, stream=True, member="done")
        assert isinstance(open_one, Ticket) and isinstance(done_one, Ticket)
        first = await slot_members(prefix)
        assert first[b"open"] / 1000 <= time.time() + SLOT_SECONDS  # short, not an hour
        soon = int((time.time() + 1) * 1000)  # as if the stream had run near a slot's life
        await client.zadd(key, {"open": soon, "done": soon})
        limiter.settle(done_one, 0, None)
        await limiter.drain(5)
        await limiter.slots.renew()
        renewed = await slot_members(prefix)
        assert list(renewed) == [b"open"]  # the released one is not put back
        assert renewed[b"open"] / 1000 > time.time() + SLOT_SECONDS - 5
        assert 0 < await client.pttl(key) <= SLOT_SECONDS * 1000
    finally:
        await limiter.close()
        await client.delete(key)
        await client.aclose()


def test_slots_counted_in_process_are_renewed_too() -> None:
    asyncio.run(_renewed_locally())


async def _renewed_locally() -> None:
    limiter = Limiter(LimitsConfig(key_prefix="t"), PricingConfig())
    try:
        ticket = await limiter.admit(STREAMS, 0, stream=True, member="open")
        assert isinstance(ticket, Ticket)
        (slots,) = limiter.local.slots.values()
        slots["open"] = time.time() + 0.05  # as if the stream had run near a slot's life
        await limiter.slots.renew()
        await asyncio.sleep(0.1)
        assert slots["open"] > time.time() + SLOT_SECONDS - 5
        await limiter.admit(STREAMS, 0, stream=True, member="second")
        assert len(slots) == 2  # the renewed slot still counts
    finally:
        await limiter.close()


def test_close_sends_the_settlements_under_way_first() -> None:
    asyncio.run(_close_drains())


async def _close_drains() -> None:
    prefix = f"t-{secrets.token_hex(6)}"
    async with late_redis() as relay:
        limiter = limiter_on(relay.url, prefix, timeout=2)
        ticket = await limiter.admit(STREAMS, 0, stream=True, member="req-1")
        relay.delay = 0.2
        assert isinstance(ticket, Ticket) and ticket.fallback is None
        assert list(await slot_members(prefix)) == [b"req-1"]
        limiter.settle(ticket, 0, None)  # its release is a task, its reply 0.2 s away
        await limiter.close()
        assert await slot_members(prefix) == {}


def test_a_failed_renewal_is_logged_not_taken_for_redis_being_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Renewing many slots may miss its bound under load: that is logged and retried at the
    next round, and does not switch admissions to local counting (the limiter's failure)."""
    failures: list[BaseException] = []

    def failed(exc: BaseException) -> str:
        failures.append(exc)
        return "local"

    async def go() -> None:
        client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
        keeper = SlotKeeper(LocalCounters(), client, 0.05, failed)
        keeper.live["member"] = (["t:slots"], True)
        try:
            with caplog.at_level(logging.WARNING, logger="gateway.quota"):
                await keeper.renew()
        finally:
            keeper.live.clear()
            await client.aclose()

    asyncio.run(go())
    assert failures == []
    assert "renewing 1 stream slots in Redis failed" in caplog.text
