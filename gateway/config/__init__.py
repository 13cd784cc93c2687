"""The gateway's configuration: environment settings and the YAML config file.

The environment (``GATEWAY_*``) says where the config file is and may override the database
URL and the admin token; the file says which backends exist and which model aliases clients
may call. Everything is validated strictly: an unknown key is an error, reported with the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.config.base import Strict as _Strict
from gateway.config.observe import CHAIN_ID_PATTERN, AuditConfig, LoggingConfig, TelemetryConfig
from gateway.config.sections import (
    AuthConfig,
    DetectorsConfig,
    RecordingConfig,
    ReviewConfig,
    ReviewPageConfig,
    ServerConfig,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/situate.db"
DEMO_BACKEND = "demo"
# The gateway's own name for the id it forwards: no server gives it a meaning, so none rejects
# it (llama-cpp-python's server refuses any X-Request-ID that is not a UUID).
DEFAULT_REQUEST_ID_HEADER = "X-Situate-Request-Id"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the gateway sets itself, or that frame the request: never the id's header.
_RESERVED_HEADERS = frozenset(
    {"authorization", "content-type", "content-length", "host", "transfer-encoding", "connection"}
)


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid; the message says where and why."""




class Timeouts(_Strict):
    """Upstream timeouts in seconds. Streams get a first-byte and an idle timeout, never a total."""

    connect: float = Field(5.0, gt=0)
    response: float = Field(300.0, gt=0, description="non-streaming: the wait for the answer")
    first_byte: float = Field(60.0, gt=0, description="streaming: the wait for the first chunk")
    idle: float = Field(60.0, gt=0, description="streaming: the longest gap between chunks")
    write: float = Field(30.0, gt=0)
    pool: float = Field(10.0, gt=0)


class BackendConfig(_Strict):
    """An OpenAI-compatible upstream. ``kind: demo`` is the built-in scripted backend."""

    kind: Literal["openai", "demo"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="env var holding the upstream API key")
    timeouts: Timeouts = Timeouts()
    stream_usage: bool = Field(True, description="ask for usage on every stream")
    responses: Literal["native", "translate"] = Field(
        "translate",
        description="native: the backend serves POST /v1/responses itself (OpenAI, vLLM, recent"
        " Ollama) and Responses requests are passed through; translate: it speaks only chat"
        " completions and the gateway translates (docs/api.md says which fields each path takes)",
    )
    request_id_header: str | None = Field(
        DEFAULT_REQUEST_ID_HEADER,
        description="the header that carries the gateway's request id upstream; off: none",
    )

    @field_validator("request_id_header", mode="before")
    @classmethod
    def _header_or_off(cls, value: object) -> object:
        # YAML reads a bare `off` (or `false`) as False: both mean "send no id".
        if value is False or (isinstance(value, str) and value.lower() == "off"):
            return None
        if value is None or not isinstance(value, str):
            return value
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an HTTP header name")
        if value.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{value!r} is a header the gateway sets itself")
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an 'openai' backend needs a base_url")
        return self

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class AliasTarget(_Strict):
    """One backend an alias can be served by, and that backend's own model id."""

    backend: str
    model: str = Field(min_length=1, description="the backend's own model id")
    weight: float = Field(1.0, gt=0, description="its share of traffic under `weighted`")


class ModelAlias(_Strict):
    """A name clients call. One backend (``backend`` and ``model``), or several (``backends``)
    tried in ``strategy`` order; when all fail, the ``fallback`` aliases (only those the
    caller's policy allows), each recorded as such."""

    backend: str | None = None
    model: str | None = Field(None, min_length=1, description="the backend's own model id")
    backends: list[AliasTarget] = Field(default_factory=list)
    strategy: Literal["priority", "weighted"] = Field(
        "priority", description="priority: in the order given; weighted: by weight, at random"
    )
    fallback: list[str] = Field(
        default_factory=list, description="other aliases to try when every backend failed"
    )

    @model_validator(mode="after")
    def _one_form(self) -> ModelAlias:
        single = self.backend is not None or self.model is not None
        if single and self.backends:
            raise ValueError("give either backend and model, or backends, not both")
        if not self.backends and (self.backend is None or self.model is None):
            raise ValueError("an alias needs backend and model, or a list of backends")
        return self

    def targets(self) -> list[AliasTarget]:
        """Every backend of the alias, in the order given."""
        if self.backends:
            return list(self.backends)
        assert self.backend is not None  # _one_form
        assert self.model is not None
        return [AliasTarget(backend=self.backend, model=self.model)]


class Price(_Strict):
    """What an alias costs, in the operator's currency, per million tokens."""

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)


class PricingConfig(_Strict):
    currency: str = Field("USD", min_length=1, max_length=8)
    models: dict[str, Price] = Field(default_factory=dict, description="alias -> its price")


class DatabaseConfig(_Strict):
    """The connection pool of a PostgreSQL database (SQLite has one file and no pool)."""

    pool_size: int = Field(10, ge=1, le=1000, description="connections kept open")
    max_overflow: int = Field(
        10, ge=0, le=1000, description="connections opened beyond pool_size under load"
    )
    connect_timeout: float = Field(5.0, gt=0, description="seconds to open a connection")
    statement_timeout: float = Field(
        5.0, gt=0, description="seconds one statement may run (the recorder's batches too)"
    )


