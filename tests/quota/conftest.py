"""The quota tests' gateways: one per database backend, counters in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.quota.fixtures import limits_gateway
from tests.servers import Gateway, Upstream


@pytest.fixture(scope="session")
def sqlite_limits_gateway(
    upstream: Upstream, sqlite_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with limits_gateway(upstream, sqlite_url, tmp_path_factory.mktemp("limits")) as served:
        yield served


@pytest.fixture(scope="session")
def postgres_limits_gateway(
    upstream: Upstream, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with limits_gateway(upstream, postgres_url, tmp_path_factory.mktemp("limits")) as served:
        yield served


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def limited(request: pytest.FixtureRequest) -> Gateway:
    """A gateway with limits on each backend's database (each test makes its own keys)."""
    served: Gateway = request.getfixturevalue(f"{request.param}_limits_gateway")
    return served
