"""Fixtures: a real mock upstream process, real databases built by the migrations, and a real
gateway served by uvicorn on a loopback port, once per database backend."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.databases import make_keys, postgres_database, upgrade
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    Upstream,
    free_port,
    mock_upstream,
    process,
)

pytest_plugins = ["tests.webpage", "tests.scoped"]  # the web page's fixtures, the scoped gateway

HERE = Path(__file__).resolve().parent
POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    log = tmp_path_factory.mktemp("upstream") / "upstream.log"
    with mock_upstream(HERE / "upstream_script.yaml", log) as served:
        yield served


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with postgres_database(base, f"situate_test_{secrets.token_hex(4)}") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite database for this run (this worker's)."""
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'situate.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The run's database of each backend. pytest ends a session fixture whenever its
    parameter changes (with xdist: at every file), so the databases are fixtures of their own
    that outlive the switch; this one only picks."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def gateway_config(upstream: Upstream, folder: Path, policies: Path) -> Path:
    config = {
        "backends": {
            "mock": {
                "base_url": f"{upstream.url}/v1",
                "api_key_env": "MOCK_UPSTREAM_KEY",
                "timeouts": {"connect": 2, "response": 10, "first_byte": 2.0, "idle": 5},
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
        # One try, never an ejection: the shared gateway's faults stay one request each and no
        # test's faults take a backend from another's. Retries and health are tested on
        # gateways of their own (tests/upstream/).
        "upstream": {"retry": {"attempts": 1}, "health": {"failures": 1_000_000}},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def serve_tests_gateway(
    upstream: Upstream, database_url: str, folder: Path
) -> Iterator[Gateway]:
    """``gateway serve`` with the tests' policies on a database migrated in this process, a key
    per test context."""
    policies = folder / "policies"
    shutil.copytree(HERE / "policies", policies)
    config = gateway_config(upstream, folder, policies)
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    keys = make_keys(upgrade(database_url), ("test-context", "scoped-context", "plain-context"))
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    backend = make_url(database_url).get_backend_name()
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        url = f"http://127.0.0.1:{port}"
        yield Gateway(url, keys["test-context"], env, config, backend, keys, policies)


@pytest.fixture(scope="session")
def sqlite_gateway(
    upstream: Upstream, sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with serve_tests_gateway(upstream, sqlite_url, tmp_path_factory.mktemp("gateway")) as served:
        yield served


@pytest.fixture(scope="session")
def postgres_gateway(
    upstream: Upstream, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with serve_tests_gateway(upstream, postgres_url, tmp_path_factory.mktemp("gateway")) as served:
        yield served


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest) -> Gateway:
    """The run's gateway on each backend's database. It only picks: each gateway is a session
    fixture of its own, so it starts once per run (per worker) however often the parameter
    switches. Tests share it: each makes its own keys, reviewers and requests, and reads only
    its own records."""
    served: Gateway = request.getfixturevalue(f"{request.param}_gateway")
    return served


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


# Files that take longest, first: xdist hands the work units (a file, or the scoped gateway's
# files together) out in collection order, so a long one collected last leaves the other worker
# idle at the end. Measured on the CI machine (``--durations``); a file not named keeps its
# place after these.
SCOPED_GROUP = "scoped"  # one work unit: the files that share tests/scoped.py's gateway
SCOPED_USERS = ("tools/", "clients/", "responses/", "web/test_tool_page.py")
LONGEST_FIRST = (
    "test_readme.py",
    SCOPED_GROUP,
    "test_export_formats.py",
    "test_web_browser.py",
    "test_admin_and_cli.py",
    "test_serve.py",
    "test_spool.py",
    "test_bounds.py",
    "test_redaction.py",
    "test_policy_cli.py",
    "test_recorder.py",
    "test_classifier_e2e.py",
    "test_review.py",
    "test_stream_guard_models.py",
    "test_install.py",
    "test_policy_followups.py",
    "test_policy_restart.py",
    "test_reviewer_lifecycle.py",
    "test_detectors_train.py",
    "test_export_card.py",
    "test_shadow.py",
    "test_feedback.py",
    "test_policy_eval_report.py",
    "test_web.py",
    "test_upstream_errors.py",
    "test_faults.py",
    "test_health.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """The default audit keys (``data/audit``) made once, before any worker starts, as an
    operator's first ``gateway serve`` or ``gateway audit key`` makes them: the tests' commands
    run on the shared config, and a command makes none."""
    if not hasattr(config, "workerinput"):
        from gateway.audit.keys import AuditKeys
        from gateway.config.observe import AuditConfig

        AuditKeys.load(AuditConfig(), create=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item), len(rank)))


def _unit(item: pytest.Item) -> str:
    """The name LONGEST_FIRST knows a test's work unit by: the scoped group's, or its file's."""
    path = item.path.relative_to(HERE.parent).as_posix()
    return SCOPED_GROUP if unit_of(path) == SCOPED_GROUP else item.path.name


def unit_of(path: str) -> str:
    """The xdist work unit of a test file's path (from the rootdir): its own, or the group's."""
    return SCOPED_GROUP if path.removeprefix("tests/").startswith(SCOPED_USERS) else path
