"""Real processes on loopback ports: the mock upstream and the gateway, and how to wait for them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

UPSTREAM_SECRET = "sk-upstream-secret"
ADMIN_TOKEN = "admin-test-token"


def admin_key(url: str, context: str, name: str = "tests") -> str:
    """A new key for a context, made through the admin API as an operator's script would."""
    made = httpx.post(
        f"{url}/admin/keys",
        json={"context": context, "name": name},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def environment(changes: Mapping[str, str | None] | None) -> dict[str, str]:
    """This process's environment with ``changes`` applied; None removes a variable."""
    merged = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


@contextmanager
def process(
    args: list[str],
    health_url: str,
    log: Path,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m gateway ARGS``, up once ``health_url`` answers, stopped on the way out."""
    with started([sys.executable, "-m", "gateway", *args], health_url, log, env, cwd) as proc:
        yield proc


@contextmanager
def started(
    argv: list[str],
    health_url: str,
    log: Path,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=environment(env), cwd=cwd
        )
        try:
            wait_until_up(health_url, proc, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


#: what ``gateway mock-upstream --port P --script F`` runs, without importing the command line
#: (every command's modules: 3 s a process on the CI machine, against 0.3 s for gateway.mock);
#: tests/upstream starts the command itself
MOCK = (
    "import pathlib, sys\n"
    "from gateway.mock import serve_mock\n"
    "serve_mock('127.0.0.1', int(sys.argv[1]), pathlib.Path(sys.argv[2]), None)\n"
)


@contextmanager
def mock_upstream(script: Path, log: Path) -> Iterator[Upstream]:
    """The mock upstream on a free port, answering by the script at ``script``."""
    port = free_port()
    argv = [sys.executable, "-c", MOCK, str(port), str(script)]
    with started(argv, f"http://127.0.0.1:{port}/healthz", log):
        yield Upstream(f"http://127.0.0.1:{port}")


def cli(
    args: list[str], env: Mapping[str, str | None], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=60,
        check=False,
        cwd=cwd,
    )


def in_process(
    args: list[str], env: Mapping[str, str | None]
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` run by the typer app in this process, the environment
    changed for the call only; the result shaped as ``cli``'s."""
    with warnings.catch_warnings():  # typer's runner still uses what Click deprecates
        warnings.filterwarnings("ignore", r"'click\.", DeprecationWarning)
        from typer.testing import CliRunner

        from gateway.cli import app

        runner = CliRunner()
        with ThreadPoolExecutor(1) as pool:  # commands call asyncio.run: no loop may be running
            invoked = pool.submit(runner.invoke, app, args, env=dict(env), catch_exceptions=False)
        result = invoked.result()
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@dataclass
class Upstream:
    url: str

    def requests(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = httpx.get(f"{self.url}/_mock/requests").json()
        return entries

    def seen(
        self, request_id: str, timeout: float = 5.0, outcome: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.requests() if e["request_id"] == request_id]
            if found and (outcome is None or found[-1]["outcome"] == outcome):
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"upstream never saw {request_id} ({outcome}): {found}")
            time.sleep(0.05)


@dataclass
class Gateway:
    url: str
    key: str
    env: dict[str, str]
    config: Path
    backend: str
    keys: dict[str, str]
    policies: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def database_url(self) -> str:
        return database_of(self.config, self.env)

    def admin(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.url}/admin{path}",
            params=params,
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def record(self, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The exchange record a request left (the recorder writes off the hot path)."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.admin(f"/exchanges/{request_id}")
            if response.status_code == 200:
                record: dict[str, Any] = response.json()
                return record
            assert response.status_code == 404, response.text
            if time.monotonic() > deadline:
                raise AssertionError(f"no record for {request_id}")
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli([*args, "--config", str(self.config)], self.env)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command run in this process (the real typer app, without starting an
        interpreter): for tests of what a command does, not of how it is started."""
        return in_process([*args, "--config", str(self.config)], self.env)


@contextmanager
def scripted_upstream(folder: Path, script: Any) -> Iterator[Upstream]:
    """A mock upstream process on a free port, answering by ``script`` (written to ``folder``)."""
    import yaml

    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    with mock_upstream(path, folder / "upstream.log") as upstream:
        yield upstream


def database_of(config: Path, env: Mapping[str, str | None]) -> str:
    """The database URL a gateway started with ``env`` and ``config`` uses."""
    url = env.get("GATEWAY_DATABASE_URL")
    if url:
        return url
    import yaml

    written: str = yaml.safe_load(config.read_text())["database_url"]
    return written


@contextmanager
def serving_gateway(
    config: Path,
    env: Mapping[str, str | None],
    contexts: tuple[str, ...] | list[str],
    cwd: Path | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """``gateway serve`` on a database migrated in this process and a free port, with a key per
    context made through the admin API: the gateway's URL and the keys by context."""
    from tests.databases import upgrade

    upgrade(database_of(config, env))
    url = f"http://127.0.0.1:{free_port()}"
    args = ["serve", "--config", str(config), "--port", url.rsplit(":", 1)[1]]
    with process(args, f"{url}/readyz", config.parent / "gateway.log", env, cwd=cwd):
        yield url, {context: admin_key(url, context) for context in contexts}
