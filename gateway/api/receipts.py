"""``GET /v1/receipts/{request_id}``: a caller's proof that the gateway recorded its exchange.

The request id is the one each answer carries (``x-request-id``; the OpenAI SDKs show it as
``_request_id``). Only the key that made the exchange gets its receipt: any other key, like an
unknown id, gets the same 404. A record of this key still in the recorder's queue gives 404
``receipt_pending`` with a ``Retry-After``. When no checkpoint covers the exchange yet, one is
signed now. What the receipt holds and how to check it offline: docs/audit.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header
from sqlalchemy import select

from gateway.audit.note import vkey
from gateway.audit.proofs import locate, receipt
from gateway.db.models import Exchange
from gateway.deps import ServicesDep
from gateway.errors import NotFound

router = APIRouter(prefix="/v1", tags=["audit"])

#: what a caller waits before asking again for a receipt whose record is not written yet
PENDING_RETRY_SECONDS = 1


class ReceiptPending(NotFound):
    """The exchange's record is not written yet: ask again shortly."""

    code = "receipt_pending"
    retryable = True


def _unknown(request_id: str) -> NotFound:
    return NotFound(f"No receipt for request '{request_id}': no exchange of this key has it.",
                    param="request_id")


def _pending(request_id: str, seconds: float) -> ReceiptPending:
    return ReceiptPending(
        f"The record of request '{request_id}' is not on the chain yet; ask again shortly.",
        param="request_id",
        headers={"Retry-After": str(max(1, round(seconds)))},
    )


@router.get("/receipts/{request_id}", summary="A signed receipt of one of this key's exchanges")
async def get_receipt(
    request_id: str, services: ServicesDep, authorization: str | None = Header(None)
) -> dict[str, Any]:
    principal = await services.authenticator.authenticate(authorization)
    # before the read: a write may end between; only for the key that made it (any other key,
    # like an unknown id, gets the same 404)
    queued = services.recorder.holds_for(request_id, principal.key_id)
    async with services.sessions() as session:
        key_id = await session.scalar(select(Exchange.key_id).where(Exchange.id == request_id))
        where = await locate(session, request_id) if key_id is not None else None
    if key_id is None and queued:
        raise _pending(request_id, PENDING_RETRY_SECONDS)
    if key_id is None or key_id != principal.key_id or where is None:
        raise _unknown(request_id)
    keys = services.audit.keys
    found = await receipt(services.sessions, services.checkpoints, request_id, where,
                          vkey(keys.name, keys.public_key))
    if found is None:  # another replica's chain, not checkpointed yet
        raise _pending(request_id, services.config.audit.checkpoint_seconds)
    return found
