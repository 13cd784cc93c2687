"""Each event type appended by the real code path that makes the change: the admin API and a
Responses DELETE through a running gateway, the review API and the reviewers' admin page as a
signed-in admin, the commands in this process, a policy taking effect from its file or (its
file broken at a start) from the database; each with its type, actor and subject, and never a
key, token, digest or name in its leaf."""

from __future__ import annotations

import asyncio
import getpass
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import openai
from sqlalchemy import select

from gateway.audit import events
from gateway.auth.keys import digest
from gateway.checks.registry import default_registry
from gateway.db.models import AuditEntry
from gateway.db.models import Reviewer as ReviewerRow
from gateway.db.session import Sessions
from gateway.policy.loader import load_policy
from gateway.policy.revisions import RevisionRepository
from tests.databases import in_a_thread, run_on, sessions_on
from tests.inprocess import config_for, running, write_policy
from tests.reviewing import Reviewer
from tests.servers import ADMIN_TOKEN, Gateway
from tests.webpage import Browserless

CLI_ACTOR = f"cli:{getpass.getuser()}"


def events_about(url: str, kind: str, subject: str) -> list[dict[str, Any]]:
    """The bodies of the events of ``kind`` about ``subject``, on any chain, oldest first."""

    async def read() -> list[str]:
        async with sessions_on(url) as sessions, sessions() as session:
            found = await session.scalars(
                select(AuditEntry.leaf)
                .where(AuditEntry.kind == kind)
                .order_by(AuditEntry.created_at, AuditEntry.seq)
            )
            return list(found)

    leaves = in_a_thread(lambda: asyncio.run(read()))
    bodies = [{**json.loads(leaf)["body"], "leaf": leaf} for leaf in leaves]
    return [b for b in bodies if b["subject"] == subject]


def one(url: str, kind: str, subject: str) -> dict[str, Any]:
    found = events_about(url, kind, subject)
    assert len(found) == 1, found
    return found[0]


