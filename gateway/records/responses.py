"""Stored responses: how ``GET /v1/responses/{id}`` and ``previous_response_id`` find an
exchange, within its context only (another context's response is not found, as a missing
one is).

Records are written off the request path, so a follow-up may arrive before the record it
continues is in the database: ``RecentResponses`` keeps the last responses this process
answered (bounded, per context) and is read first; ``ResponseRecords`` reads the database.
What a record says about its response (which path served it, whether the client let it be
stored, what the record keeps of its content) is in its decision, under ``responses``; a
deleted response keeps its record (the exchange stays accountable), marked by its
``deleted_at`` (a record written after the DELETE says so in its notes as well), and the
DELETE is an event on the audit chain.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select, update

from gateway.audit import events
from gateway.audit.chain import AuditChain
from gateway.clock import now
from gateway.db.models import Exchange
from gateway.db.session import Sessions

ENDPOINT = "responses"
NOTES = "responses"  # the key of the decision's notes on a response
#: how long a DELETE waits for the record of a response this process answered to be written
WRITE_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response_id: str
    context: str
    exchange_id: str
    backend: str | None
    #: the backend served the Responses API itself (it knows the id too)
    native: bool
    #: the client did not send ``store: false``
    stored: bool
    #: what the record keeps of the content: full, redacted (chat views), none
    content: str
    request: Any
    response: Any
    #: the Response as the client got it (this process's memory only)
    delivered: Any = None
    deleted: bool = False
    #: the request had instructions (a redacted record's view starts with them)
    instructions: bool = False
    #: the input items as the input rules left them, where they changed them (a record
    #: keeping full content): what later turns are rebuilt from
    admitted: Any = None
    #: the record's notes while it is not yet written (this process's memory only): a delete
    #: marks them, so the record is written deleted
    notes: dict[str, Any] | None = None

    @property
    def servable(self) -> bool:
        return self.stored and not self.deleted


@dataclass(slots=True)
class _Held:
    stored: StoredResponse
    size: int
    #: what a read served of it, by policy revision (the rules are not run again per read)
    judged: dict[str, Any] = field(default_factory=dict)


class RecentResponses:
    """The last responses answered (or read) here, by context and id, bounded in count and
    in bytes, overall and per context (one context's large bodies do not push out the
    others'): the oldest go first."""

    def __init__(
        self, size: int = 2048, max_bytes: int = 128 << 20, context_bytes: int = 32 << 20
    ) -> None:
        self._size, self._max_bytes, self._context_bytes = size, max_bytes, context_bytes
        self._held: OrderedDict[tuple[str, str], _Held] = OrderedDict()
        self._bytes: dict[str, int] = {}

    def put(self, stored: StoredResponse) -> None:
        key = (stored.context, stored.response_id)
        self._drop(key)
        self._held[key] = _Held(stored, 0)
        self._grow(key, _size_of(stored))

    def _grow(self, key: tuple[str, str], size: int) -> None:
        self._held[key].size += size
        context = key[0]
        self._bytes[context] = self._bytes.get(context, 0) + size
        while self._bytes.get(context, 0) > self._context_bytes:
            self._drop(next(k for k in self._held if k[0] == context))
        while len(self._held) > self._size or sum(self._bytes.values()) > self._max_bytes:
            self._drop(next(iter(self._held)))

    def _drop(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._bytes[key[0]] -= held.size
            if not self._bytes[key[0]]:
                del self._bytes[key[0]]

    def get(self, context: str, response_id: str) -> StoredResponse | None:
        held = self._held.get((context, response_id))
        return None if held is None else held.stored

    def delete(self, context: str, response_id: str) -> None:
        held = self._held.get((context, response_id))
        if held is not None:
            held.stored, held.judged = replace(held.stored, deleted=True), {}
            if held.stored.notes is not None:
                held.stored.notes["deleted_at"] = now().isoformat()

    def judged(self, stored: StoredResponse, revision: str) -> Any:
        held = self._held.get((stored.context, stored.response_id))
        return None if held is None or held.stored is not stored else held.judged.get(revision)

    def keep_judged(self, stored: StoredResponse, revision: str, served: Any) -> None:
        """What a read served of ``stored`` under ``revision`` (counted in its bytes)."""
        key = (stored.context, stored.response_id)
        held = self._held.get(key)
        if held is not None and held.stored is stored and served is not stored.delivered:
            held.judged[revision] = served
            self._grow(key, len(json.dumps(served, default=str)))


def _size_of(stored: StoredResponse) -> int:
    """About how many bytes a held response takes (its bodies as JSON)."""
    bodies = (stored.request, stored.response, stored.delivered, stored.admitted)
    return sum(len(json.dumps(b, default=str)) for b in bodies if b is not None)


class ResponseRecords:
    def __init__(self, sessions: Sessions, audit: AuditChain | None = None) -> None:
        self._sessions = sessions
        self._audit = audit

    async def find(self, context: str, response_id: str) -> StoredResponse | None:
        async with self._sessions() as session:
            row = await session.scalar(_query(context, response_id))
        return None if row is None else _stored(row)

    async def mark_deleted(
        self, context: str, response_id: str, actor: str = events.GATEWAY
    ) -> bool:
        """Mark the record deleted (``deleted_at``; the decision, committed to on the chain,
        is left as written): GET no longer serves it. False while there is no such record
        written."""
        async with self._sessions.begin() as session:
            row = await session.scalar(_query(context, response_id))
            if row is None:
                return False
            await session.execute(
                update(Exchange).where(Exchange.id == row.id).values(deleted_at=now())
            )
            event = events.response_deleted(actor, response_id, row.id, context)
            await events.append(self._audit, session, event)
        return True


def _query(context: str, response_id: str) -> Any:
    return (
        select(Exchange)
        .where(
            Exchange.response_id == response_id,
            Exchange.context == context,
            Exchange.endpoint == ENDPOINT,
        )
        .order_by(Exchange.received_at.desc())
        .limit(1)
    )


def _stored(row: Exchange) -> StoredResponse:
    notes = (row.decision or {}).get(NOTES) or {}
    return StoredResponse(
        response_id=row.response_id or "",
        context=row.context or "",
        exchange_id=row.id,
        backend=row.backend,
        native=bool(notes.get("native")),
        stored=notes.get("stored", True) is not False,
        content=str(notes.get("content", "full")),
        request=row.request_body,
        response=row.response_body,
        deleted=row.deleted_at is not None or "deleted_at" in notes,
        instructions=bool(notes.get("instructions")),
        admitted=notes.get("admitted_input"),
    )


def notes_of(native: bool, stored: bool, content: str, instructions: bool) -> dict[str, Any]:
    """What a record's decision says about its response (``StoredResponse`` reads it)."""
    return {"native": native, "stored": stored, "content": content, "instructions": instructions}


class ResponseLookup:
    """This process's recent responses first, then the database's records."""

    def __init__(self, recent: RecentResponses, records: ResponseRecords) -> None:
        self.recent = recent
        self.records = records

    async def find(self, context: str, response_id: str) -> StoredResponse | None:
        held = self.recent.get(context, response_id)
        if held is not None:
            return held
        return await self.records.find(context, response_id)

    async def delete(self, context: str, response_id: str, actor: str = events.GATEWAY) -> bool:
        """Mark a servable response deleted; False when there is none to delete. One this
        process answered may not be written yet (records are written off the request path):
        the delete waits for its record, bounded (``WRITE_WAIT`` seconds)."""
        found = await self.find(context, response_id)
        if found is None or not found.servable:
            return False
        self.recent.delete(context, response_id)  # a record not yet made is made deleted
        deadline = time.monotonic() + WRITE_WAIT
        while not await self.records.mark_deleted(context, response_id, actor):
            if found.notes is None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        return True
