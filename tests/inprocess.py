"""The gateway's app in this process, its lifespan run by Starlette's TestClient, on a SQLite
database built by the migrations: to reach the lifespan's state (the supervisor, the sessions)
that a gateway in another process keeps to itself. No upstream is called."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.db.migrate import upgrade
from gateway.deps import APP_STATE, AppState
from tests.servers import ADMIN_TOKEN, free_port

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}

POLICY = """\
context: {context}
purpose: A context of the in-process tests.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
review:
  queues:
    triage: {{guidelines: guidelines/triage.md}}
"""


def write_policy(folder: Path, context: str, text: str | None = None) -> Path:
    (folder / "guidelines").mkdir(parents=True, exist_ok=True)
    (folder / "guidelines" / "triage.md").write_text("# Triage\n\nJudge what you see.\n")
    path = folder / f"{context}.yaml"
    path.write_text(text if text is not None else POLICY.format(context=context))
    return path


def config_for(folder: Path, **fields: Any) -> GatewayConfig:
    """A config of a SQLite database in ``folder`` (migrated) and its ``policies`` folder."""
    url = f"sqlite+aiosqlite:///{folder / 'situate.db'}"
    upgrade(url)
    raw: dict[str, Any] = {
        "database_url": url,
        "backends": {"nowhere": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},
        "models": {"test-small": {"backend": "nowhere", "model": "m"}},
        "policies_dir": str(folder / "policies"),
        "policy_reload_seconds": 0.05,
        "recording": {"spill_dir": str(folder / "spill")},
        **fields,
    }
    (folder / "gateway.yaml").write_text(yaml.safe_dump(raw))
    return GatewayConfig.model_validate(raw)


@contextmanager
def running(config: GatewayConfig) -> Iterator[tuple[TestClient, AppState]]:
    """The app with its lifespan running, and the state the lifespan yielded."""
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        state = client.app_state[APP_STATE]
        assert isinstance(state, AppState)
        yield client, state


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
