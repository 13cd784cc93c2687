"""The route stage: a model alias (after any route a rule chose) to a backend and its model."""

from __future__ import annotations

from gateway.pipeline.context import ExchangeRecord
from gateway.upstream.router import ModelRouter, Route


def route(router: ModelRouter, record: ExchangeRecord, alias: str) -> Route:
    record.requested_model = record.requested_model or alias
    found = router.resolve(alias)
    record.backend, record.upstream_model = found.backend_name, found.upstream_model
    return found
