"""The authenticator against a real database built by the migrations: a valid key, the wrong
scheme, an unknown, revoked or expired key, what the cache keeps and for how long, and an
unreachable database told apart from a wrong key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text, update

from gateway.auth.authenticator import Authenticator
from gateway.auth.keys import KeyService, NewKey, Principal
from gateway.db.models import ApiKey
from gateway.db.session import Sessions
from gateway.errors import AuthenticationFailed, ServiceUnavailable
from tests.databases import sessions_on, upgrade


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return upgrade(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('auth') / 'auth.db'}")


class CountingKeys(KeyService):
    """The real key service, counting the lookups that reach the database."""

    def __init__(self, sessions: Sessions) -> None:
        super().__init__(sessions)
        self.lookups = 0

    async def find(self, secret: str) -> Principal | None:
        self.lookups += 1
        return await super().find(secret)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


Work = Callable[[Authenticator, CountingKeys, NewKey], Awaitable[None]]


def run(database: str, work: Work, cache_seconds: float = 5.0) -> None:
    """``work`` with an authenticator on the database and a new key of its own."""

    async def go() -> None:
        async with sessions_on(database) as sessions:
            keys = CountingKeys(sessions)
            key = await keys.create("test-context", "auth tests")
            await work(Authenticator(keys, cache_seconds), keys, key)

    asyncio.run(go())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    fake_time = SimpleNamespace(monotonic=clock.monotonic)
    monkeypatch.setattr("gateway.auth.authenticator.time", fake_time)
    return clock


async def refused(auth: Authenticator, authorization: str | None) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        await auth.authenticate(authorization)
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert caught.value.headers()["x-should-retry"] == "false"
    return caught.value.message


def test_a_valid_key_is_its_principal(database: str) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        principal = await auth.authenticate(f"Bearer {key.secret}")
        assert principal == Principal(key.id, "test-context", "auth tests")
        assert await auth.authenticate(f"bearer  {key.secret} ") == principal  # scheme's case

    run(database, work)


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "You didn't provide an API key"),
        ("", "You didn't provide an API key"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <API key>'"),
        ("Token sk-gw-abc", "must be 'Bearer <API key>'"),
        ("Bearer", "must be 'Bearer <API key>'"),
        ("Bearer    ", "must be 'Bearer <API key>'"),
    ],
)
def test_the_wrong_scheme_or_no_key_is_refused_before_any_lookup(
    database: str, authorization: str | None, why: str
) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        assert why in await refused(auth, authorization)
        assert keys.lookups == 0

    run(database, work)


def test_the_right_secret_under_another_scheme_is_refused(database: str) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        await refused(auth, f"Basic {key.secret}")

    run(database, work)


def test_an_unknown_key_is_refused_and_what_is_no_key_is_never_looked_up(database: str) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        assert "Incorrect API key" in await refused(auth, f"Bearer {key.secret}x")
        assert keys.lookups == 1
        await refused(auth, "Bearer not-a-gateway-key-at-all")
        assert keys.lookups == 1

    run(database, work)


def test_a_refusal_is_cached_too(database: str, clock: Clock) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        for _ in range(3):
            await refused(auth, f"Bearer {key.secret}-unknown")
        assert keys.lookups == 1

    run(database, work)


def test_a_revoked_key_works_until_the_cache_expires(database: str, clock: Clock) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        header = f"Bearer {key.secret}"
        await auth.authenticate(header)
        assert await keys.revoke(key.id)
        clock.now += 4.9
        assert (await auth.authenticate(header)).key_id == key.id  # revoked elsewhere: cached
        assert keys.lookups == 1
        clock.now += 0.2
        await refused(auth, header)
        assert keys.lookups == 2

    run(database, work, cache_seconds=5.0)


def test_a_revocation_in_this_process_is_at_once(database: str, clock: Clock) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        header = f"Bearer {key.secret}"
        await auth.authenticate(header)
        await keys.revoke(key.id)
        auth.forget()
        await refused(auth, header)

    run(database, work)


def test_no_cache_looks_up_every_time(database: str, clock: Clock) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        for _ in range(3):
            await auth.authenticate(f"Bearer {key.secret}")
        assert keys.lookups == 3

    run(database, work, cache_seconds=0)


def test_an_expired_key_is_refused(database: str) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        async with sessions_on(database) as sessions, sessions.begin() as session:
            past = datetime.now(UTC) - timedelta(seconds=1)
            await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(expires_at=past))
        await refused(auth, f"Bearer {key.secret}")

    run(database, work)


def test_a_key_expiring_later_still_works(database: str) -> None:
    async def work(auth: Authenticator, keys: CountingKeys, key: NewKey) -> None:
        later = await keys.create("plain-context", "expires", expires_in_days=1)
        assert later.expires_at is not None and later.expires_at > datetime.now(UTC)
        assert (await auth.authenticate(f"Bearer {later.secret}")).context == "plain-context"

    run(database, work)


def test_an_unreachable_database_is_a_503_not_a_wrong_key(tmp_path: Path) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"  # no keys table

    async def go() -> None:
        async with sessions_on(empty) as sessions:
            auth = Authenticator(KeyService(sessions), 5.0)
            with pytest.raises(ServiceUnavailable) as caught:
                await auth.authenticate("Bearer sk-gw-" + "a" * 43)
        assert caught.value.status == 503 and caught.value.code == "database_unavailable"
        assert caught.value.headers()["retry-after"] == "5"

    asyncio.run(go())


def test_a_known_key_is_served_through_an_outage_for_stale_seconds_and_no_longer(
    tmp_path: Path, clock: Clock
) -> None:
    """The database goes (its keys table dropped: every lookup fails as a driver error): a
    key looked up within ``stale_seconds`` keeps serving, counted; past that, and for a key
    never seen, the 503 stands. The bound on how late a revocation may bite in an outage."""
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'outage.db'}")

    async def go() -> None:
        async with sessions_on(url) as sessions:
            keys = KeyService(sessions)
            key = await keys.create("test-context", "outage")
            other = await keys.create("test-context", "never used")
            auth = Authenticator(keys, cache_seconds=1.0, stale_seconds=60.0)
            header = f"Bearer {key.secret}"
            assert (await auth.authenticate(header)).key_id == key.id
            async with sessions.begin() as session:
                await session.execute(text("DROP TABLE api_keys"))
            clock.now += 30  # past the cache, within the stale bound
            assert (await auth.authenticate(header)).key_id == key.id
            principal, stale = await auth.authenticate_checked(header)
            assert principal.key_id == key.id and stale == 30.0  # said on the record
            assert auth.served_stale == 2
            with pytest.raises(ServiceUnavailable):
                await auth.authenticate(f"Bearer {other.secret}")  # never looked up
            clock.now += 31  # 61 s since the database last vouched for it
            with pytest.raises(ServiceUnavailable) as caught:
                await auth.authenticate(header)
            assert caught.value.code == "database_unavailable"

    asyncio.run(go())


class FrozenKeys(CountingKeys):
    """The key service of a frozen database: once frozen, each lookup waits, then fails as a
    driver error does when the statement timeout ends it."""

    frozen = False

    async def find(self, secret: str) -> Principal | None:
        if not self.frozen:
            return await super().find(secret)
        self.lookups += 1
        await asyncio.sleep(0.05)
        raise OSError("the statement timeout ended the lookup")


def test_during_an_outage_one_lookup_at_a_time_asks_the_database_and_the_rest_wait_for_it(
    tmp_path: Path, clock: Clock
) -> None:
    """A frozen database costs its timeout once a second for a key, not once a request: 50
    concurrent requests share one lookup, and the stale entry it renews serves the next ones
    without asking again until a second has passed."""
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'frozen.db'}")

    async def go() -> None:
        async with sessions_on(url) as sessions:
            keys = FrozenKeys(sessions)
            key = await keys.create("test-context", "frozen")
            auth = Authenticator(keys, cache_seconds=1.0, stale_seconds=60.0)
            header = f"Bearer {key.secret}"
            await auth.authenticate(header)
            keys.frozen, keys.lookups = True, 0
            clock.now += 5  # past the cache
            served = await asyncio.gather(*(auth.authenticate_checked(header) for _ in range(50)))
            assert {p.key_id for p, _ in served} == {key.id}
            assert {stale for _, stale in served} == {5.0}  # each said on its record
            assert keys.lookups == 1
            clock.now += 0.5  # within the second: served stale, the database not asked
            await auth.authenticate(header)
            assert keys.lookups == 1
            clock.now += 1.0
            await auth.authenticate(header)
            assert keys.lookups == 2
            assert auth.served_stale == 52

    asyncio.run(go())


class SlowKeys(CountingKeys):
    """Lookups that wait for ``gate`` and, once ``frozen``, fail after taking ``takes``
    seconds of the test's clock (a database that answers only at its timeout)."""

    def __init__(self, sessions: Sessions, clock: Clock) -> None:
        super().__init__(sessions)
        self.clock = clock
        self.frozen = False
        self.takes = 0.0
        self.gate = asyncio.Event()
        self.gate.set()

    async def find(self, secret: str) -> Principal | None:
        await self.gate.wait()
        if not self.frozen:
            return await super().find(secret)
        self.lookups += 1
        self.clock.now += self.takes
        raise OSError("the statement timeout ended the lookup")


