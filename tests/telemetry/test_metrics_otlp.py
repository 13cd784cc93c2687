"""Metrics over OTLP/HTTP: with ``telemetry.exporter: otlp`` (or ``OTEL_METRICS_EXPORTER``) the
periodic reader pushes to the endpoint the standard variables name, from its own thread; a
loopback receiver parses what came with opentelemetry-proto."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from gateway.clock import now
from gateway.config.observe import TelemetryConfig
from gateway.telemetry.metrics import Metrics, otlp_wanted


class _Bodies(BaseHTTPRequestHandler):
    """Keeps each POST's path and body (gunzipped) on its server; answers an empty 200."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.posted.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Bodies)
    server.posted = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _names(server: HTTPServer, timeout: float = 10.0) -> dict[str, set[str]]:
    """Each metric's name and its points' attribute keys, once an export has come."""
    deadline = time.monotonic() + timeout
    while not server.posted:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "no export came"
        time.sleep(0.02)
    found: dict[str, set[str]] = {}
    for path, body in list(server.posted):  # type: ignore[attr-defined]
        assert path == "/v1/metrics"
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points = metric.histogram.data_points or metric.sum.data_points
                    keys = {a.key for p in points for a in p.attributes}
                    found.setdefault(metric.name, set()).update(keys)
    return found


def test_metrics_reach_the_otlp_endpoint(
    collector: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_port}")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    config = TelemetryConfig(exporter="otlp", prometheus=False, metrics_interval_seconds=0.1)
    metrics = Metrics(config)
    assert metrics.active
    start = now()
    row = {
        "id": "req_1", "endpoint": "chat.completions", "context": "c", "http_status": 200,
        "status": "ok", "requested_model": "m", "backend": "b", "stream": False,
        "received_at": start, "ended_at": start + timedelta(seconds=0.3),
        "first_byte_at": None, "upstream_started_at": start, "prompt_tokens": 3,
        "completion_tokens": 5, "error_type": None, "attempts": [],
    }  # fmt: skip
    metrics.exchange(row, None)
    threads = {t.name for t in threading.enumerate()}
    assert "OtelPeriodicExportingMetricReader" in threads  # the export's own thread
    names = _names(collector)
    metrics.shutdown()
    assert {"gen_ai.operation.name", "gen_ai.request.model"} <= names[
        "gen_ai.client.operation.duration"
    ]
    assert "gen_ai.token.type" in names["gen_ai.client.token.usage"]
    assert "gateway.context" in names["gateway.requests"]


def test_which_exporter_pushes_metrics() -> None:
    otlp, none = TelemetryConfig(exporter="otlp"), TelemetryConfig()
    assert otlp_wanted(otlp, {}) and not otlp_wanted(none, {})
    assert otlp_wanted(none, {"OTEL_METRICS_EXPORTER": "console, otlp"})
    assert not otlp_wanted(otlp, {"OTEL_METRICS_EXPORTER": "none"})
    assert otlp_wanted(otlp, {"OTEL_METRICS_EXPORTER": " "})  # blank: the file decides
    quiet = Metrics(TelemetryConfig(prometheus=False), env={})
    assert not quiet.active  # no reader: the gauges are not refreshed
    quiet.shutdown()
