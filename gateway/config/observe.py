"""The accountability and observability sections: the audit chain, telemetry, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.config.base import Strict as _Strict

#: a chain id: what names one replica's hash chain (and its checkpoints' origin line)
CHAIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class AuditConfig(_Strict):
    """The tamper-evident record: every exchange and every event that changes what the gateway
    does is appended to a hash chain, whose Merkle root is signed every so often
    (docs/audit.md)."""

    enabled: bool = Field(True, description="append records and events to the hash chain")
    chain_id: str = Field(
        "main",
        pattern=CHAIN_ID_PATTERN,
        description="this replica's chain: each replica keeps its own (env GATEWAY_AUDIT_CHAIN_ID)",
    )
    keys_dir: Path = Field(
        Path("data/audit"),
        description="where hmac.key and signing.key are read, and made on the first start when "
        "missing (mode 0600); mount the operator's own keys here in production",
    )
    origin: str = Field(
        "situate.local/audit",
        min_length=1,
        description="the checkpoints' origin line starts with this; the chain id follows it",
    )
    key_name: str = Field(
        "situate",
        pattern=r"^[^\s+]+$",
        description="the signer's name in each checkpoint's signature line",
    )
    checkpoint_dir: Path = Field(
        Path("data/checkpoints"),
        description="where signed checkpoints are written: outside keys_dir, so a read-only "
        "mount of the keys leaves it writable and a copy of the checkpoints carries no secret",
    )
    checkpoint_every: int = Field(1000, ge=1, description="records between two checkpoints")
    checkpoint_seconds: float = Field(
        60.0, gt=0, description="the longest time a new record waits for a checkpoint"
    )
    purge_seconds: float = Field(
        3600.0,
        gt=0,
        description="how often the gateway erases content past each context's retention_days",
    )


class TelemetryConfig(_Strict):
    """Traces and metrics. The standard ``OTEL_*`` variables configure the OTLP exporters
    (``OTEL_EXPORTER_OTLP_ENDPOINT``…); ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_METRICS_EXPORTER`` win over ``exporter`` here, ``OTEL_SDK_DISABLED=true`` over
    everything."""

    exporter: Literal["none", "console", "otlp"] = Field(
        "none",
        description="where spans (and, with otlp, metrics) go: a server span per request, a "
        "child per upstream attempt, one for the policy's evaluation",
    )
    prometheus: bool = Field(True, description="serve metrics at /metrics (Prometheus format)")
    metrics_interval_seconds: float = Field(
        30.0, gt=0, description="how often metrics are pushed over OTLP"
    )
    gauges_seconds: float = Field(
        15.0,
        gt=0,
        description="how often the gauges that read the database (review backlog, audit "
        "chain, checkpoints) and the spool's size are read again",
    )
    content: bool = Field(
        False, description="put prompt and answer text on spans (the GenAI opt-in); off: never"
    )


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = Field(
        "json", description="json: one object per line, for a log collector"
    )
    access: bool = Field(True, description="one access line per request")
