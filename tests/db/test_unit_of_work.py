"""One unit of work per request (``gateway.deps.UnitDep``): what a route's services write
commits once when the route returns, and rolls back together when anything raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.db.models import ApiKey
from gateway.deps import AppState, UnitDep
from gateway.errors import InvalidRequest
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

CONTEXT = "unit-context"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN["authorization"].split()[1])
    write_policy(tmp_path / "policies", CONTEXT, FLAGGING.format(context=CONTEXT))
    with running(config_for(tmp_path)) as running_app:
        yield running_app


def _names(client: TestClient) -> list[str]:
    keys = client.get("/admin/keys", headers=ADMIN).json()["data"]
    return [k["name"] for k in keys]


def test_two_writes_in_one_request_roll_back_together(app: tuple[TestClient, AppState]) -> None:
    client, state = app
    reviewer_id, headers = reviewer(client, state, "reviewer")

    async def two_writes(services: UnitDep, reviewer: str, fail: bool = False) -> dict[str, str]:
        made = await services.keys.create(CONTEXT, f"made with {reviewer}")
        await services.reviewers.disable(reviewer)  # a reviewer that is not: NotFound
        if fail:
            raise InvalidRequest("the request fails after both writes")
        return {"id": made.id}

    client.app.add_api_route("/test/two-writes", two_writes, methods=["POST"])  # type: ignore[attr-defined]
    missing = client.post("/test/two-writes", params={"reviewer": "rvr_nobody"})
    assert missing.status_code == 404, missing.text
    failed = client.post("/test/two-writes", params={"reviewer": reviewer_id, "fail": True})
    assert failed.status_code == 400, failed.text
    assert _names(client) == []  # no key from either request
    assert client.get("/review/me", headers=headers).status_code == 200  # not disabled
    done = client.post("/test/two-writes", params={"reviewer": reviewer_id})
    assert done.status_code == 200, done.text
    assert _names(client) == [f"made with {reviewer_id}"]
    assert client.get("/review/me", headers=headers).status_code == 401


def test_a_route_sees_its_own_writes_before_they_commit(
    app: tuple[TestClient, AppState],
) -> None:
    client, state = app

    async def write_then_read(services: UnitDep) -> dict[str, bool]:
        made = await services.keys.create(CONTEXT, "seen by its own request")
        listed = [k.id for k in await services.keys.list()]
        async with state.services.sessions() as other:  # another unit sees nothing yet
            outside = await other.get(ApiKey, made.id)
        return {"inside": made.id in listed, "outside": outside is not None}

    client.app.add_api_route("/test/read-own", write_then_read, methods=["POST"])  # type: ignore[attr-defined]
    assert client.post("/test/read-own").json() == {"inside": True, "outside": False}
    assert "seen by its own request" in _names(client)


def test_a_judgment_sent_twice_is_refused_and_stored_once(
    app: tuple[TestClient, AppState],
) -> None:
    client, state = app
    flagged(client, admin_key(client, CONTEXT))
    _, headers = reviewer(client, state, "reviewer", ((CONTEXT, "triage"),))
    item = client.post(f"/review/queues/{CONTEXT}/triage/claim", headers=headers).json()
    body = {
        "verdict": "acceptable",
        "rationale": "fine",
        "guideline_revision": item["guideline_revision"],
        "guideline_acknowledged": True,
    }
    first = client.post(f"/review/items/{item['id']}/judgments", headers=headers, json=body)
    assert first.status_code == 201, first.text
    again = client.post(f"/review/items/{item['id']}/judgments", headers=headers, json=body)
    assert again.status_code == 403, again.text
    shown = client.get(f"/review/items/{item['id']}", headers=headers).json()
    assert [j["id"] for j in shown["judgments"]] == [first.json()["id"]]
    assert shown["state"] == "done"


def test_a_revoked_key_is_forgotten_once_the_revocation_commits(
    app: tuple[TestClient, AppState],
) -> None:
    client, _ = app
    key = admin_key(client, CONTEXT)
    chat = {"model": "test-small", "messages": [{"role": "user", "content": "flagme"}]}
    bearer = {"authorization": f"Bearer {key}"}
    assert client.post("/v1/chat/completions", headers=bearer, json=chat).status_code == 400
    key_id = next(k["id"] for k in client.get("/admin/keys", headers=ADMIN).json()["data"])
    assert client.delete(f"/admin/keys/{key_id}", headers=ADMIN).status_code == 200
    refused = client.post("/v1/chat/completions", headers=bearer, json=chat)
    assert refused.status_code == 401, refused.text  # at once, not after the cache's seconds
