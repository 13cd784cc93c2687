"""Fixtures: a real mock upstream process, real databases built by the migrations, and a real
gateway served by uvicorn on a loopback port, once per database backend."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import openai
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    Upstream,
    cli,
    free_port,
    process,
)

pytest_plugins = ["tests.web"]  # the web page's fixtures

HERE = Path(__file__).resolve().parent
POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "upstream.log"
    args = ["mock-upstream", "--port", str(port), "--script", str(HERE / "upstream_script.yaml")]
    with process(args, f"http://127.0.0.1:{port}/healthz", log):
        yield Upstream(f"http://127.0.0.1:{port}")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_sql(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    name = f"situate_test_{secrets.token_hex(4)}"
    asyncio.run(_admin_sql(base, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    path = tmp_path_factory.mktemp("sqlite") / "situate.db"
    return f"sqlite+aiosqlite:///{path}"


def gateway_config(upstream: Upstream, folder: Path, policies: Path) -> Path:
    config = {
        "backends": {
            "mock": {
                "base_url": f"{upstream.url}/v1",
                "api_key_env": "MOCK_UPSTREAM_KEY",
                "timeouts": {"connect": 2, "response": 10, "first_byte": 1.0, "idle": 5},
            },
            "dead": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeouts": {"connect": 1}},
        },
        "models": {
            "test-small": {"backend": "mock", "model": "mock-small"},
            "test-large": {"backend": "mock", "model": "mock-large"},
            "dead-model": {"backend": "dead", "model": "anything"},
        },
        "max_body_bytes": 65536,
        "policies_dir": str(policies),
        "policy_reload_seconds": 0.2,
        "recording": {"spill_dir": str(folder / "spill")},
        "auth": {"cache_seconds": 0.5},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def gateway(
    upstream: Upstream, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    policies = folder / "policies"
    shutil.copytree(HERE / "policies", policies)
    config = gateway_config(upstream, folder, policies)
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    migrated = cli(["db", "upgrade", "--config", str(config)], env)
    assert migrated.returncode == 0, migrated.stderr
    keys = {}
    for context in ("test-context", "scoped-context", "plain-context"):
        made = cli(
            ["keys", "create", "--context", context, "--name", "tests", "--config", str(config)],
            env,
        )
        assert made.returncode == 0, made.stderr
        keys[context] = made.stdout.strip()
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    backend = make_url(database_url).get_backend_name()
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        yield Gateway(
            f"http://127.0.0.1:{port}", keys["test-context"], env, config, backend, keys, policies
        )


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    """The real openai SDK, pointed at the gateway by changing only base_url and the key."""
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def plain(gateway: Gateway) -> Iterator[openai.OpenAI]:
    """The SDK on a context with no rules: what streams do when nothing holds text back."""
    with openai.OpenAI(
        base_url=gateway.v1, api_key=gateway.keys["plain-context"], max_retries=0
    ) as sdk:
        yield sdk
