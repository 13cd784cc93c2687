"""The route stage: a model alias (after any route a rule chose) to the plan of what to try:
its backends, in their order, then the fallback aliases the caller's policy allows."""

from __future__ import annotations

from collections.abc import Collection

from gateway.pipeline.context import ExchangeRecord
from gateway.upstream.router import ModelRouter, RoutePlan


def route(
    router: ModelRouter,
    record: ExchangeRecord,
    alias: str,
    allowed: Collection[str],
) -> RoutePlan:
    """``allowed``: the aliases the caller's policy allows (a fallback outside it is never
    tried)."""
    record.requested_model = record.requested_model or alias
    plan = router.plan(alias, allowed)
    record.backend, record.upstream_model = plan.first.backend_name, plan.first.upstream_model
    return plan


def served(record: ExchangeRecord, plan: RoutePlan) -> None:
    """After the tries: the record names the backend that answered (or failed last), and the
    fallback alias when one served."""
    tried = [a for a in record.attempts if a["outcome"] != "ejected_skip"]
    if not tried:
        return
    last = tried[-1]
    record.backend, record.upstream_model = last["backend"], last["model"]
    if last["outcome"] == "ok" and last["alias"] != plan.alias:
        record.served_alias = last["alias"]
