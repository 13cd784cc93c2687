"""The app's own tracer provider: where spans go, as the operator's ``OTEL_*`` variables and
``telemetry.exporter`` say.

No global provider is set (several apps may run in one process, the tests do): each app owns
its ``Tracing``, built in its lifespan and shut down there, after the recorder's last write.
Spans are handed to a ``BatchSpanProcessor``: ending a span only queues it, and the SDK's own
thread exports (OTLP over HTTP, the console), so no export ever runs on the event loop. The
SDK reads the rest of its settings from the environment as usual: ``OTEL_EXPORTER_OTLP_*``
(endpoint, headers, timeout, compression), ``OTEL_BSP_*`` (the batches), ``OTEL_TRACES_SAMPLER``
and ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (which win over the defaults here).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext, Tracer

from gateway.config.observe import TelemetryConfig
from gateway.version import __version__

SERVICE_NAME = "situate-gateway"
TRACER_NAME = "situate.gateway"


class Tracing:
    """A tracer provider with a batch processor in front of each exporter."""

    def __init__(self, exporters: Sequence[SpanExporter], *, content: bool = False) -> None:
        self.provider = TracerProvider(resource=resource())
        for exporter in exporters:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer(TRACER_NAME, __version__)
        #: prompt and answer text on the attempt spans (``telemetry.content``)
        self.content = content

    def force_flush(self, timeout_millis: int = 5000) -> bool:
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.provider.shutdown()


def resource() -> Resource:
    """The gateway's name and version, under what ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` say (``Resource.create`` alone would let ours win)."""
    ours = Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
    return ours.merge(OTELResourceDetector().detect())


def exporters(config: TelemetryConfig) -> list[str]:
    """The span exporters asked for: ``OTEL_TRACES_EXPORTER`` (a comma list) over
    ``telemetry.exporter``; none at all when ``OTEL_SDK_DISABLED`` is true."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or config.exporter
    chosen = [n.strip() for n in named.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(chosen) - {"otlp", "console"})
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}: the gateway ships otlp and "
            "console (or none)"
        )
    return chosen


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when chosen: it loads requests and protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_* as the SDK reads


@asynccontextmanager
async def tracing_for(
    config: TelemetryConfig, exporter: SpanExporter | None = None
) -> AsyncIterator[Tracing | None]:
    """The app's tracing (None: off), shut down on leaving: its queue exported on a thread,
    not the event loop. ``exporter`` is the tests' hook: it replaces whatever the config and
    environment say."""
    chosen = [exporter] if exporter is not None else [_exporter(n) for n in exporters(config)]
    if not chosen:
        yield None
        return
    tracing = Tracing(chosen, content=config.content)
    try:
        yield tracing
    finally:
        await asyncio.to_thread(tracing.shutdown)


def current_span_context() -> SpanContext | None:
    """The span the request runs in (the server span the middleware started), if any."""
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None
