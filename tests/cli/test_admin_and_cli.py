"""The admin API and the command line, against the running gateway and its database."""

from __future__ import annotations

import json

import httpx
import openai

from tests.servers import ADMIN_TOKEN, Gateway


def call(gateway: Gateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "test-small", "messages": [{"role": "user", "content": "hi"}]},
    )


def test_admin_api_needs_the_admin_token(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/admin/exchanges").status_code == 401
    wrong = httpx.get(f"{gateway.url}/admin/exchanges", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_admin_token"


def test_admin_lists_exchanges_with_filters_and_cursor(gateway: Gateway) -> None:
    ids = [call(gateway, gateway.key).headers["x-request-id"] for _ in range(3)]
    for request_id in ids:
        gateway.record(request_id)
    page = gateway.admin("/exchanges", context="test-context", status="ok", limit=2).json()
    assert len(page["data"]) == 2 and page["has_more"]
    assert [row["id"] for row in page["data"]] == ids[::-1][:2]
    rest = gateway.admin(
        "/exchanges", context="test-context", status="ok", limit=1, before=page["next_cursor"]
    ).json()
    assert rest["data"][0]["id"] == ids[0]
    assert gateway.admin("/exchanges", context="no-such-context").json()["data"] == []
    bad = gateway.admin("/exchanges", status="weird")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"
    assert gateway.admin("/exchanges/req_missing").status_code == 404


def test_keys_create_list_revoke_from_the_cli(gateway: Gateway) -> None:
    created = gateway.cli(
        "keys", "create", "--context", "test-context", "--name", "temp", "--expires-in", "1"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk-gw-") and "\n" not in key  # the key, and only the key
    assert call(gateway, key).status_code == 200

    listing = gateway.cli("keys", "list", "--json").stdout
    listed = [json.loads(line) for line in listing.splitlines()]
    mine = next(k for k in listed if k["name"] == "temp")
    assert mine["state"] == "active" and mine["expires_at"] is not None
    assert key not in json.dumps(listed) and mine["display"].endswith(key[-4:])

    assert gateway.cli("keys", "revoke", mine["id"]).returncode == 0
    assert gateway.cli("keys", "revoke", mine["id"]).returncode == 1  # already revoked
    response = call(gateway, key)
    for _ in range(40):  # the gateway trusts a lookup for auth.cache_seconds (0.5 s here)
        if response.status_code == 401:
            break
        response = call(gateway, key)
    assert response.status_code == 401


def test_keys_through_the_admin_api_revoke_at_once(gateway: Gateway) -> None:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    made = httpx.post(
        f"{gateway.url}/admin/keys",
        headers=auth,
        json={"context": "test-context", "name": "api-made"},
    )
    assert made.status_code == 201
    key, key_id = made.json()["key"], made.json()["id"]
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk:
        assert sdk.models.list().data
    assert httpx.delete(f"{gateway.url}/admin/keys/{key_id}", headers=auth).status_code == 200
    assert call(gateway, key).status_code == 401
    listed = httpx.get(f"{gateway.url}/admin/keys", headers=auth).json()["data"]
    assert next(k for k in listed if k["id"] == key_id)["state"] == "revoked"


def test_exchanges_list_and_show_from_the_cli(gateway: Gateway) -> None:
    request_id = call(gateway, gateway.key).headers["x-request-id"]
    gateway.record(request_id)
    listed = gateway.cli(
        "exchanges",
        "list",
        "--context",
        "test-context",
        "--status",
        "ok",
        "--since",
        "10m",
        "--json",
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert request_id in [row["id"] for row in rows]
    assert all(row["status"] == "ok" and row["context"] == "test-context" for row in rows)
    future = gateway.cli("exchanges", "list", "--since", "2999-01-01T00:00:00", "--json")
    assert future.returncode == 0 and future.stdout == ""
    shown = gateway.cli("exchanges", "show", request_id)
    assert json.loads(shown.stdout)["id"] == request_id
    assert gateway.cli("exchanges", "show", "req_nope").returncode == 1
