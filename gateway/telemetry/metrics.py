"""OpenTelemetry metrics: the GenAI client instruments and the gateway's own.

One ``MeterProvider`` per app (never the global one: tests run several apps in a process), with
up to two readers:

- ``telemetry.prometheus``: a ``PrometheusMetricReader`` on a ``CollectorRegistry`` of this
  app's own (not prometheus_client's global ``REGISTRY``), which ``GET /metrics`` renders;
- ``telemetry.exporter: otlp`` (or ``OTEL_METRICS_EXPORTER=otlp``, which wins): a
  ``PeriodicExportingMetricReader`` with the OTLP/HTTP exporter, configured by the standard
  ``OTEL_EXPORTER_OTLP_*`` variables; it exports on its own thread, never the event loop.

Counters and histograms are recorded from each exchange's record (``exchange``), in the
recorder's writer task, off the request path. The gauges (``gateway.telemetry.gauges``) read
values a periodic task keeps fresh. Labels are low-cardinality: never a request id or key id,
nor a string the caller chose (``/metrics`` is open): the model is the configured alias the
router took, ``_other`` for a model it did not know or the policy refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from prometheus_client import CollectorRegistry

from gateway.config.observe import TelemetryConfig
from gateway.policy.actions import Enforced
from gateway.policy.decision import Decision
from gateway.telemetry.tracing import resource
from gateway.version import __version__

#: the GenAI conventions' advisory buckets (seconds; tokens)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip

OPERATION = {
    "chat.completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}
_ERRORS = ("upstream_error", "gateway_error")
#: the model label of a call whose model was not an alias the router took
OTHER_MODEL = "_other"
#: the error of a model the router does not know or the caller's policy does not allow
MODEL_REFUSED = "model_not_found"

Gauge = Callable[[], Iterable[tuple[float, Mapping[str, str]]]]


def otlp_wanted(config: TelemetryConfig, env: Mapping[str, str]) -> bool:
    """Whether metrics go over OTLP: ``OTEL_METRICS_EXPORTER`` when set, else the config."""
    chosen = env.get("OTEL_METRICS_EXPORTER")
    if chosen is not None and chosen.strip():
        return "otlp" in {part.strip() for part in chosen.split(",")}
    return config.exporter == "otlp"


def _otlp_reader(config: TelemetryConfig) -> MetricReader:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(
        OTLPMetricExporter(), export_interval_millis=config.metrics_interval_seconds * 1000
    )


class Metrics:
    def __init__(
        self,
        config: TelemetryConfig,
        readers: Sequence[MetricReader] = (),
        env: Mapping[str, str] | None = None,
        *,
        aliases: Collection[str] = (),
    ) -> None:
        environ = os.environ if env is None else env
        #: the configured model aliases: the only models a label names
        self._aliases = frozenset(aliases)
        #: this app's own registry, which ``GET /metrics`` renders
        self.registry = CollectorRegistry(auto_describe=True)
        chosen = list(readers)
        if config.prometheus:
            chosen.append(PrometheusMetricReader(registry=self.registry))
        if otlp_wanted(config, environ):
            chosen.append(_otlp_reader(config))
        #: whether anything reads these metrics (no reader: the gauges are not refreshed)
        self.active = bool(chosen)
        #: the end of the last exchange the recorder's writer took up (unix seconds)
        self.last_taken_end: float | None = None
        self._provider = MeterProvider(
            metric_readers=chosen,
            resource=resource(),  # the traces' own: OTEL_SERVICE_NAME and the rest win
            shutdown_on_exit=False,
        )
        self._meter = self._provider.get_meter("situate.gateway", __version__)
        self._instruments()

    def _instruments(self) -> None:
        meter = self._meter
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="A model call's duration, from its arrival at the gateway to its end",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per call, as the backend reported them",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="A stream's time from the upstream call to its first chunk",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._requests = meter.create_counter(
            "gateway.requests", unit="{request}", description="Exchanges, as recorded"
        )
        self._rule_hits = meter.create_counter(
            "gateway.rule.hits", unit="{hit}", description="Rules that fired, enforced or shadow"
        )
        self._limited = meter.create_counter(
            "gateway.limit.rejections", unit="{request}", description="Requests a limit refused"
        )
        self._attempts = meter.create_counter(
            "gateway.upstream.attempts", unit="{attempt}", description="Calls to backends"
        )

    def gauge(self, name: str, unit: str, description: str, read: Gauge) -> None:
        """An observable gauge whose callback calls ``read`` (in memory: never the database)."""
        self._meter.create_observable_gauge(name, [_callback(read)], unit, description)

    def counter(self, name: str, unit: str, description: str, read: Gauge) -> None:
        """An observable (monotonic) counter read the same way."""
        self._meter.create_observable_counter(name, [_callback(read)], unit, description)

    def exchange(self, row: Mapping[str, Any], decision: Decision | None) -> None:
        """One exchange's counts, from its record's row and the decision behind it."""
        context = row.get("context") or ""
        ended = row.get("ended_at")
        if isinstance(ended, datetime):
            self.last_taken_end = ended.timestamp()
        action = str(decision.enforced) if decision is not None else "none"
        self._requests.add(
            1,
            {
                "gateway.context": context,
                "gateway.endpoint": row["endpoint"],
                "http.response.status_code": int(row["http_status"]),
                "gateway.policy.action": action,
            },
        )
        if decision is not None:
            self._outcomes(context, decision)
        for attempt in row.get("attempts") or ():
            self._attempts.add(
                1,
                {
                    "gateway.backend": str(attempt.get("backend")),
                    "gateway.upstream.outcome": str(attempt.get("outcome")),
                },
            )
        self._model_call(row)

    def _outcomes(self, context: str, decision: Decision) -> None:
        for outcome in decision.fired:
            if outcome.detector == "limit":
                if outcome.enforced == "block":
                    limit = {"gateway.context": context, "gateway.limit": outcome.rule}
                    self._limited.add(1, limit)
                continue
            self._rule_hits.add(
                1,
                {
                    "gateway.context": context,
                    "gateway.rule": outcome.rule,
                    "gateway.rule.mode": "shadow" if outcome.shadow else "enforced",
                    "gateway.rule.action": outcome.action,
                    "gateway.rule.enforced": str(outcome.enforced or Enforced.NONE),
                },
            )

    def _model_call(self, row: Mapping[str, Any]) -> None:
        """The GenAI client instruments, for an exchange that named a model."""
        if not row.get("requested_model"):
            return
        labels: dict[str, str] = {
            "gen_ai.operation.name": OPERATION.get(row["endpoint"], row["endpoint"]),
            "gen_ai.provider.name": row["backend"] or "unknown",
            "gen_ai.request.model": self._model(row),
        }
        if row["http_status"] >= 400 or row["status"] in _ERRORS:
            labels["error.type"] = row["error_type"] or str(row["http_status"])
        received, ended = row.get("received_at"), row.get("ended_at")
        if isinstance(received, datetime) and isinstance(ended, datetime):
            self._duration.record(max(0.0, (ended - received).total_seconds()), labels)
        first, started = row["first_byte_at"], row["upstream_started_at"]
        if row["stream"] and first is not None and started is not None:
            self._first_chunk.record(max(0.0, (first - started).total_seconds()), labels)
        for kind, column in (("input", "prompt_tokens"), ("output", "completion_tokens")):
            if row[column] is not None:
                self._tokens.record(row[column], {**labels, "gen_ai.token.type": kind})

    def _model(self, row: Mapping[str, Any]) -> str:
        """The alias asked for when it is one the router knows and the policy did not refuse
        (``model_not_found``, the refusal of both), else ``_other``."""
        model = row["requested_model"]
        if model not in self._aliases or row["error_type"] == MODEL_REFUSED:
            return OTHER_MODEL
        return str(model)

    def shutdown(self) -> None:
        """Flush the OTLP reader (a last export) and unregister from this app's registry."""
        self._provider.shutdown()


def _callback(read: Gauge) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for value, labels in read()]

    return observe
