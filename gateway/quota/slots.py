"""A stream's slot in Redis (``concurrent_streams``): held while the stream lives, and no longer.

A slot is a member of a sorted set scored by its expiry. It is short (``SLOT_SECONDS``) and each
replica renews the slots of its open streams every ``RENEW_SECONDS``, so a stream may last any
time, and a slot its replica lost track of (the replica died, the settlement failed) is free
again within ``SLOT_SECONDS``. When an admission's answer came too late, or its call was
cancelled, the script may still have run in Redis while the request is counted in this process:
its member is then removed from the slot sets at once (``forget``), best effort. Slots counted
in this process (no Redis, or Redis unreachable) are renewed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.quota.checks import SLOT_SECONDS, Check, Kind
from gateway.quota.counters import LocalCounters

log = logging.getLogger("gateway.quota")

#: how often a replica renews its open streams' slots (a quarter of their life)
RENEW_SECONDS = SLOT_SECONDS / 4
#: a lost admission's slot is removed this many times at most, each after this pause
FORGET_TRIES, FORGET_PAUSE = 3, 0.2
#: streams whose slots are renewed in one Redis round trip
RENEW_BATCH = 200


def slot_keys(checks: Sequence[Check]) -> list[str]:
    return [c.key for c in checks if c.kind == Kind.SLOTS]


class SlotKeeper:
    """The Redis slots of this replica's open streams, renewed until they are released."""

    def __init__(
        self,
        local: LocalCounters,
        client: Redis | None,
        timeout: float,
        failed: Callable[[BaseException], str],
    ) -> None:
        self.local = local
        self.client = client
        self.timeout = timeout
        self.failed = failed
        self.renew_seconds = RENEW_SECONDS
        #: member -> its slot sets and whether they are in Redis, while its stream is open
        self.live: dict[str, tuple[list[str], bool]] = {}
        self._renewer: asyncio.Task[None] | None = None

    def hold(self, member: str, keys: list[str], *, shared: bool) -> None:
        if not keys:
            return
        self.live[member] = (keys, shared)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    def let_go(self, member: str) -> None:
        self.live.pop(member, None)

    async def forget(self, keys: list[str], member: str) -> None:
        """Remove a member from its slot sets (an admission whose answer was lost), a moment
        later (after the script, should it still be on its way), tried ``FORGET_TRIES`` times."""
        if self.client is None:
            return
        for tried in range(1, FORGET_TRIES + 1):
            await asyncio.sleep(FORGET_PAUSE)
            try:  # off the request path: a little longer than an admission may take
                async with asyncio.timeout(max(1.0, 2 * self.timeout)):
                    async with self.client.pipeline(transaction=False) as pipe:
                        for key in keys:
                            pipe.zrem(key, member)
                        await pipe.execute()
                return
            except (RedisError, OSError, TimeoutError) as exc:  # else it expires on its own
                if tried == FORGET_TRIES:
                    self.failed(exc)

    async def renew(self) -> None:
        """Push every open stream's slot expiry ``SLOT_SECONDS`` ahead (only where the slot is
        still there: ``XX``, never re-adding one that was removed)."""
        now = time.time()
        shared = [(m, keys) for m, (keys, in_redis) in self.live.items() if in_redis]
        for member, (keys, in_redis) in self.live.items():
            if not in_redis:
                self.local.renew_now(keys, member, now + SLOT_SECONDS)
        if not shared or self.client is None:
            return
        until = int((now + SLOT_SECONDS) * 1000)
        for start in range(0, len(shared), RENEW_BATCH):
            await self._renew_batch(shared[start : start + RENEW_BATCH], until)

    async def _renew_batch(self, shared: list[tuple[str, list[str]]], until: int) -> None:
        """One pipeline of renewals, with its own bound. A failure is logged, not taken as
        Redis being away: admissions keep using Redis, and a slot missed now is renewed at
        the next round (it lives ``SLOT_SECONDS``, four rounds)."""
        assert self.client is not None
        try:
            async with asyncio.timeout(max(1.0, 2 * self.timeout)):
                async with self.client.pipeline(transaction=False) as pipe:
                    for member, keys in shared:
                        for key in keys:
                            pipe.zadd(key, {member: until}, xx=True)
                            # every member expires within SLOT_SECONDS: the set may too
                            pipe.pexpire(key, SLOT_SECONDS * 1000)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("renewing %d stream slots in Redis failed: %s", len(shared), exc)

    async def _renew_loop(self) -> None:
        while self.live:
            await asyncio.sleep(self.renew_seconds)
            await self.renew()

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        self._renewer = None
