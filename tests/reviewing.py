"""Reviewers as the tests drive them: made with the command line, working through the API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

from tests.servers import Gateway


class Reviewer:
    def __init__(
        self,
        gateway: Gateway,
        name: str,
        role: str = "reviewer",
        queues: tuple[tuple[str, str], ...] = (),
    ) -> None:
        made = gateway.cli(
            "review",
            "add-reviewer",
            "--name",
            name,
            "--role",
            role,
            "--organisation",
            "Acme Labelling",
            "--locale",
            "de-DE",
            "--language",
            "de",
            "--language",
            "en",
        )
        assert made.returncode == 0, made.stderr
        self.token = made.stdout.strip()
        assert self.token.startswith("rv-") and "\n" not in self.token
        self.gateway = gateway
        self.id = self.get("/me").json()["id"]
        for context, queue in queues:
            done = gateway.cli("review", "assign", self.id, "--context", context, "--queue", queue)
            assert done.returncode == 0, done.stderr

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
