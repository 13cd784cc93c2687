"""A gateway of a test's own on a database of its choosing (a throwaway cluster, say), with
the tests' policies, a key for ``plain-context`` and settings the test adds."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.databases import make_keys, upgrade
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, Upstream, free_port, process

TESTS = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def config_for(upstream: Upstream, folder: Path, **sections: dict[str, Any]) -> Path:
    policies = folder / "policies"
    if not policies.exists():
        shutil.copytree(TESTS / "policies", policies)
    config: dict[str, Any] = {
        "backends": {
            "mock": {
                "base_url": f"{upstream.url}/v1",
                "api_key_env": "MOCK_UPSTREAM_KEY",
                "timeouts": {"connect": 2, "response": 10, "first_byte": 2.0, "idle": 5},
            },
        },
        "models": {
            "test-small": {"backend": "mock", "model": "mock-small"},
            "test-large": {"backend": "mock", "model": "mock-large"},
        },
        "policies_dir": str(policies),
        "recording": {"spill_dir": str(folder / "spill")},
        "auth": {"cache_seconds": 0.5},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def serve_process(
    upstream: Upstream, database_url: str, folder: Path, **sections: dict[str, Any]
) -> Iterator[tuple[Gateway, subprocess.Popen[bytes]]]:
    """``gateway serve`` on ``database_url`` (migrated here), its log in folder/gateway.log,
    and its process (to signal)."""
    config = config_for(upstream, folder, **sections)
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    keys = make_keys(upgrade(database_url), ("plain-context",))
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env) as proc:
        url = f"http://127.0.0.1:{port}"
        key = keys["plain-context"]
        yield Gateway(url, key, env, config, "", keys, folder / "policies"), proc


@contextmanager
def serve_on(
    upstream: Upstream, database_url: str, folder: Path, **sections: dict[str, Any]
) -> Iterator[Gateway]:
    with serve_process(upstream, database_url, folder, **sections) as (gateway, _):
        yield gateway


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """``check()``'s first truthy result, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.1)
