"""What the request path needs from the app: the app's state provides it (``Services``), and
the pipeline knows it only by this shape, so it never imports the layer above it."""

from __future__ import annotations

from typing import Protocol

from gateway.auth.authenticator import Authenticator
from gateway.config import GatewayConfig
from gateway.detectors.pool import DetectorPool
from gateway.policy.store import PolicyStore
from gateway.quota.limiter import Limiter
from gateway.records.recorder import ExchangeRecorder
from gateway.supervise import Shutdown
from gateway.upstream.client import UpstreamClient
from gateway.upstream.router import ModelRouter


class PipelineNeeds(Protocol):
    @property
    def config(self) -> GatewayConfig: ...

    @property
    def authenticator(self) -> Authenticator: ...

    @property
    def policies(self) -> PolicyStore: ...

    @property
    def router(self) -> ModelRouter: ...

    @property
    def upstream(self) -> UpstreamClient: ...

    @property
    def recorder(self) -> ExchangeRecorder: ...

    @property
    def detectors(self) -> DetectorPool: ...

    @property
    def quota(self) -> Limiter: ...

    @property
    def shutdown(self) -> Shutdown: ...