def admin(method: str, gateway: Gateway, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{gateway.url}/admin{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )


def test_the_admin_api_appends_key_events_without_the_key(gateway: Gateway) -> None:
    made = admin("POST", gateway, "/keys", {"context": "plain-context", "name": "events api"})
    assert made.status_code == 201, made.text
    key_id, secret = made.json()["id"], made.json()["key"]
    limited = admin("PUT", gateway, f"/keys/{key_id}/limits", {"requests_per_minute": 7})
    assert limited.status_code == 200, limited.text
    assert admin("DELETE", gateway, f"/keys/{key_id}").status_code == 200

    url = gateway.database_url
    created = one(url, events.KEY_CREATED, key_id)
    limits = one(url, events.KEY_LIMITS, key_id)
    revoked = one(url, events.KEY_REVOKED, key_id)
    for event in (created, limits, revoked):
        assert event["actor"] == "admin-api"
        assert secret not in event["leaf"] and digest(secret) not in event["leaf"]
        # not even the display (prefix…last four); four characters alone could occur in a hash
        assert f"…{secret[-4:]}" not in event["leaf"] and f'"{secret[-4:]}"' not in event["leaf"]
    assert created["detail"] == {
        "context": "plain-context", "name": "events api", "expires_at": None, "limits": None
    }
    after = {"requests_per_minute": 7}
    assert limits["detail"] == {"context": "plain-context", "before": None, "after": after}
    assert revoked["detail"] == {"context": "plain-context"}
    # a refused change is no event
    assert admin("DELETE", gateway, f"/keys/{key_id}").status_code == 404
    assert len(events_about(url, events.KEY_REVOKED, key_id)) == 1


def test_a_responses_delete_is_the_callers_event(gateway: Gateway) -> None:
    """Deleted once its record is written: the decision committed to stays as it was."""
    with _sdk(gateway) as sdk:
        raw = sdk.responses.with_raw_response.create(model="test-small", input="keep this")
        response = raw.parse()
        written = gateway.record(raw.headers["x-request-id"])
        sdk.responses.delete(response.id)
    key_id, url = written["key_id"], gateway.database_url
    event = _eventually(lambda: events_about(url, events.RESPONSE_DELETED, response.id))
    assert event["actor"] == f"key:{key_id}"
    assert event["detail"]["context"] == "plain-context"
    assert event["detail"]["exchange"] == written["id"]
    record = gateway.record(written["id"])
    assert record["response_id"] == response.id and record["deleted_at"] is not None
    assert record["decision"] == written["decision"]  # as committed to on the chain


def test_the_commands_append_key_and_reviewer_events(gateway: Gateway) -> None:
    made = gateway.command("keys", "create", "--context", "plain-context", "--name", "events cli")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    key_id = made.stderr.split("created ")[1].split()[0]
    assert gateway.command("keys", "limits", key_id, "--rpm", "9").returncode == 0
    assert gateway.command("keys", "revoke", key_id).returncode == 0

    added = gateway.command(
        "review", "add-reviewer", "--name", "Events Eve", "--organisation", "Acme"
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    reviewer_id = added.stderr.split("created ")[1].split()[0]
    steps = [
        ("assign", reviewer_id, "--context", "plain-context", "--queue", "oversight"),
        ("unassign", reviewer_id, "--context", "plain-context", "--queue", "oversight"),
        ("disable", reviewer_id),
        ("enable", reviewer_id),
        ("rotate-token", reviewer_id),
    ]
    for step in steps:
        done = gateway.command("review", *step)
        assert done.returncode == 0, (step, done.stderr)

    url = gateway.database_url
    kinds = (events.KEY_CREATED, events.KEY_LIMITS, events.KEY_REVOKED)
    key_events = [one(url, kind, key_id) for kind in kinds]
    assert {e["actor"] for e in key_events} == {CLI_ACTOR}
    assert all(secret not in e["leaf"] and digest(secret) not in e["leaf"] for e in key_events)
    added_event = one(url, events.REVIEWER_ADDED, reviewer_id)
    assert added_event["actor"] == CLI_ACTOR
    assert added_event["detail"]["role"] == "reviewer" and added_event["detail"]["kind"] == "human"
    queues = events_about(url, events.REVIEWER_QUEUES, reviewer_id)
    assert [q["detail"]["assigned"] for q in queues] == [True, False]
    assert queues[0]["detail"]["queue"] == "oversight"
    changed = [
        one(url, kind, reviewer_id)
        for kind in (events.REVIEWER_DISABLED, events.REVIEWER_ENABLED, events.REVIEWER_TOKEN)
    ]
    for event in [added_event, *queues, *changed]:
        assert event["actor"] == CLI_ACTOR
        assert "Events Eve" not in event["leaf"] and "Acme" not in event["leaf"]
        assert token not in event["leaf"]
    stored_digest = run_on(url, lambda s: _token_digest(s, reviewer_id))
    assert all(stored_digest not in e["leaf"] for e in [added_event, *changed])


def test_the_review_api_and_the_admin_page_act_as_the_reviewer(
    gateway: Gateway, tmp_path: Path
) -> None:
    boss = Reviewer(gateway, "Events Admin", role="admin")
    vera = Reviewer(gateway, "Events Vera", queues=(("plain-context", "oversight"),))
    assert boss.post(f"/reviewers/{vera.id}/disable").status_code == 200
    assert boss.post(f"/reviewers/{vera.id}/enable").status_code == 200
    gone = httpx.delete(
        f"{gateway.url}/review/reviewers/{vera.id}/queues/plain-context/oversight",
        headers={"authorization": f"Bearer {boss.token}"},
    )
    assert gone.status_code == 200, gone.text
    exported = boss.post("/exports", {"format": "trl", "context": "no-such-context"})
    assert exported.status_code == 201, exported.text
    export_id = exported.json()["export_id"]

    page = Browserless(gateway, boss.token)
    try:
        done = page.http.post(f"/reviewers/{vera.id}/rotate-token", data={"csrf": page.csrf})
        assert done.status_code == 200, done.text
    finally:
        page.close()

    url, actor = gateway.database_url, f"reviewer:{boss.id}"
    for kind in (events.REVIEWER_DISABLED, events.REVIEWER_ENABLED, events.REVIEWER_TOKEN):
        assert one(url, kind, vera.id)["actor"] == actor
    (unassigned,) = events_about(url, events.REVIEWER_QUEUES, vera.id)[-1:]
    assert unassigned["actor"] == actor and unassigned["detail"]["assigned"] is False
    export = one(url, events.EXPORT_CREATED, export_id)
    assert export["actor"] == actor
    assert export["detail"]["format"] == "trl" and export["detail"]["rows"] == 0
    assert export["detail"]["filter"]["context"] == "no-such-context"


def test_a_command_export_is_an_event(gateway: Gateway, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = gateway.command(
        "export", "preferences", "--format", "kto", "--out", str(out),
        "--context", "no-such-context", "--allow-empty", "--by", "events test",
    )
    assert done.returncode == 0, done.stderr
    export_id = json.loads(done.stdout)["export_id"]
    event = one(gateway.database_url, events.EXPORT_CREATED, export_id)
    assert event["actor"] == CLI_ACTOR and event["detail"]["format"] == "kto"
    assert len(event["detail"]["sha256"]) == 64


def test_a_policy_taking_effect_is_an_event_each_time(gateway: Gateway) -> None:
    """The gateway's start, then an edit the watcher loads: one event per revision; a
    broken edit is one too (the revision before keeps serving)."""
    url = gateway.database_url
    started = events_about(url, events.POLICY_REVISION, "plain-context")
    assert started and started[0]["actor"] == "gateway"
    assert started[0]["detail"]["source"] == "file"
    assert started[0]["detail"]["path"] == str(gateway.policies / "plain-context.yaml")

    context = "events-" + secrets.token_hex(3)
    path = gateway.policies / f"{context}.yaml"
    text = (gateway.policies / "plain-context.yaml").read_text()
    path.write_text(text.replace("context: plain-context", f"context: {context}"))
    try:
        first = _eventually(lambda: events_about(url, events.POLICY_REVISION, context))
        path.write_text(path.read_text() + "\n# a second revision\n")
        later = _eventually(
            lambda: [e for e in events_about(url, events.POLICY_REVISION, context)
                     if e["detail"]["revision"] != first["detail"]["revision"]]
        )
        path.write_text(path.read_text().replace("models:", "models: [broken"))
        kept = _eventually(
            lambda: [e for e in events_about(url, events.POLICY_REVISION, context)
                     if e["detail"]["source"] == "kept"]
        )
    finally:
        path.unlink()
    assert later["detail"]["context"] == context and later["detail"]["source"] == "file"
    assert kept["detail"]["revision"] == later["detail"]["revision"]  # it keeps serving
    assert f"{context}.yaml" in kept["detail"]["refused"] and kept["reason"]
    assert len(events_about(url, events.POLICY_REVISION, context)) == 3


def test_a_broken_file_at_start_serves_its_last_good_revision_as_an_event(
    tmp_path: Path,
) -> None:
    """The app's own start, in this process (the start is what is tested, not a server)."""
    config = config_for(tmp_path, audit={"keys_dir": str(tmp_path / "keys")})
    path = write_policy(tmp_path / "policies", "restored")
    good = load_policy(path, default_registry(), ["test-small"])
    run_on(config.database_url, lambda s: RevisionRepository(s).save(good))
    path.write_text("context: restored\nmodels: [broken\n")
    with running(config) as (_, state):
        assert state.services.policies.served_from("restored") == "database"
    (event,) = events_about(config.database_url, events.POLICY_REVISION, "restored")
    assert event["detail"]["source"] == "database"
    assert event["detail"]["revision"] == good.revision
    assert "restored.yaml" in event["detail"]["refused"]
    assert event["reason"] and event["actor"] == "gateway"


def _sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["plain-context"], max_retries=0)


def _eventually(found: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        items = found()
        if items:
            return items[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "no such event"
        time.sleep(0.1)


async def _token_digest(sessions: Sessions, reviewer_id: str) -> str:
    async with sessions() as session:
        row = await session.get(ReviewerRow, reviewer_id)
        assert row is not None
        return row.token_digest
