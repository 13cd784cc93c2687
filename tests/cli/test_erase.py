"""``gateway exchanges erase``: a person's request served against a running gateway's records,
and what the erased exchange looks like afterwards to everyone who reads it: the admin API,
the review API, the reviewer's page and an export say it was erased, never an empty answer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.audit import events
from gateway.db.models import AuditEntry
from tests.databases import in_a_thread, make_key, sessions_on
from tests.review.test_review_followups import ask, item_of, judged
from tests.reviewing import Reviewer
from tests.servers import Gateway, in_process
from tests.webpage import Browserless

CONTEXT, QUEUE = "plain-context", "oversight"  # every exchange of it is sampled for review


def erasure_events(gateway: Gateway, mention: str) -> list[dict[str, Any]]:
    """The erasure events (on any chain) whose leaf names ``mention``."""

    async def read() -> list[str]:
        async with sessions_on(gateway.database_url) as sessions, sessions() as session:
            found = await session.scalars(
                select(AuditEntry.leaf).where(AuditEntry.kind == events.ERASURE)
            )
            return [leaf for leaf in found if mention in leaf]

    leaves = in_a_thread(lambda: asyncio.run(read()))
    return [{**json.loads(leaf)["body"], "leaf": leaf} for leaf in leaves]


def test_erase_by_id_says_so_everywhere_the_record_is_read(
    gateway: Gateway, tmp_path: Path
) -> None:
    desk = Reviewer(gateway, "Erin", queues=((CONTEXT, QUEUE),))
    said = "forget me: I am Wilhelmina Quirk on 0176 5550101"
    exchange_id = ask(gateway, gateway.keys[CONTEXT], said)
    item = item_of(desk, CONTEXT, QUEUE, exchange_id)
    assert item["exchange"]["erased_at"] is None

    done = gateway.command(
        "exchanges", "erase", "--exchange", exchange_id,
        "--reason", "GDPR Art. 17 request #4711", "--by", "the data subject",
    )
    assert done.returncode == 0, done.stderr
    assert "erased the content of 1 exchanges" in done.stdout

    record = gateway.record(exchange_id)
    assert record["request_body"] is None and record["response_body"] is None
    assert record["erased_at"] is not None and record["status"] == "ok"
    (event,) = erasure_events(gateway, exchange_id)
    assert event["actor"].startswith("cli:")
    assert event["reason"] == "GDPR Art. 17 request #4711 (asked by the data subject)"
    assert event["detail"]["scope"] == {"by": "exchange id"}
    assert list(event["detail"]["exchanges"]) == [exchange_id]
    assert "Wilhelmina" not in event["leaf"] and "0176 5550101" not in event["leaf"]

    shown = desk.get(f"/items/{item['id']}").json()["exchange"]
    assert shown["erased_at"] == record["erased_at"] and shown["content_kept"] is False
    page = Browserless(gateway, desk.token)
    try:
        html = page.http.get(f"/items/{item['id']}").text
    finally:
        page.close()
    assert "The content of this exchange was erased" in html
    assert "The answer was erased with the rest of the content." in html
    assert "No answer was recorded" not in html and "Wilhelmina" not in html

    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    judged(desk, item)
    out = tmp_path / "export"
    exported = gateway.command(
        "export", "preferences", "--format", "trl", "--out", str(out),
        "--context", CONTEXT, "--since", since, "--allow-empty",
    )
    assert exported.returncode == 0, exported.stderr
    card = (out / "README.md").read_text()
    assert "1 judgment on 1 item whose exchange was erased since" in card, card
    assert exchange_id not in (out / "data.jsonl").read_text()


def test_erase_by_key_and_what_it_refuses(gateway: Gateway) -> None:
    key = make_key(gateway.database_url, CONTEXT, "erase by key")
    asked = [ask(gateway, key, f"mine {n}") for n in range(2)]
    key_id = gateway.record(asked[0])["key_id"]

    done = gateway.command("exchanges", "erase", "--key", key_id, "--reason", "account closed")
    assert done.returncode == 0, done.stderr
    assert "erased the content of 2 exchanges (key " in done.stdout
    assert all(gateway.record(a)["request_body"] is None for a in asked)
    (event,) = erasure_events(gateway, key_id)
    assert event["subject"] == key_id and event["detail"]["scope"] == {"key_id": key_id}
    assert event["detail"]["count"] == 2

    again = gateway.command("exchanges", "erase", "--key", key_id, "--reason", "twice")
    assert again.returncode == 1 and "nothing to erase" in again.stderr
    assert len(erasure_events(gateway, key_id)) == 1  # nothing erased, no event

    unknown = gateway.command("exchanges", "erase", "--exchange", "req_nope", "--reason", "x")
    assert unknown.returncode == 1 and "nothing to erase" in unknown.stderr
    both = gateway.command(
        "exchanges", "erase", "--exchange", asked[0], "--key", key_id, "--reason", "x"
    )
    assert both.returncode == 2 and "not both" in both.stderr
    neither = gateway.command("exchanges", "erase", "--reason", "x")
    assert neither.returncode == 2
    unreasoned = gateway.command("exchanges", "erase", "--key", key_id)
    assert unreasoned.returncode == 2 and "--reason" in unreasoned.stderr


def test_policy_check_warns_of_a_retention_under_six_months(tmp_path: Path) -> None:
    for context, days in (("short-kept", 30), ("long-kept", 365)):
        (tmp_path / f"{context}.yaml").write_text(
            f"context: {context}\npurpose: Retention warning.\nowner: t@situate.invalid\n"
            f"audience: tests\nmodels: {{allow: [demo-small]}}\n"
            f"record: {{content: full, retention_days: {days}}}\n"
        )
    checked = in_process(["policy", "check", str(tmp_path)], {})
    assert checked.returncode == 0, checked.stderr
    assert "ok  short-kept" in checked.stdout and "ok  long-kept" in checked.stdout
    (warning,) = [line for line in checked.stderr.splitlines() if "warning" in line]
    assert "short-kept.yaml" in warning and "retention_days is 30" in warning
    assert "Art. 19, 26(6)" in warning
