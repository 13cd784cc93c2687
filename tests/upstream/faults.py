"""The fault suite's processes: a misbehaving mock upstream, a healthy one, and a gateway of its
own in front of both (retries fast, health lenient unless a test asks otherwise).

A fault is scripted per marker and per mode (``F-<NAME>-whole`` / ``F-<NAME>-stream``), so
a fault that fires a counted number of times (``times``) fires afresh for each test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

from tests.databases import make_key, upgrade
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    Upstream,
    free_port,
    process,
)

CONTEXT = "fault-context"
MODES = ("whole", "stream")
SPLIT_REPLY = f"The key is {UPSTREAM_SECRET} and nothing else."
FAULTS: dict[str, dict[str, Any]] = {
    "FAIL-TWICE": {"fault": {"status": 500, "times": 2}},
    "ALWAYS-500": {"fault": {"status": 503, "text": "down for maintenance"}},
    "RATE-ONCE": {"fault": {"status": 429, "headers": {"retry-after": "0.3"}, "times": 1}},
    "RATE-LONG": {"fault": {"status": 429, "headers": {"retry-after": "30"}}},
    "SLOW-ONCE": {"fault": {"first_byte_delay": 3.0, "times": 1}},
    "LONG-HEADER": {"fault": {"malformed": "long_header"}},
    "BAD-STATUS": {"fault": {"malformed": "bad_status"}},
    "BAD-CHUNK": {"fault": {"malformed": "bad_chunk"}},
    "MALFORMED-ONCE": {"fault": {"malformed": "bad_status", "times": 1}},
    "HANGUP-ONCE": {"fault": {"drop_after": 0, "times": 1}},
    "DROP-3": {"reply": "one two three four five six", "fault": {"drop_after": 3}},
    "ERROR-FRAME-2": {"reply": "one two three four", "fault": {"error_frame_after": 2}},
    "BROKEN-CHUNK": {"reply": "one two three four", "fault": {"broken_chunk_after": 2}},
    "SPLIT-KEY": {"reply": SPLIT_REPLY, "chunk_chars": 5},
    "BAD-KEY": {"fault": {"status": 401, "text": "invalid api key"}},
    "STORM": {"fault": {"status": 500, "first_byte_delay": 0.3}},
    "EJECT-500": {"fault": {"status": 500}},
    "SLOW-STREAM": {"reply": "one two three four five six seven eight", "token_delay": 0.1},
}
MODELS = {
    # one backend: retries go to it again
    "faulty": {"backend": "flaky", "model": "mock-small"},
    # the first backend refuses connections: the second serves
    "pair": {
        "backends": [
            {"backend": "dead", "model": "anything"},
            {"backend": "spare", "model": "mock-small"},
        ]
    },
    "dead-only": {"backend": "dead", "model": "anything"},
    # every backend failed: the fallback alias serves, if the policy allows it
    "primary": {"backend": "flaky", "model": "mock-small", "fallback": ["backup"]},
    "backup": {"backend": "spare", "model": "mock-large"},
    "guarded": {"backend": "flaky", "model": "mock-small", "fallback": ["hidden"]},
    "hidden": {"backend": "spare", "model": "mock-large"},
    "storm": {"backend": "storm", "model": "mock-small"},
    "spread": {
        "strategy": "weighted",
        "backends": [
            {"backend": "spare", "model": "mock-small", "weight": 3},
            {"backend": "spare-too", "model": "mock-large", "weight": 1},
        ],
    },
    "solo": {"backend": "solo", "model": "mock-small"},
    "other": {"backend": "spare", "model": "mock-small"},
}
ALLOWED = [alias for alias in MODELS if alias != "hidden"]
# generous enough for a loaded machine (a spurious timeout would be a retry a test counts)
TIMEOUTS = {"connect": 1, "response": 2.5, "first_byte": 2.0, "idle": 1.0}
RETRY = {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2}


def fault_script() -> dict[str, Any]:
    rules = [
        {"contains": f"F-{name}-{mode}", **rule}
        for name, rule in FAULTS.items()
        for mode in MODES
    ]
    return {"rules": rules}


def marker(name: str, stream: bool) -> str:
    return f"F-{name}-{'stream' if stream else 'whole'}"


@contextmanager
def mock(folder: Path, script: dict[str, Any]) -> Iterator[Upstream]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    port = free_port()
    args = ["mock-upstream", "--port", str(port), "--script", str(path)]
    with process(args, f"http://127.0.0.1:{port}/healthz", folder / "upstream.log"):
        yield Upstream(f"http://127.0.0.1:{port}")


def _backend(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": f"{upstream.url}/v1",
        "api_key_env": "MOCK_UPSTREAM_KEY",
        "timeouts": TIMEOUTS,
        **extra,
    }


def write_config(
    folder: Path, faulty: Upstream, spare: Upstream, health: dict[str, Any]
) -> Path:
    backends = {
        name: _backend(faulty) for name in ("flaky", "storm", "solo")
    } | {
        "spare": _backend(spare),
        "spare-too": _backend(spare),
        "dead": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeouts": TIMEOUTS},
    }
    policies = folder / "policies"
    policies.mkdir()
    policy = {
        "context": CONTEXT,
        "purpose": "Pass traffic through, to test the upstream's faults.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ALLOWED},
    }
    (policies / f"{CONTEXT}.yaml").write_text(yaml.safe_dump(policy))
    config = {
        "backends": backends,
        "models": MODELS,
        "policies_dir": str(policies),
        "recording": {"spill_dir": str(folder / "spill")},
        "upstream": {"retry": RETRY, "health": health},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def fault_gateway(
    folder: Path,
    faulty: Upstream,
    spare: Upstream,
    health: dict[str, Any],
    database_url: str | None = None,
) -> Iterator[Gateway]:
    config = write_config(folder, faulty, spare, health)
    env = {
        "GATEWAY_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    key = make_key(upgrade(env["GATEWAY_DATABASE_URL"]), CONTEXT, "faults")
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        backend = "postgres" if database_url else "sqlite"
        yield Gateway(f"http://127.0.0.1:{port}", key, env, config, backend, {}, folder)


def sdk(gateway: Gateway, timeout: float = 15.0) -> openai.OpenAI:
    """The SDK with its own retries off: every retry counted is the gateway's."""
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0, timeout=timeout)


def seen_for(upstream: Upstream, request_id: str) -> list[dict[str, Any]]:
    """What the upstream's log holds for one gateway request id (every try of it)."""
    return [e for e in upstream.requests() if e["request_id"] == request_id]


def readyz(gateway: Gateway) -> httpx.Response:
    return httpx.get(f"{gateway.url}/readyz", timeout=5)


def wait_for(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.05)
