"""Gateways with limits: a real ``gateway serve`` on a loopback port, the tests' mock upstream,
a price table, the quota tests' own policies, and counters in process or in a Redis."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import gateway_config
from tests.databases import upgrade
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Gateway, Upstream, free_port, process

HERE = Path(__file__).resolve().parent
CONTEXTS = ("quota-context", "rated-context")
#: what test-small costs in the tests' price table, per million tokens
PRICE_IN, PRICE_OUT = 1000.0, 2000.0
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def limits_config(upstream: Upstream, folder: Path, limits: dict[str, Any]) -> Path:
    policies = folder / "policies"
    shutil.copytree(HERE / "policies", policies)
    path = gateway_config(upstream, folder, policies)
    config = yaml.safe_load(path.read_text())
    config["limits"] = limits
    # an alias whose only backend is down, served by its fallback: priced as the fallback
    config["models"]["dead-priced"] = {"backend": "dead", "model": "x", "fallback": ["test-small"]}
    # and one with no price of its own: its fallback's price still applies
    unpriced = {"backend": "dead", "model": "x", "fallback": ["test-small"]}
    config["models"]["dead-unpriced"] = unpriced
    small = {"input_per_million": PRICE_IN, "output_per_million": PRICE_OUT}
    dear = {"input_per_million": 50 * PRICE_IN, "output_per_million": 50 * PRICE_OUT}
    config["pricing"] = {"currency": "EUR", "models": {"test-small": small, "dead-priced": dear}}
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def limits_gateway(
    upstream: Upstream, database_url: str, folder: Path, limits: dict[str, Any] | None = None
) -> Iterator[Gateway]:
    """``gateway serve`` with limits on a migrated database (keys are made per test)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = limits_config(upstream, folder, limits or {})
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_REDIS_URL": None,
    }
    upgrade(database_url)
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    backend = make_url(database_url).get_backend_name()
    with process(args, f"http://127.0.0.1:{port}/healthz", folder / "gateway.log", env):
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield Gateway(url, "", env, config, backend, {}, folder / "policies")


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, httpx.get(f"{url}/readyz").text
        time.sleep(0.05)


def new_key(url: str, context: str = "quota-context", **limits: float) -> tuple[str, str]:
    """A key with its own limits, made through the admin API: (id, secret)."""
    made = httpx.post(
        f"{url}/admin/keys",
        json={"context": context, "name": "quota tests", "limits": limits or None},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def usage(gateway: Gateway, **params: str) -> list[dict[str, Any]]:
    answer = gateway.admin("/usage", **params)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


def usage_when(
    gateway: Gateway, ready: Callable[[list[dict[str, Any]]], bool], **params: str
) -> list[dict[str, Any]]:
    """Usage once ``ready`` says the records it needs are written (they are, off the request
    path, moments after the answers)."""
    deadline = time.monotonic() + 15
    rows = usage(gateway, **params)
    while not ready(rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = usage(gateway, **params)
    return rows


def minute_left(seconds: float) -> None:
    """Wait, if need be, until the current UTC minute has ``seconds`` left: a test that counts
    requests in a fixed minute window must not straddle two windows."""
    into = time.time() % 60
    if into > 60 - seconds:
        time.sleep(60 - into + 0.05)


@contextmanager
def throwaway_redis(folder: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own on a free port (never the machine's), stopped afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH to run a throwaway Redis")
    server = RedisServer(free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        with (self.folder / f"redis-{secrets.token_hex(3)}.log").open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
        ).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "the throwaway Redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
