"""Model aliases → (backend, the backend's model id)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import BackendConfig, GatewayConfig
from gateway.errors import NotFound


@dataclass(frozen=True, slots=True)
class Route:
    alias: str
    backend_name: str
    backend: BackendConfig
    base_url: str
    upstream_model: str
    api_key: str | None


class ModelRouter:
    def __init__(self, config: GatewayConfig, base_urls: dict[str, str]) -> None:
        self._routes: dict[str, Route] = {}
        for alias, entry in config.models.items():
            target = entry.targets()[0]
            backend = config.backends[target.backend]
            self._routes[alias] = Route(
                alias=alias,
                backend_name=target.backend,
                backend=backend,
                base_url=base_urls[target.backend].rstrip("/"),
                upstream_model=target.model,
                api_key=backend.api_key(),
            )

    @property
    def aliases(self) -> list[str]:
        return sorted(self._routes)

    def resolve(self, alias: str) -> Route:
        route = self._routes.get(alias)
        if route is None:
            raise NotFound(
                f"The model '{alias}' does not exist or you do not have access to it. "
                f"Models available: {', '.join(self.aliases) or 'none'}.",
                code="model_not_found",
                param="model",
            )
        return route

    def secrets(self) -> list[str]:
        """Upstream API keys, so they can be scrubbed from anything passed back."""
        return [route.api_key for route in self._routes.values() if route.api_key]
