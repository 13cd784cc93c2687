"""Bearer-token authentication with a short-lived cache, so a key costs no query per request.

A key revoked from another process (the CLI) stops working within ``cache_seconds``; one
revoked through this process's admin API stops at once. While the database cannot be reached
(or does not answer within ``database.statement_timeout``), a key this process looked up
successfully within ``auth.stale_seconds`` keeps serving, logged and counted: the documented
bound on how late a revocation made elsewhere takes effect during an outage. A key never seen
is refused with 503 ``database_unavailable``.

During an outage the database is asked about a key at most once a second (``_RETRY_SECONDS``)
and by one request at a time: the others wait for that lookup (or take the stale entry it
renewed) instead of each paying the database's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from gateway.auth.keys import KeyService, Principal, digest, looks_like_key
from gateway.errors import AuthenticationFailed, ServiceUnavailable

_MAX_CACHED = 10_000
#: while the database is unreachable, how long a key served stale is served without asking again
_RETRY_SECONDS = 1.0

log = logging.getLogger("gateway.auth")


@dataclass(slots=True)
class _Entry:
    principal: Principal | None
    until: float
    #: when the database last vouched for the key (a found key only)
    checked_at: float = 0.0
    #: served on an old lookup because the database could not be asked
    stale: bool = False


class Authenticator:
    def __init__(
        self, keys: KeyService, cache_seconds: float, stale_seconds: float = 0.0
    ) -> None:
        self._keys = keys
        self._ttl = cache_seconds
        self._stale = stale_seconds
        self._cache: dict[str, _Entry] = {}
        #: the lookup under way for a key, which other requests for that key wait for
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        #: requests served on a stale lookup while the database was unreachable
        self.served_stale = 0
        #: bumped by ``forget``: a lookup that began before it is not cached
        self._generation = 0

    async def authenticate(self, authorization: str | None) -> Principal:
        principal, _ = await self.authenticate_checked(authorization)
        return principal

    async def authenticate_checked(
        self, authorization: str | None
    ) -> tuple[Principal, float | None]:
        """The principal, and when it was served on a stale lookup (the database
        unreachable), how many seconds ago the database last vouched for the key."""
        secret = _bearer(authorization)
        cache_key = digest(secret)
        now = time.monotonic()
        entry = self._cache.get(cache_key)
        if entry is None or entry.until <= now:
            entry = self._stale_while_asked(cache_key, entry, now) or await self._refresh_once(
                secret, cache_key, entry, now
            )
        if entry.principal is None:
            raise AuthenticationFailed(
                "Incorrect API key provided. Keys are issued by the gateway operator "
                "(`gateway keys create`)."
            )
        if not entry.stale:
            return entry.principal, None
        self.served_stale += 1
        return entry.principal, now - entry.checked_at

    def _stale_while_asked(
        self, cache_key: str, entry: _Entry | None, now: float
    ) -> _Entry | None:
        """A key already served stale that is being asked about again: this request takes the
        stale entry at once (within ``stale_seconds``) instead of waiting out the database's
        timeout behind that lookup."""
        if entry is None or not entry.stale or cache_key not in self._pending:
            return None
        return entry if now - entry.checked_at <= self._stale else None

    async def _refresh_once(
        self, secret: str, cache_key: str, old: _Entry | None, now: float
    ) -> _Entry:
        """One lookup of a key at a time: concurrent requests for it share its outcome. It is
        shielded, so a client that leaves does not cancel the others' lookup."""
        pending = self._pending.get(cache_key)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(secret, cache_key, old, now))
            self._pending[cache_key] = pending
            pending.add_done_callback(lambda done: self._settled(cache_key, done))
        return await asyncio.shield(pending)

    def _settled(self, cache_key: str, done: asyncio.Future[_Entry]) -> None:
        self._pending.pop(cache_key, None)
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have left

    async def _refresh(
        self, secret: str, cache_key: str, old: _Entry | None, now: float
    ) -> _Entry:
        """A fresh lookup, or the old one renewed as stale while the database is away."""
        generation = self._generation
        try:
            principal = await self._lookup(secret) if looks_like_key(secret) else None
        except ServiceUnavailable:
            now = time.monotonic()  # the lookup may have taken the database's whole timeout
            if old is None or old.principal is None or now - old.checked_at > self._stale:
                raise
            log.warning(
                "the database is unreachable: key %s (context %s) served on its lookup of "
                "%.0f s ago (auth.stale_seconds: %g)",
                old.principal.key_id,
                old.principal.context,
                now - old.checked_at,
                self._stale,
            )
            until = min(now + _RETRY_SECONDS, old.checked_at + self._stale)
            stale = _Entry(old.principal, until, old.checked_at, stale=True)
            self._keep(cache_key, stale, generation)
            return stale
        now = time.monotonic()
        entry = _Entry(principal, now + self._ttl, now if principal is not None else 0.0)
        self._keep(cache_key, entry, generation)
        return entry

    def _keep(self, cache_key: str, entry: _Entry, generation: int) -> None:
        """Cache a lookup, unless a revocation (``forget``) came while it was under way: it
        may have read the key before the revocation was committed."""
        if generation != self._generation:
            return
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[cache_key] = entry

    async def _lookup(self, secret: str) -> Principal | None:
        try:
            return await self._keys.find(secret)
        except (SQLAlchemyError, OSError) as exc:
            raise ServiceUnavailable(
                "The gateway cannot reach its database to check the API key; try again shortly.",
                code="database_unavailable",
                headers={"retry-after": "5"},
            ) from exc

    def known_keys(self) -> int:
        """Keys this process could serve now were the database away (looked up within
        ``stale_seconds``): what keeps a gateway useful through an outage."""
        now = time.monotonic()
        return sum(
            1
            for entry in self._cache.values()
            if entry.principal is not None and now - entry.checked_at <= self._stale
        )

    def forget(self) -> None:
        """Drop every cached lookup (after a revocation in this process), and keep none that
        is under way."""
        self._generation += 1
        self._cache.clear()


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-gw-…'."
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("The Authorization header must be 'Bearer <API key>'.")
    return token
