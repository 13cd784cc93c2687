"""Loading the gateway's config: a good file as written, the environment's overrides, and each
kind of bad value refused with an error that names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import (
    DEFAULT_REQUEST_ID_HEADER,
    ConfigError,
    load_config,
)

GOOD: dict[str, Any] = {
    "database_url": "sqlite+aiosqlite:///./here.db",
    "max_body_bytes": 65536,
    "backends": {
        "vllm": {
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key_env": "VLLM_KEY",
            "timeouts": {"connect": 2, "first_byte": 1.5},
            "request_id_header": "X-Request-ID",
        },
        "demo": {"kind": "demo"},
    },
    "models": {
        "small": {"backend": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct"},
        "demo-small": {"backend": "demo", "model": "mock-small"},
    },
    "auth": {"cache_seconds": 0.5},
    "recording": {"batch_size": 10, "spill_dir": "spill"},
}


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI's own GATEWAY_* variables must not leak into what a file says."""
    for name in ("GATEWAY_CONFIG", "GATEWAY_DATABASE_URL", "GATEWAY_DETECTOR_WORKERS"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, config: Any, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """GOOD with one value set (the path's last part added or replaced)."""
    config: dict[str, Any] = yaml.safe_load(yaml.safe_dump(GOOD))
    target = config
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    return config


def refused(tmp_path: Path, config: Any) -> str:
    path = write(tmp_path, config)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_a_good_file_is_read_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_KEY", "sk-upstream")
    config = load_config(write(tmp_path, GOOD))
    assert config.database_url == "sqlite+aiosqlite:///./here.db"
    assert config.max_body_bytes == 65536
    vllm = config.backends["vllm"]
    assert vllm.kind == "openai" and vllm.base_url == "http://127.0.0.1:8000/v1"
    assert (vllm.timeouts.connect, vllm.timeouts.first_byte) == (2, 1.5)
    assert vllm.timeouts.response == 300.0  # what the file leaves out keeps its default
    assert vllm.api_key() == "sk-upstream"
    assert vllm.request_id_header == "X-Request-ID"
    assert config.backends["demo"].request_id_header == DEFAULT_REQUEST_ID_HEADER
    assert config.models["small"].model == "Qwen/Qwen2.5-7B-Instruct"
    assert config.auth.cache_seconds == 0.5
    assert config.recording.spill_dir == Path("spill")


def test_a_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match="frozen"):
        config.max_body_bytes = 1  # type: ignore[misc]


def test_no_file_is_the_embedded_demo(tmp_path: Path) -> None:
    config = load_config()
    assert {b.kind for b in config.backends.values()} == {"demo"}
    assert sorted(config.models) == ["demo-large", "demo-small"]


def test_the_file_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(write(tmp_path, GOOD)))
    assert "small" in load_config().models


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql+asyncpg://db/situate")
    monkeypatch.setenv("GATEWAY_DETECTOR_WORKERS", "3")
    config = load_config(write(tmp_path, GOOD))
    assert config.database_url == "postgresql+asyncpg://db/situate"
    assert config.detectors.workers == 3
    assert config.detectors.queue == 64  # the rest of the section stays


def test_a_bad_environment_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DETECTOR_WORKERS", "0")
    with pytest.raises(ValueError, match="detector_workers"):
        load_config(write(tmp_path, GOOD))


@pytest.mark.parametrize(
    ("value", "header"), [("off", None), (False, None), ("X-Trace", "X-Trace")]
)
def test_the_request_id_header_may_be_turned_off(
    tmp_path: Path, value: Any, header: str | None
) -> None:
    config = load_config(write(tmp_path, changed(("backends", "vllm", "request_id_header"), value)))
    assert config.backends["vllm"].request_id_header == header


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nowhere.yaml")


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    assert "not valid YAML" in refused(tmp_path, "backends: [unclosed\n")


@pytest.mark.parametrize("text", ["- a list\n", "just words\n", ""])
def test_a_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert "must be a mapping" in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("path", "value", "field", "why"),
    [
        (("colour",), "blue", "colour", "Extra inputs are not permitted"),
        (("backends", "vllm", "timeout"), 5, "backends.vllm.timeout", "Extra inputs"),
        (("backends", "vllm", "timeouts", "connect"), 0, "backends.vllm.timeouts.connect",
         "greater than 0"),
        (("backends", "vllm", "timeouts", "idle"), "soon", "backends.vllm.timeouts.idle",
         "valid number"),
        (("backends", "vllm", "kind"), "anthropic", "backends.vllm.kind", "'openai' or 'demo'"),
        (("max_body_bytes",), 10, "max_body_bytes", "greater than or equal to 1024"),
        (("auth", "cache_seconds"), -1, "auth.cache_seconds", "greater than or equal to 0"),
        (("recording", "batch_size"), 0, "recording.batch_size", "greater than or equal to 1"),
        (("upstream", "transport"), "curl", "upstream.transport", "'aiohttp' or 'httpx'"),
        (("models", "small", "model"), "", "models.small.model", "at least 1 character"),
        (("models", "small", "backend"), 5, "models.small.backend", "valid string"),
        (("models", "small", "backend"), None, "models.small", "an alias needs backend and model"),
        (("detectors", "workers"), 1000, "detectors.workers", "less than or equal to 256"),
        (("review_page", "session_hours"), 0, "review_page.session_hours", "greater than 0"),
        (("telemetry", "exporter"), "jaeger", "telemetry.exporter", "'none', 'console' or 'otlp'"),
    ],
)
def test_a_bad_value_names_its_field(
    tmp_path: Path, path: tuple[str, ...], value: Any, field: str, why: str
) -> None:
    message = refused(tmp_path, changed(path, value))
    assert f"{field}: " in message and why in message, message


def test_backends_and_models_are_required(tmp_path: Path) -> None:
    message = refused(tmp_path, {"database_url": "sqlite+aiosqlite:///x.db"})
    assert "backends: Field required" in message and "models: Field required" in message


def test_an_alias_naming_a_missing_backend(tmp_path: Path) -> None:
    message = refused(tmp_path, changed(("models", "big"), {"backend": "gone", "model": "m"}))
    assert "model alias 'big' names backend 'gone'; known: demo, vllm" in message


def test_an_openai_backend_needs_a_base_url(tmp_path: Path) -> None:
    config = changed(("backends", "bare"), {"kind": "openai"})
    assert "an 'openai' backend needs a base_url" in refused(tmp_path, config)


@pytest.mark.parametrize(
    ("header", "why"),
    [("Authorization", "a header the gateway sets itself"),
     ("content-length", "a header the gateway sets itself"),
     ("X Request", "is not an HTTP header name"),
     ("X-Id:", "is not an HTTP header name")],
)
def test_a_request_id_header_that_cannot_be_used(tmp_path: Path, header: str, why: str) -> None:
    message = refused(tmp_path, changed(("backends", "vllm", "request_id_header"), header))
    assert "backends.vllm.request_id_header" in message and why in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = changed(("max_body_bytes",), 1)
    config["auth"] = {"cache_seconds": -5}
    message = refused(tmp_path, config)
    assert "max_body_bytes" in message and "auth.cache_seconds" in message

