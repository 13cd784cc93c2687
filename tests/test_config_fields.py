"""The database pool and the review claim lease in the config file: defaults as they were
hard-coded, good values reach the engine and the queue, bad ones are errors naming the field."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, GatewayConfig, default_config, load_config
from gateway.db.session import create_engine
from tests.inprocess import (
    ADMIN,
    FLAGGING,
    admin_key,
    config_for,
    flagged,
    reviewer,
    running,
    write_policy,
)

BASE: dict[str, Any] = {
    "backends": {"b": {"base_url": "http://127.0.0.1:9/v1"}},
    "models": {"m": {"backend": "b", "model": "x"}},
}
AT_LEAST = "Input should be greater than or equal to"


def _load(tmp_path: Path, **fields: Any) -> GatewayConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({**BASE, **fields}))
    return load_config(path)


def test_the_defaults_are_the_values_that_were_hard_coded() -> None:
    config = default_config()
    assert (config.database.pool_size, config.database.max_overflow) == (10, 10)
    assert config.review.claim_lease_minutes == 15
    # checkpoints outside the keys' folder: a read-only keys mount, a backup without secrets
    assert config.audit.checkpoint_dir == Path("data/checkpoints")
    assert not config.audit.checkpoint_dir.is_relative_to(config.audit.keys_dir)


def test_good_values_are_read(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        database={"pool_size": 3, "max_overflow": 0},
        review={"claim_lease_minutes": 2.5},
    )
    assert (config.database.pool_size, config.database.max_overflow) == (3, 0)
    assert config.review.claim_lease_minutes == 2.5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"database": {"pool_size": 0}}, f"database.pool_size: {AT_LEAST} 1"),
        ({"database": {"max_overflow": -1}}, f"database.max_overflow: {AT_LEAST} 0"),
        ({"database": {"pool_size": "many"}}, "database.pool_size: Input should be a valid"),
        ({"database": {"pool": 5}}, "database.pool: Extra inputs are not permitted"),
        ({"review": {"claim_lease_minutes": 0}}, "review.claim_lease_minutes: Input should be"),
        ({"review": {"claim_lease_minutes": 1441}}, "less than or equal to 1440"),
        ({"review": {"lease": 5}}, "review.lease: Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_file_and_the_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, **fields)
    assert str(raised.value).startswith(f"{tmp_path / 'gateway.yaml'}: ")
    assert message in str(raised.value)


def test_the_pool_sizes_reach_a_postgresql_engine() -> None:
    async def sizes() -> tuple[int, int]:
        # Building an engine connects to nothing: the URL's server need not exist.
        engine = create_engine(
            "postgresql+asyncpg://nobody@127.0.0.1:9/none", pool_size=3, max_overflow=4
        )
        try:
            pool: Any = engine.sync_engine.pool
            return pool.size(), pool._max_overflow
        finally:
            await engine.dispose()

    assert asyncio.run(sizes()) == (3, 4)


def test_a_claim_lasts_the_configured_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN["authorization"].split()[1])
    write_policy(tmp_path / "policies", "lease-context", FLAGGING.format(context="lease-context"))
    with running(config_for(tmp_path, review={"claim_lease_minutes": 2.5})) as (client, state):
        flagged(client, admin_key(client, "lease-context"))
        _, headers = reviewer(client, state, "reviewer", (("lease-context", "triage"),))
        before = datetime.now(UTC)
        item = client.post("/review/queues/lease-context/triage/claim", headers=headers).json()
        lease = datetime.fromisoformat(item["lease_expires_at"]) - before
        assert timedelta(minutes=2.5) <= lease < timedelta(minutes=2.5, seconds=5)
