"""OTLP for real: a gateway configured only by the standard OTEL_* variables sends its spans
over OTLP/HTTP (protobuf) to a receiver on loopback, which parses them with
opentelemetry-proto's ExportTraceServiceRequest."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.telemetry.serving import (
    database_file,
    gateway_config,
    scripted_upstream,
    threaded,
    trace_id_of,
    traced_gateway,
)


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: what each export carried, by path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(
        self, trace_id: str, count: int, timeout: float = 10.0
    ) -> list[tuple[dict[str, str], Span]]:
        """The trace's spans with their resource's attributes, once ``count`` arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                (_resource(r), span)
                for _, request in list(self.requests)
                for r in request.resource_spans
                for scope in r.scope_spans
                for span in scope.spans
                if span.trace_id.hex() == trace_id
            ]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} spans arrived")
            time.sleep(0.02)


def _resource(spans: object) -> dict[str, str]:
    attributes = spans.resource.attributes  # type: ignore[attr-defined]
    return {a.key: a.value.string_value for a in attributes}


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append((self.path, request))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    with threaded(server):
        yield server


def test_spans_reach_an_otlp_receiver_named_by_the_environment(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")  # the config says none
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "situate-eu-1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    with scripted_upstream(tmp_path) as upstream:
        config = gateway_config(tmp_path, upstream)
        assert config.telemetry.exporter == "none"
        with traced_gateway(config) as (url, keys):
            sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=keys["test-context"], max_retries=0)
            with sdk:
                raw = sdk.chat.completions.with_raw_response.create(
                    model="test-small",
                    messages=[{"role": "user", "content": "What is the capital of France?"}],
                )
            trace_id = trace_id_of(database_file(config), raw.headers["x-request-id"])
            assert trace_id is not None
            spans = receiver.spans(trace_id, 3)  # the record's trace, over OTLP
    assert {path for path, _ in receiver.requests} == {"/v1/traces"}
    names = {span.name: (resource, span) for resource, span in spans}
    assert set(names) == {"POST /v1/chat/completions", "policy test-context", "chat mock-small"}
    resource, server = names["POST /v1/chat/completions"]
    assert resource["service.name"] == "situate-eu-1"
    assert server.kind == Span.SpanKind.SPAN_KIND_SERVER
    _, attempt = names["chat mock-small"]
    assert attempt.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert attempt.parent_span_id == server.span_id
    attributes = {a.key: a.value for a in attempt.attributes}
    assert attributes["gen_ai.operation.name"].string_value == "chat"
    assert attributes["gen_ai.usage.output_tokens"].int_value > 0
