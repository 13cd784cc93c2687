"""The app's shutdown flushes its tracer and meter providers (a last export, perhaps over the
network) on a thread, never on the event loop that is still closing the other resources."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from gateway.app import create_app
from tests.servers import Upstream
from tests.telemetry.metrics_app import environment, metered_config


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SpanExporterSeen(InMemorySpanExporter):
    def __init__(self) -> None:
        super().__init__()
        self.shut_on_loop: list[bool] = []

    def shutdown(self) -> None:
        self.shut_on_loop.append(_on_loop())
        super().shutdown()


class MetricReaderSeen(InMemoryMetricReader):
    def __init__(self) -> None:
        super().__init__()
        self.shut_on_loop: list[bool] = []

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.shut_on_loop.append(_on_loop())
        super().shutdown(timeout_millis=timeout_millis, **kwargs)


def test_the_providers_shut_down_off_the_event_loop(upstream: Upstream, tmp_path: Path) -> None:
    exporter, reader = SpanExporterSeen(), MetricReaderSeen()
    with environment():
        app = create_app(metered_config(tmp_path, upstream), span_exporter=exporter,
                         metric_readers=[reader])
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
    assert exporter.shut_on_loop == [False]
    assert reader.shut_on_loop == [False]
