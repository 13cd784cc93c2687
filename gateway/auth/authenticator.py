"""Bearer-token authentication with a short-lived cache, so a key costs no query per request.

A key revoked from another process (the CLI) stops working within ``cache_seconds``; one
revoked through this process's admin API stops at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from gateway.auth.keys import KeyService, Principal, digest, looks_like_key
from gateway.errors import AuthenticationFailed, ServiceUnavailable

_MAX_CACHED = 10_000


@dataclass(slots=True)
class _Entry:
    principal: Principal | None
    until: float


class Authenticator:
    def __init__(self, keys: KeyService, cache_seconds: float) -> None:
        self._keys = keys
        self._ttl = cache_seconds
        self._cache: dict[str, _Entry] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        secret = _bearer(authorization)
        cache_key = digest(secret)
        now = time.monotonic()
        entry = self._cache.get(cache_key)
        if entry is None or entry.until <= now:
            principal = await self._lookup(secret) if looks_like_key(secret) else None
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            entry = _Entry(principal, now + self._ttl)
            self._cache[cache_key] = entry
        if entry.principal is None:
            raise AuthenticationFailed(
                "Incorrect API key provided. Keys are issued by the gateway operator "
                "(`gateway keys create`)."
            )
        return entry.principal

    async def _lookup(self, secret: str) -> Principal | None:
        try:
            return await self._keys.find(secret)
        except (SQLAlchemyError, OSError) as exc:
            raise ServiceUnavailable(
                "The gateway cannot reach its database to check the API key; try again shortly.",
                code="database_unavailable",
                headers={"retry-after": "5"},
            ) from exc

    def forget(self) -> None:
        """Drop every cached lookup (after a revocation in this process)."""
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