class RetryConfig(_Strict):
    """Retries before the first byte reached the client, never after."""

    attempts: int = Field(
        3, ge=1, le=10, description="tries per alias (at least one a backend), the first included"
    )
    backoff_base: float = Field(0.1, ge=0, description="seconds; doubled each try, full jitter")
    backoff_max: float = Field(2.0, ge=0)
    max_retry_after: float = Field(
        10.0, ge=0, description="a backend's Retry-After up to this is honoured; longer: no retry"
    )
    budget_ratio: float = Field(
        0.2, ge=0, le=1, description="retries in flight, as a share of active requests"
    )
    budget_min: int = Field(3, ge=0, description="retries always allowed in flight")


class HealthConfig(_Strict):
    """Passive health: a backend that keeps failing is ejected, for longer each time."""

    failures: int = Field(5, ge=1, description="consecutive failures that eject a backend")
    ejection_seconds: float = Field(5.0, gt=0, description="the first ejection; doubled after")
    max_ejection_seconds: float = Field(300.0, gt=0)


class UpstreamConfig(_Strict):
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    max_connections: int = Field(512, ge=1)
    keepalive_seconds: float = Field(
        4.0,
        gt=0,
        description="how long an idle pooled connection is reused: keep it below the "
        "backends' own keep-alive (uvicorn's default is 5 s)",
    )
    retry: RetryConfig = RetryConfig()
    health: HealthConfig = HealthConfig()


class LimitsConfig(_Strict):
    """Where rate-limit and budget counters live."""

    redis_url: str | None = Field(
        None,
        description="counters every replica shares; unset: in this process. "
        "env GATEWAY_REDIS_URL",
    )
    on_unavailable: Literal["fail_closed", "local"] = Field(
        "local",
        description="while Redis is unreachable: refuse limited requests (503), or count in "
        "this process; either way recorded and counted",
    )
    timeout: float = Field(0.25, gt=0, description="seconds one Redis call may take")
    key_prefix: str = Field(
        "situate:limits",
        min_length=1,
        max_length=64,
        description="names of the counters in Redis (replicas that share limits share it)",
    )


class GatewayConfig(_Strict):
    database_url: str = DEFAULT_DATABASE_URL
    database: DatabaseConfig = DatabaseConfig()
    admin_token_env: str = "GATEWAY_ADMIN_TOKEN"  # noqa: S105 (a variable name, not a secret)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(
        100, ge=8, le=1000, description="how deeply a request body's JSON may nest"
    )
    policies_dir: Path = Field(
        Path("policies"),
        description="one YAML file per deployment context; while the folder is "
        "missing or holds none, the example policies shipped with the gateway are served",
    )
    policy_reload_seconds: float = Field(1.0, gt=0, description="how often files are re-read")
    exports_dir: Path = Field(Path("data/exports"), description="where API exports are written")
    backends: dict[str, BackendConfig]
    models: dict[str, ModelAlias]
    upstream: UpstreamConfig = UpstreamConfig()
    recording: RecordingConfig = RecordingConfig()
    limits: LimitsConfig = LimitsConfig()
    pricing: PricingConfig = PricingConfig()
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    review: ReviewConfig = ReviewConfig()
    review_page: ReviewPageConfig = ReviewPageConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    logging: LoggingConfig = LoggingConfig()
    audit: AuditConfig = AuditConfig()
    detectors: DetectorsConfig = DetectorsConfig()

    @model_validator(mode="after")
    def _aliases_name_backends(self) -> GatewayConfig:
        known = ", ".join(sorted(self.backends)) or "none"
        for alias, entry in self.models.items():
            for target in entry.targets():
                if target.backend not in self.backends:
                    raise ValueError(
                        f"model alias {alias!r} names backend {target.backend!r}; known: {known}"
                    )
            for other in entry.fallback:
                if other not in self.models or other == alias:
                    raise ValueError(f"model alias {alias!r} falls back to unknown {other!r}")
        for alias in self.pricing.models:
            if alias not in self.models:
                raise ValueError(f"pricing names model alias {alias!r}, which is not configured")
        return self

    def admin_token(self) -> SecretStr | None:
        value = os.environ.get(self.admin_token_env)
        return SecretStr(value) if value else None


class EnvSettings(BaseSettings):
    """What the environment says; it wins over the file."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    config: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    detector_workers: int | None = Field(None, ge=1, le=256)
    audit_chain_id: str | None = Field(None, pattern=CHAIN_ID_PATTERN)
    audit_keys_dir: Path | None = None


def default_config() -> GatewayConfig:
    """The embedded default: the built-in demo backend, no API key, no network."""
    return GatewayConfig(
        backends={DEMO_BACKEND: BackendConfig(kind="demo")},
        models={
            "demo-small": ModelAlias(backend=DEMO_BACKEND, model="mock-small"),
            "demo-large": ModelAlias(backend=DEMO_BACKEND, model="mock-large"),
        },
    )


def _read_file(path: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config file must be a mapping")
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def load_config(path: Path | None = None) -> GatewayConfig:
    """Read the config file (argument, else ``GATEWAY_CONFIG``), then apply env overrides."""
    env = EnvSettings()
    source = path or env.config
    config = _read_file(source) if source else default_config()
    if env.database_url:
        config = config.model_copy(update={"database_url": env.database_url})
    if env.redis_url:
        limits = config.limits.model_copy(update={"redis_url": env.redis_url})
        config = config.model_copy(update={"limits": limits})
    if env.detector_workers:
        detectors = config.detectors.model_copy(update={"workers": env.detector_workers})
        config = config.model_copy(update={"detectors": detectors})
    audit = {
        name: value
        for name, value in (("chain_id", env.audit_chain_id), ("keys_dir", env.audit_keys_dir))
        if value
    }
    if audit:
        config = config.model_copy(update={"audit": config.audit.model_copy(update=audit)})
    return config
