"""A gateway (re)started with a broken policy file serves that context's last good revision from
the database, says so loudly (log, /readyz, GET /admin/policies), and takes the file back once
it is fixed. Real gateway processes, stopped and started again on the same database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import gateway_config
from tests.databases import upgrade
from tests.servers import ADMIN_TOKEN, UPSTREAM_SECRET, Upstream, free_port, process

POLICY = """\
context: restart-context
purpose: Prove that a restart with a broken file serves the last good revision.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
  default: test-small
rules:
  - id: no-{word}
    stage: input
    why: Restart test.
    detect: {{keywords: [{word}]}}
    action: block
"""
BROKEN = POLICY.format(word="apples") + "  oops: [unclosed\n"
NEVER_GOOD = "context: never-good\npurpose: [unclosed\n"


class Running:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(method, f"{self.url}/admin{path}", headers=headers, **kwargs)

    def policies(self) -> dict[str, Any]:
        listing: dict[str, Any] = self.admin("GET", "/policies").json()
        return listing

    def served(self, context: str = "restart-context") -> dict[str, Any] | None:
        found = [p for p in self.policies()["data"] if p["context"] == context]
        return found[0] if found else None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, self.policies()
            time.sleep(0.1)

    def chat(self, key: str, text: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"messages": [{"role": "user", "content": text}]},
        )

    def record(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while (response := self.admin("GET", f"/exchanges/{request_id}")).status_code == 404:
            assert time.monotonic() < deadline, f"no record for {request_id}"
            time.sleep(0.05)
        record: dict[str, Any] = response.json()
        return record


Start = Callable[[], AbstractContextManager[Running]]


@pytest.fixture
def start(
    upstream: Upstream, database_url: str, tmp_path: Path
) -> tuple[Start, Path]:
    """Start (again and again) a gateway on one database and one policies folder."""
    policies = tmp_path / "policies"
    policies.mkdir()
    config = gateway_config(upstream, tmp_path, policies)
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "MOCK_UPSTREAM_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    upgrade(database_url)
    runs = iter(range(1, 100))

    @contextmanager
    def run() -> Iterator[Running]:
        port, log = free_port(), tmp_path / f"gateway-{next(runs)}.log"
        args = ["serve", "--config", str(config), "--port", str(port)]
        with process(args, f"http://127.0.0.1:{port}/readyz", log, env):
            yield Running(f"http://127.0.0.1:{port}", log)

    return run, policies


def first_run(start: Start, path: Path) -> tuple[str, str]:
    """Serve apples, then pears, then apples again with traffic: (the last good revision, key).

    Pears is the newest revision stored; apples is the one that served last."""
    path.write_text(POLICY.format(word="apples"))
    with start() as gateway:
        apples = gateway.served()
        made = gateway.admin("POST", "/keys", json={"context": "restart-context", "name": "r"})
        key = made.json()["key"]
        path.write_text(POLICY.format(word="pears"))
        gateway.wait_for(lambda: gateway.served() != apples)
        path.write_text(POLICY.format(word="apples"))
        gateway.wait_for(lambda: gateway.served() == apples)
        assert apples is not None and apples["file_error"] is None
        blocked = gateway.chat(key, "I like apples")
        assert blocked.status_code == 400
        assert gateway.record(blocked.headers["x-request-id"])["policy_revision"] == (
            apples["revision"]
        )
    return apples["revision"], key


def test_a_restart_with_a_broken_file_serves_the_last_good_revision(
    start: tuple[Start, Path],
) -> None:
    run, policies = start
    path = policies / "restart-context.yaml"
    good, key = first_run(run, path)
    path.write_text(BROKEN)
    (policies / "never-good.yaml").write_text(NEVER_GOOD)
    with run() as gateway:
        served = gateway.served()
        assert served is not None, gateway.policies()
        assert served["revision"] == good
        assert served["served_from"] == "database"
        assert f"{path}:" in served["file_error"] and "not valid YAML" in served["file_error"]
        assert gateway.served("never-good") is None
        assert set(gateway.policies()["errors"]) == {str(path), str(policies / "never-good.yaml")}

        ready = httpx.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200, ready.text
        detail = ready.json()["checks"]["policies"]
        assert detail["contexts"]["restart-context"] == good[:12]
        assert detail["from_database"]["restart-context"]["revision"] == good[:12]
        assert "not valid YAML" in detail["from_database"]["restart-context"]["error"]
        log = gateway.log.read_text()
        assert f"serving context restart-context at its last good revision {good[:12]}" in log

        blocked = gateway.chat(key, "I like apples")
        assert blocked.status_code == 400, blocked.text  # not 503: the policy serves
        assert blocked.json()["error"]["rule"] == "no-apples"
        record = gateway.record(blocked.headers["x-request-id"])
        assert record["policy_revision"] == good
        assert gateway.chat(key, "I like pears").status_code == 200

        path.write_text(POLICY.format(word="pears"))  # fixed: the file serves again
        gateway.wait_for(lambda: (gateway.served() or {}).get("served_from") == "file")
        fixed = gateway.served()
        assert fixed is not None and fixed["file_error"] is None and fixed["revision"] != good
        assert gateway.chat(key, "I like apples").status_code == 200
        assert httpx.get(f"{gateway.url}/readyz").json()["checks"]["policies"][
            "from_database"
        ] == {}
