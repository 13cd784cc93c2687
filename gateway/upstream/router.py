"""Model aliases → the backends that serve them, in the order one request tries them.

An alias names one backend or several (``ModelAlias.backends``): ``priority`` tries them in the
order given, ``weighted`` in a random order drawn by weight (so the first try spreads by
weight, and a retry goes to another backend). When all of them failed, the alias's
``fallback`` aliases are tried, each in its own order, as far as the caller's policy allows
them. The router also holds what the attempts share: each backend's health and the budget of
retries (``gateway.upstream.attempts`` runs a plan).
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field

from gateway.config import BackendConfig, GatewayConfig, ModelAlias, RetryConfig
from gateway.errors import NotFound
from gateway.upstream.health import HealthBoard
from gateway.upstream.retry import RetryBudget


@dataclass(frozen=True, slots=True)
class Route:
    alias: str
    backend_name: str
    backend: BackendConfig
    base_url: str
    upstream_model: str
    api_key: str | None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Stage:
    """One alias of a plan and its routes, in the order to try them."""

    alias: str
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """What one request may try: its alias first, then the fallbacks its policy allows."""

    stages: tuple[Stage, ...]
    retry: RetryConfig
    health: HealthBoard
    budget: RetryBudget
    rng: random.Random = field(compare=False)

    @property
    def first(self) -> Route:
        return self.stages[0].routes[0]

    @property
    def alias(self) -> str:
        return self.stages[0].alias


@dataclass(frozen=True, slots=True)
class _Alias:
    routes: tuple[Route, ...]
    strategy: str
    fallback: tuple[str, ...]


class ModelRouter:
    def __init__(
        self, config: GatewayConfig, base_urls: dict[str, str], rng: random.Random | None = None
    ) -> None:
        self._aliases = {
            alias: _alias(alias, entry, config, base_urls) for alias, entry in config.models.items()
        }
        self.retry = config.upstream.retry
        self.health = HealthBoard(config.upstream.health, config.backends)
        self.budget = RetryBudget(config.upstream.retry)
        self._rng = rng or random.Random()  # noqa: S311 (load spreading, not secrets)

    @property
    def aliases(self) -> list[str]:
        return sorted(self._aliases)

    def backends_of(self, alias: str) -> list[str]:
        return [route.backend_name for route in self._aliases[alias].routes]

    def fallbacks_of(self, alias: str) -> list[str]:
        return list(self._aliases[alias].fallback)

    def resolve(self, alias: str) -> Route:
        """The alias's first backend (a plan's first try, before health and weights)."""
        return self._entry(alias).routes[0]

    def plan(self, alias: str, allowed: Collection[str] | None = None) -> RoutePlan:
        """What to try for ``alias``: its backends, then each fallback alias in ``allowed``
        (None: any), each alias once."""
        entry = self._entry(alias)
        stages = [Stage(alias, self._ordered(entry))]
        for other in entry.fallback:
            if (allowed is None or other in allowed) and other not in (s.alias for s in stages):
                stages.append(Stage(other, self._ordered(self._aliases[other])))
        return RoutePlan(tuple(stages), self.retry, self.health, self.budget, self._rng)

    def _entry(self, alias: str) -> _Alias:
        entry = self._aliases.get(alias)
        if entry is None:
            raise NotFound(
                f"The model '{alias}' does not exist or you do not have access to it. "
                f"Models available: {', '.join(self.aliases) or 'none'}.",
                code="model_not_found",
                param="model",
            )
        return entry

    def _ordered(self, entry: _Alias) -> tuple[Route, ...]:
        if entry.strategy != "weighted" or len(entry.routes) < 2:
            return entry.routes
        # A weighted draw without replacement (Efraimidis-Spirakis): key u^(1/w), largest first.
        keyed = [(self._rng.random() ** (1.0 / r.weight), i) for i, r in enumerate(entry.routes)]
        return tuple(entry.routes[i] for _, i in sorted(keyed, reverse=True))

    def secrets(self) -> list[str]:
        """Upstream API keys, so they can be scrubbed from anything passed back."""
        return sorted(
            {r.api_key for entry in self._aliases.values() for r in entry.routes if r.api_key}
        )


def _alias(
    alias: str, entry: ModelAlias, config: GatewayConfig, base_urls: dict[str, str]
) -> _Alias:
    routes = []
    for target in entry.targets():
        backend = config.backends[target.backend]
        routes.append(
            Route(
                alias=alias,
                backend_name=target.backend,
                backend=backend,
                base_url=base_urls[target.backend].rstrip("/"),
                upstream_model=target.model,
                api_key=backend.api_key(),
                weight=target.weight,
            )
        )
    return _Alias(tuple(routes), entry.strategy, tuple(entry.fallback))
