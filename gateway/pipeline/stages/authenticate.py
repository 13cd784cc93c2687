"""The first two stages: who is asking (a bearer key, to a principal and its context), and the
snapshot of that context's policy that decides the whole exchange, whatever reloads meanwhile."""

from __future__ import annotations

from gateway.auth.authenticator import Authenticator
from gateway.auth.keys import Principal
from gateway.errors import PolicyUnavailable
from gateway.pipeline.context import ExchangeRecord, RequestContext
from gateway.policy.store import PolicyStore


async def authenticate(
    authenticator: Authenticator, authorization: str | None, record: ExchangeRecord | None = None
) -> Principal:
    """The caller's principal; a key served on a stale lookup (the database unreachable) is
    said on the record."""
    principal, stale = await authenticator.authenticate_checked(authorization)
    if record is not None:
        record.stale_key_seconds = stale
    return principal


def snapshot(policies: PolicyStore, principal: Principal, record: ExchangeRecord) -> RequestContext:
    """The context's current revision, stamped on the record from here on."""
    policy = policies.get(principal.context)
    if policy is None:
        raise PolicyUnavailable(
            f"The deployment context '{principal.context}' has no policy that can serve; "
            "the operator must fix its policy file.",
            headers={"retry-after": "5"},
        )
    ctx = record.ctx = RequestContext.of(principal, policy)
    return ctx