def test_a_database_slow_to_fail_is_still_asked_once_a_second_and_waiters_take_the_stale_key(
    tmp_path: Path, clock: Clock
) -> None:
    """A lookup that fails only at the database's timeout (1.5 s here) renews the stale entry
    from when it failed, not from when it began (which left it expired at once); while the
    database is asked again, other requests take the stale key at once instead of waiting."""
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}")

    async def go() -> None:
        async with sessions_on(url) as sessions:
            keys = SlowKeys(sessions, clock)
            key = await keys.create("test-context", "slow")
            auth = Authenticator(keys, cache_seconds=1.0, stale_seconds=60.0)
            header = f"Bearer {key.secret}"
            await auth.authenticate(header)
            keys.frozen, keys.takes, keys.lookups = True, 1.5, 0
            clock.now += 5
            await auth.authenticate(header)  # fails after 1.5 s: served stale
            await auth.authenticate(header)  # within the second after it failed
            assert keys.lookups == 1
            clock.now += 1.0
            keys.gate.clear()  # the next lookup hangs
            asking = asyncio.ensure_future(auth.authenticate(header))
            await asyncio.sleep(0.05)
            principal = await asyncio.wait_for(auth.authenticate(header), 1.0)
            assert principal.key_id == key.id and not asking.done()
            keys.gate.set()
            await asking
            assert keys.lookups == 2

    asyncio.run(go())


def test_a_lookup_under_way_when_keys_are_forgotten_is_not_cached(
    tmp_path: Path, clock: Clock
) -> None:
    """A revocation in this process forgets every lookup; one that began before it (and may
    have read the key before the revocation was committed) is used once, never cached."""
    url = upgrade(f"sqlite+aiosqlite:///{tmp_path / 'forget.db'}")

    async def go() -> None:
        async with sessions_on(url) as sessions:
            keys = SlowKeys(sessions, clock)
            key = await keys.create("test-context", "forgotten")
            auth = Authenticator(keys, cache_seconds=60.0, stale_seconds=60.0)
            header = f"Bearer {key.secret}"
            keys.gate.clear()
            asking = asyncio.ensure_future(auth.authenticate(header))
            await asyncio.sleep(0.05)
            auth.forget()  # as the admin API does after a revocation
            keys.gate.set()
            await asking
            await auth.authenticate(header)
            assert keys.lookups == 2  # asked again: the first lookup was not kept

    asyncio.run(go())
