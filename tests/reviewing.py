"""Reviewers as the tests drive them: made in the test process (or with the command line),
working through the API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from gateway.review.reviewers import Role
from tests.databases import make_reviewer
from tests.servers import Gateway


class Reviewer:
    """A reviewer made in the test process, as ``gateway review add-reviewer`` and ``assign``
    make one (``via_cli`` runs those two commands instead: the commands' own tests)."""

    def __init__(
        self,
        gateway: Gateway,
        name: str,
        role: Role = "reviewer",
        queues: tuple[tuple[str, str], ...] = (),
        *,
        via_cli: bool = False,
    ) -> None:
        self.gateway = gateway
        if via_cli:
            self.token = _added_by_cli(gateway, name, role, queues)
        else:
            _, self.token = make_reviewer(gateway.database_url, name, role, queues)
        assert self.token.startswith("rv-") and "\n" not in self.token
        self.id = self.get("/me").json()["id"]

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.gateway.url}/review{path}", headers=self._headers(), params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/review{path}", headers=self._headers(), json=body or {}
        )

    def claim(self, context: str, queue: str) -> dict[str, Any] | None:
        response = self.post(f"/queues/{context}/{queue}/claim")
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        item: dict[str, Any] = response.json()
        return item


def _added_by_cli(
    gateway: Gateway, name: str, role: str, queues: tuple[tuple[str, str], ...]
) -> str:
    """``gateway review add-reviewer`` then ``assign`` per queue: the token it printed."""
    made = gateway.cli(
        "review", "add-reviewer", "--name", name, "--role", role,
        "--organisation", "Acme Labelling", "--locale", "de-DE",
        "--language", "de", "--language", "en",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    reviewer_id = made.stderr.split()[1]  # "created rvr_… (pseudonym, role, kind)"
    for context, queue in queues:
        done = gateway.cli("review", "assign", reviewer_id, "--context", context, "--queue", queue)
        assert done.returncode == 0, done.stderr
    return token


def judgment(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "rule_verdicts": {rule: "true_positive" for rule in item["rule_ids"]},
        "verdict": "violation",
        "severity": "low",
        "preferred": "rewrite",
        "rewrite": "A better answer.",
        "rationale": "Judged by the guideline.",
        "guideline_revision": item["guideline_revision"],
        "guideline_acknowledged": True,
        "seconds_spent": 12.5,
    }
    return {**body, **changes}


def flag(client: openai.OpenAI, text: str = "please flag me") -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-request-id"]


def wait_for_item(reviewer: Reviewer, context: str, queue: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = reviewer.claim(context, queue)
        if item is not None:
            return item
        time.sleep(0.1)
    raise AssertionError(f"no item in {context}/{queue}")


def wait_waiting(
    reviewer: Reviewer, context: str, queue: str, count: int, timeout: float = 15.0
) -> None:
    """Until the queue has at least ``count`` items waiting (the recorder routes them off the
    request path): a poll, not a guess at how long that takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = reviewer.get("/queues").json()["data"]
        waiting = sum(r["waiting"] for r in rows if (r["context"], r["queue"]) == (context, queue))
        if waiting >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} items waiting in {context}/{queue}")


def item_of(reviewer: Reviewer, context: str, queue: str, exchange_id: str) -> dict[str, Any]:
    """Claim the queue's items until this exchange's comes up (others are given back)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        item = reviewer.claim(context, queue)
        if item is not None and item["exchange_id"] == exchange_id:
            return item
        if item is not None:
            assert reviewer.post(f"/items/{item['id']}/skip").status_code == 200
        time.sleep(0.05)
    raise AssertionError(f"no item for {exchange_id} in {context}/{queue}")
