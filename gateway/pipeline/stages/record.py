"""The record stage: every exchange is recorded, whatever happened to it, and says why.

An error raised anywhere before a stream takes the record over is put down here with the
status that says why; a stream finishes its own record. Either way the exchange goes through
the review stage and is handed to the recorder, which writes it off the request path.
"""

from __future__ import annotations

import logging

from gateway.clock import now
from gateway.errors import (
    ClientGone,
    GatewayError,
    PolicyViolation,
    UpstreamError,
    UpstreamPassthrough,
)
from gateway.pipeline.context import ExchangeRecord
from gateway.pipeline.stages.review import route_to_review
from gateway.records.recorder import ExchangeRecorder
from gateway.records.status import Status

log = logging.getLogger("gateway.record")


def outcome_of(exc: GatewayError) -> Status:
    if isinstance(exc, ClientGone):
        return Status.CLIENT_DISCONNECTED
    if isinstance(exc, UpstreamError | UpstreamPassthrough):
        return Status.UPSTREAM_ERROR
    if isinstance(exc, PolicyViolation):
        return Status.BLOCKED
    return Status.GATEWAY_ERROR if exc.status >= 500 else Status.REJECTED


def failed(record: ExchangeRecord, exc: GatewayError) -> None:
    record.fail(outcome_of(exc), exc.status, exc.code or exc.type, exc.recorded)
    if record.response_body is None:
        record.response_body = exc.body()


def finish(recorder: ExchangeRecorder, record: ExchangeRecord) -> None:
    """The exchange has ended: its hooks run, it is routed to review and handed to the
    recorder. A hook (or the review routing) that raises is logged and costs neither the
    other hooks nor the record."""
    record.ended_at = record.ended_at or now()
    hooks, record.on_finish = record.on_finish, []
    for hook in hooks:
        try:
            hook(record)
        except Exception:
            log.exception("exchange %s: its finishing hook %r failed", record.id, hook)
    try:
        route_to_review(record, recorder.rng)
    except Exception:
        record.reviews = []
        log.exception("exchange %s could not be routed to review", record.id)
    recorder.submit(record)
