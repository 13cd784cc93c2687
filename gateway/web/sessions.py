"""Sign-in for the web page: a reviewer token, once, for a session cookie.

The cookie is a random value; only its SHA-256 digest is stored, with the session's own CSRF
token, its expiry and its end. Signing out ends the row, so a copied cookie stops working; a
disabled reviewer or a removed queue takes effect on the next page, because the reviewer is
read afresh on every request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update

from gateway.clock import now
from gateway.db.models import WebSession
from gateway.db.session import Sessions
from gateway.errors import AuthenticationFailed
from gateway.review.reviewers import ReviewerIdentity, ReviewerService, token_digest

COOKIE = "situate_session"
LIFETIME = timedelta(hours=12)
KEEP = timedelta(days=7)  # ended sessions are kept this long past their expiry


class SignInRequired(AuthenticationFailed):
    code = "sign_in_required"


@dataclass(frozen=True, slots=True)
class SignedIn:
    who: ReviewerIdentity
    csrf: str


class WebSessions:
    def __init__(
        self, sessions: Sessions, reviewers: ReviewerService, lifetime: timedelta = LIFETIME
    ) -> None:
        self._sessions = sessions
        self._reviewers = reviewers
        self.lifetime = lifetime

    async def start(self, token: str) -> tuple[str, SignedIn]:
        """A new session for the token's reviewer: the cookie value (shown once) and who."""
        who = await self._reviewers.by_token(token.strip())
        cookie, csrf, at = secrets.token_urlsafe(32), secrets.token_urlsafe(32), now()
        async with self._sessions.begin() as session:
            # Sessions long past their end are of no use to anyone: drop them as new ones start.
            await session.execute(delete(WebSession).where(WebSession.expires_at < at - KEEP))
            session.add(
                WebSession(
                    digest=token_digest(cookie),
                    reviewer_id=who.id,
                    csrf_token=csrf,
                    created_at=at,
                    expires_at=at + self.lifetime,
                )
            )
        return cookie, SignedIn(who, csrf)

    async def resume(self, cookie: str | None) -> SignedIn:
        if not cookie:
            raise SignInRequired("Sign in with your reviewer token.")
        async with self._sessions() as session:
            row = await session.get(WebSession, token_digest(cookie))
        if row is None or row.ended_at is not None or row.expires_at < now():
            raise SignInRequired("Your session ended; sign in again.")
        try:
            who = await self._reviewers.by_id(row.reviewer_id)
        except AuthenticationFailed as exc:
            raise SignInRequired("Your reviewer account is disabled.") from exc
        return SignedIn(who, row.csrf_token)

    async def end(self, cookie: str | None) -> None:
        if not cookie:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(WebSession)
                .where(WebSession.digest == token_digest(cookie), WebSession.ended_at.is_(None))
                .values(ended_at=now())
            )
