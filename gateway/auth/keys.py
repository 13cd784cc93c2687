"""API keys: made with 256 random bits, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.db.models import ApiKey
from gateway.db.session import Sessions
from gateway.policy.schema import RateLimits

KEY_PREFIX = "sk-gw-"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id (never the key) and the deployment context it serves."""

    key_id: str
    context: str
    name: str
    #: the key's own rate limits and budgets (None: only the context's apply)
    limits: RateLimits | None = None


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    secret: str
    context: str
    name: str
    expires_at: datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display(secret: str) -> str:
    return f"{secret[: len(KEY_PREFIX) + 4]}…{secret[-4:]}"


def looks_like_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX) and 20 < len(secret) < 200


def key_summary(key: ApiKey, now: datetime) -> dict[str, object]:
    if key.revoked_at is not None:
        state = "revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": key.id,
        "display": key.display,
        "context": key.context,
        "name": key.name,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "state": state,
        "limits": key.limits or None,
    }


def stored_limits(limits: RateLimits | None) -> dict[str, object] | None:
    """What ``api_keys.limits`` holds: the limits that are set, or NULL for none."""
    if limits is None or limits.empty:
        return None
    return limits.model_dump(exclude_none=True)


def read_limits(stored: object) -> RateLimits | None:
    return RateLimits.model_validate(stored) if isinstance(stored, dict) and stored else None


class KeyService:
    """Create, list, revoke and look up keys. The CLI and the admin API share it. Each change
    appends its event to ``audit`` in the same transaction (``actor``: who made it)."""

    def __init__(self, sessions: Sessions, audit: AuditChain | None = None) -> None:
        self._sessions = sessions
        self._audit = audit

    async def create(
        self,
        context: str,
        name: str,
        expires_in_days: int | None = None,
        limits: RateLimits | None = None,
        *,
        actor: str = events.GATEWAY,
    ) -> NewKey:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + timedelta(days=expires_in_days) if expires_in_days else None
        row = ApiKey(
            id="key_" + secrets.token_hex(8),
            digest=digest(secret),
            display=display(secret),
            context=context,
            name=name,
            created_at=now,
            expires_at=expires,
            limits=stored_limits(limits),
        )
        async with self._sessions.begin() as session:
            session.add(row)
            await events.append(self._audit, session, events.key_created(actor, row))
        return NewKey(row.id, secret, context, name, expires)

    async def list(self) -> list[ApiKey]:
        async with self._sessions() as session:
            result = await session.scalars(select(ApiKey).order_by(ApiKey.created_at))
            return list(result)

    async def revoke(self, key_id: str, *, actor: str = events.GATEWAY) -> bool:
        when = datetime.now(UTC)
        async with self._sessions.begin() as session:
            context = await session.scalar(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=when)
                .returning(ApiKey.context)
            )
            if context is None:
                return False
            await events.append(
                self._audit, session, events.key_revoked(actor, key_id, context, when)
            )
            return True

    async def set_limits(
        self, key_id: str, limits: RateLimits | None, *, actor: str = events.GATEWAY
    ) -> bool:
        """Replace a key's own limits (None or all unset: none); False for no such key."""
        async with self._sessions.begin() as session:
            found = (
                await session.execute(
                    select(ApiKey.context, ApiKey.limits).where(ApiKey.id == key_id)
                )
            ).first()
            if found is None:
                return False
            after = stored_limits(limits)
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(limits=after))
            event = events.key_limits(actor, key_id, found.context, found.limits, after)
            await events.append(self._audit, session, event)
            return True

    async def find(self, secret: str) -> Principal | None:
        """The principal for a usable key, or None (unknown, revoked or expired)."""
        wanted = digest(secret)
        async with self._sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.digest == wanted))
        if row is None or not hmac.compare_digest(row.digest, wanted):
            return None
        if row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            return None
        return Principal(row.id, row.context, row.name, read_limits(row.limits))
