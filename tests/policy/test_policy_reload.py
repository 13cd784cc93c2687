"""Policies reload when their files change; a broken edit is refused, the last good one serves."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.servers import ADMIN_TOKEN, Gateway

POLICY = """\
context: reload-context
purpose: Prove that edits take effect and broken edits do not.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
  default: test-small
rules:
  - id: {rule}
    stage: input
    why: Reload test.
    detect: {{keywords: [{word}]}}
    action: block
"""


def wait_for(gateway: Gateway, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        listing: dict[str, Any] = gateway.admin("/policies").json()
        if predicate(listing):
            return listing
        assert time.monotonic() < deadline, listing
        time.sleep(0.1)


def revision_of(listing: dict[str, Any]) -> str | None:
    found = [p["revision"] for p in listing["data"] if p["context"] == "reload-context"]
    return found[0] if found else None


def call(gateway: Gateway, key: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"messages": [{"role": "user", "content": text}]},
    )


def test_edits_reload_and_broken_edits_keep_the_last_good_revision(gateway: Gateway) -> None:
    path = gateway.policies / "reload-context.yaml"
    try:
        path.write_text(POLICY.format(rule="no-apples", word="apples"))
        first = revision_of(wait_for(gateway, revision_of))
        made = httpx.post(
            f"{gateway.url}/admin/keys",
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            json={"context": "reload-context", "name": "reload"},
        )
        key = made.json()["key"]
        assert call(gateway, key, "I like apples").json()["error"]["rule"] == "no-apples"

        path.write_text(POLICY.format(rule="no-apples", word="apples") + "  oops: [unclosed\n")
        listing = wait_for(gateway, lambda d: d["errors"])
        (message,) = listing["errors"].values()
        assert "reload-context.yaml:" in message
        assert revision_of(listing) == first  # still serving
        ready = httpx.get(f"{gateway.url}/readyz").json()
        assert ready["checks"]["policies"]["refused_edits"] == 1
        assert call(gateway, key, "I like apples").status_code == 400

        path.write_text(POLICY.format(rule="no-pears", word="pears"))
        listing = wait_for(gateway, lambda d: revision_of(d) not in (None, first))
        assert not listing["errors"]
        assert call(gateway, key, "I like apples").status_code == 200
        blocked = call(gateway, key, "I like pears")
        record = gateway.record(blocked.headers["x-request-id"])
        assert record["policy_revision"] == revision_of(listing)
    finally:
        path.unlink(missing_ok=True)
