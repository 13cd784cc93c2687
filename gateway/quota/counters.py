"""The counters behind the limits: in this process, or in Redis, shared by every replica.

Both do the same three things. ``admit`` checks every limit of a request and, only when all
allow it, counts it against all of them, in one step: in Redis that is one Lua script (Redis
runs a script atomically, so two replicas can never both take the last place); in process it is
one synchronous function (nothing else runs on the event loop meanwhile). ``settle`` adds what
the exchange really used (``INCRBY``, which may be negative, with the window's expiry: never a
read-modify-write). ``release`` frees a stream's slot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis

from gateway.quota.checks import Check, Kind


@dataclass(frozen=True, slots=True)
class Counted:
    """What ``admit`` found: ``refused`` is the index of the first check that refused (None:
    admitted and counted), ``used`` what each check had used before this request."""

    refused: int | None
    used: list[int]


@dataclass(frozen=True, slots=True)
class Adjustment:
    key: str
    delta: int
    ttl_ms: int


class Counters(Protocol):
    async def admit(self, checks: Sequence[Check], member: str) -> Counted: ...

    async def settle(self, adjustments: Sequence[Adjustment]) -> None: ...

    async def release(self, key: str, member: str) -> None: ...

    async def finish(
        self, adjustments: Sequence[Adjustment], slots: Sequence[str], member: str
    ) -> None: ...


@dataclass(slots=True)
class _Count:
    value: int
    expires: float


@dataclass(slots=True)
class LocalCounters:
    """Counters in this process: exact for one replica, each replica its own."""

    counts: dict[str, _Count] = field(default_factory=dict)
    slots: dict[str, dict[str, float]] = field(default_factory=dict)

    async def admit(self, checks: Sequence[Check], member: str) -> Counted:
        return self.admit_now(checks, member, time.time())

    def admit_now(self, checks: Sequence[Check], member: str, now: float) -> Counted:
        if len(self.counts) > 100_000:
            self._expire(now)
        used: list[int] = []
        for index, check in enumerate(checks):
            value = self._used(check.key, check.kind, now)
            used.append(value)
            if _refuses(check, value):
                return Counted(index, used)
        for check in checks:
            if check.kind == Kind.SLOTS:
                self.slots.setdefault(check.key, {})[member] = check.expires_at
            elif check.amount:
                self._add(check.key, check.amount, check.expires_at + 120)
        return Counted(None, used)

    async def settle(self, adjustments: Sequence[Adjustment]) -> None:
        self.finish_now(adjustments, [], "")

    async def release(self, key: str, member: str) -> None:
        self.finish_now([], [key], member)

    async def finish(
        self, adjustments: Sequence[Adjustment], slots: Sequence[str], member: str
    ) -> None:
        self.finish_now(adjustments, slots, member)

    def finish_now(
        self, adjustments: Sequence[Adjustment], slots: Sequence[str], member: str
    ) -> None:
        now = time.time()
        for item in adjustments:
            self._add(item.key, item.delta, now + item.ttl_ms / 1000)
        for key in slots:
            self.slots.get(key, {}).pop(member, None)

    def renew_now(self, slots: Sequence[str], member: str, until: float) -> None:
        """Push an open stream's slots' expiry to ``until`` (only where they are held)."""
        for key in slots:
            members = self.slots.get(key, {})
            if member in members:
                members[member] = until

    def _used(self, key: str, kind: Kind, now: float) -> int:
        if kind == Kind.SLOTS:
            members = self.slots.get(key, {})
            for gone in [m for m, until in members.items() if until <= now]:
                del members[gone]
            return len(members)
        count = self.counts.get(key)
        return count.value if count is not None and count.expires > now else 0

    def _add(self, key: str, delta: int, expires: float) -> None:
        count = self.counts.get(key)
        if count is None or count.expires <= time.time():
            self.counts[key] = _Count(delta, expires)
        else:
            count.value += delta

    def _expire(self, now: float) -> None:
        for key in [k for k, c in self.counts.items() if c.expires <= now]:
            del self.counts[key]


def _refuses(check: Check, used: int) -> bool:
    if check.kind == Kind.BUDGET:
        return used >= check.maximum
    return used + check.amount > check.maximum


# KEYS: one counter per check. ARGV[1]: now (ms), ARGV[2]: the stream's member, then four a
# check: kind, maximum, amount, ttl (ms; for a slot, its expiry from now). Returns the 1-based
# index of the first check that refused (0: admitted), then what each check had used.
_ADMIT = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local used = {}
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local kind, maximum = ARGV[at + 1], tonumber(ARGV[at + 2])
  local amount = tonumber(ARGV[at + 3])
  local value
  if kind == 'slots' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    value = redis.call('ZCARD', KEYS[i])
  else
    value = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  used[i] = value
  local refused
  if kind == 'budget' then refused = value >= maximum else refused = value + amount > maximum end
  if refused then
    local answer = {i}
    for j = 1, i do answer[j + 1] = used[j] end
    return answer
  end
end
for i = 1, #KEYS do
  local at = 2 + (i - 1) * 4
  local kind, amount, ttl = ARGV[at + 1], tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  if kind == 'slots' then
    redis.call('ZADD', KEYS[i], now + ttl, member)
    redis.call('PEXPIRE', KEYS[i], ttl)
  elseif amount ~= 0 then
    redis.call('INCRBY', KEYS[i], amount)
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
local answer = {0}
for i = 1, #KEYS do answer[i + 1] = used[i] end
return answer
"""


# KEYS: the counters to adjust, then the slot sets to leave. ARGV[1]: how many counters,
# ARGV[2]: the stream's member, then a delta and a ttl (ms) a counter.
_FINISH = """
local counters = tonumber(ARGV[1])
for i = 1, counters do
  redis.call('INCRBY', KEYS[i], ARGV[1 + i * 2])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 + i * 2])
end
for i = counters + 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[2]) end
return 0
"""


class RedisCounters:
    """Counters in Redis: one script a request, so every replica sees them exactly."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._admit = client.register_script(_ADMIT)
        self._finish = client.register_script(_FINISH)

    async def admit(self, checks: Sequence[Check], member: str) -> Counted:
        now = time.time()
        args: list[str | int] = [int(now * 1000), member]
        for check in checks:
            args += [str(check.kind), check.maximum, check.amount, check.ttl_ms(now)]
        answer = await self._admit(keys=[c.key for c in checks], args=args)
        first, used = int(answer[0]), [int(v) for v in answer[1:]]
        return Counted(first - 1 if first else None, used)

    async def settle(self, adjustments: Sequence[Adjustment]) -> None:
        await self.finish(adjustments, [], "")

    async def release(self, key: str, member: str) -> None:
        await self.finish([], [key], member)

    async def finish(
        self, adjustments: Sequence[Adjustment], slots: Sequence[str], member: str
    ) -> None:
        """Settle and release in one round trip (one script)."""
        if not adjustments and not slots:
            return
        keys = [a.key for a in adjustments] + list(slots)
        args: list[str | int] = [len(adjustments), member]
        for item in adjustments:
            args += [item.delta, item.ttl_ms]
        await self._finish(keys=keys, args=args)
