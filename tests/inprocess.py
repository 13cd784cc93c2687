"""The gateway's app in this process, its lifespan run by Starlette's TestClient, on a SQLite
database built by the migrations: to reach the lifespan's state (the supervisor, the sessions)
that a gateway in another process keeps to itself. No upstream is called."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.config import GatewayConfig
from gateway.db.migrate import upgrade
from gateway.deps import APP_STATE, AppState
from gateway.review.reviewers import Role
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


#: a context whose requests saying "flagme" are blocked and queued for review in triage
FLAGGING = POLICY + """\
rules:
  - id: flag-me
    stage: input
    why: A test of the review queue.
    detect: {{keywords: [flagme]}}
    action: block
    review: triage
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


def admin_key(client: TestClient, context: str) -> str:
    made = client.post("/admin/keys", headers=ADMIN, json={"context": context, "name": "t"})
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def reviewer(
    client: TestClient, state: AppState, role: Role, queues: tuple[tuple[str, str], ...] = ()
) -> tuple[str, dict[str, str]]:
    """A new reviewer (made by the service, as the CLI makes one): its id and its headers."""
    portal = client.portal
    assert portal is not None
    reviewers = state.services.reviewers
    made, token = portal.call(partial(reviewers.create, f"{role} of the tests", role))
    for context, queue in queues:
        portal.call(reviewers.assign, made.id, context, queue)
    return made.id, {"authorization": f"Bearer {token}"}


def flagged(client: TestClient, key: str, count: int = 1) -> list[str]:
    """``count`` requests blocked and queued for review (a FLAGGING context's key): their ids,
    once their records, and so their review items, are written."""
    ids = []
    for _ in range(count):
        response = client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "test-small", "messages": [{"role": "user", "content": "flagme"}]},
        )
        assert response.status_code == 400, response.text
        ids.append(response.headers["x-request-id"])
    for request_id in ids:
        path = f"/admin/exchanges/{request_id}"
        eventually(partial(lambda p: client.get(p, headers=ADMIN).is_success, path))
    return ids


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
