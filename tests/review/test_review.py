"""Human review end to end: traffic through the SDK flags exchanges; reviewers claim and judge
them through the API; leads adjudicate; the verdicts come back as candidate test cases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.reviewing import Reviewer, flag, item_of, judgment, wait_for_item, wait_waiting
from tests.servers import Gateway


def _alternative_exchange(gateway: Gateway, item_id: str) -> dict[str, Any]:
    rows = gateway.admin("/exchanges", context="test-context", limit=500).json()["data"]
    for row in rows:
        if row["key_id"] is None and row["requested_model"] == "test-large":
            record = gateway.record(row["id"])
            if record["decision"].get("made_for") == f"review item {item_id}":
                return record
    raise AssertionError(f"no exchange made for review item {item_id}")


def test_a_flagged_exchange_is_claimed_judged_and_traced(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    alice = Reviewer(gateway, "Alice", queues=(("test-context", "triage"),))
    outsider = Reviewer(gateway, "Olga", queues=(("plain-context", "oversight"),))
    exchange_id = flag(client)
    item = wait_for_item(alice, "test-context", "triage")
    while item["exchange_id"] != exchange_id:  # earlier tests may have flagged others
        assert alice.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 201
        item = wait_for_item(alice, "test-context", "triage")
    assert (item["reason"], item["rule_ids"]) == ("flagged", ["flag-it"])
    # Another allowed model answered the same request, for the reviewer to compare.
    assert item["alternative"]["model"] == "test-large"
    assert item["alternative"]["content"].endswith("You said: please flag me")
    # It was asked through the request path: an exchange on record like any other, made for
    # this item, under no caller's key, and not itself sent to review.
    made_for = _alternative_exchange(gateway, item["id"])
    assert made_for["key_id"] is None and made_for["requested_model"] == "test-large"
    assert made_for["status"] == "ok" and made_for["decision"]["policy_revision"]
    assert made_for["request_body"]["messages"][0]["content"] == "please flag me"
    assert item["exchange"]["request"]["messages"][0]["content"] == "please flag me"
    assert item["exchange"]["decision"]["flagged"] == ["flag-it"]
    assert item["guideline"]["text"].startswith("# Triage")
    assert item["context_info"]["purpose"].startswith("Exercise every policy action")

    # Nobody outside the queue sees it, by claim or by URL.
    assert outsider.post("/queues/test-context/triage/claim").status_code == 404
    assert outsider.get(f"/items/{item['id']}").status_code == 404

    wrong = alice.post(
        f"/items/{item['id']}/judgments", judgment(item, guideline_revision="0" * 64)
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "guideline_revision"
    unacknowledged = alice.post(
        f"/items/{item['id']}/judgments", judgment(item, guideline_acknowledged=False)
    )
    assert unacknowledged.status_code == 400

    made = alice.post(
        f"/items/{item['id']}/judgments",
        judgment(
            item,
            rule_verdicts={"flag-it": "false_positive"},
            verdict="acceptable",
            preferred="original",
            rewrite=None,
        ),
    )
    assert made.status_code == 201, made.text
    first = made.json()
    assert (first["kind"], first["guideline_revision"]) == ("human", item["guideline_revision"])
    again = alice.post(f"/items/{item['id']}/judgments", judgment(item))
    assert again.status_code == 403  # the claim is spent: judgments are not edited

    corrected = alice.post(
        f"/judgments/{first['id']}/corrections",
        judgment(
            item,
            rule_verdicts={"flag-it": "false_positive"},
            verdict="acceptable",
            rationale="Second look: still fine.",
            preferred="original",
            rewrite=None,
        ),
    )
    assert corrected.status_code == 201 and corrected.json()["supersedes"] == first["id"]
    shown = alice.get(f"/items/{item['id']}").json()
    assert shown["state"] == "done"
    assert [j["id"] for j in shown["judgments"]] == [first["id"], corrected.json()["id"]]

    other_lead = Reviewer(gateway, "Lars", "lead", queues=(("plain-context", "oversight"),))
    assert other_lead.get("/candidate-tests", context="test-context").json()["cases"] == []
    lead = Reviewer(gateway, "Lena", "lead", queues=(("test-context", "triage"),))
    cases = lead.get("/candidate-tests", context="test-context").json()["cases"]
    mine = [c for c in cases if exchange_id in c["name"]]
    assert mine and mine[0]["input"] == "please flag me"
    assert mine[0]["expect"] == {"not_fires": ["flag-it"]}


def test_skip_escalate_and_lead_adjudication(gateway: Gateway, client: openai.OpenAI) -> None:
    bob = Reviewer(gateway, "Bob", queues=(("test-context", "triage"),))
    lead = Reviewer(gateway, "Lee", "lead", queues=(("test-context", "triage"),))
    flag(client, "flag me again please")
    item = wait_for_item(bob, "test-context", "triage")
    chosen = bob.post(
        f"/items/{item['id']}/judgments", judgment(item, preferred="alternative", rewrite=None)
    )
    assert chosen.status_code == 201
    assert chosen.json()["rewrite"] == item["alternative"]["content"]
    flag(client, "flag me once more please")
    item = wait_for_item(bob, "test-context", "triage")
    assert bob.post(f"/items/{item['id']}/skip").json()["claimed_by"] is None
    item = wait_for_item(bob, "test-context", "triage")
    assert lead.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 403
    escalated = bob.post(f"/items/{item['id']}/escalate").json()
    assert escalated["state"] == "escalated"
    assert bob.get("/adjudication").status_code == 403
    waiting = [i["id"] for i in lead.get("/adjudication").json()["data"]]
    assert item["id"] in waiting
    adjudicated = lead.post(f"/items/{item['id']}/judgments", judgment(item))
    assert adjudicated.status_code == 201 and adjudicated.json()["purpose"] == "adjudication"
    assert lead.get(f"/items/{item['id']}").json()["state"] == "done"


def test_two_reviewers_blind_then_disagreement_goes_to_a_lead(
    gateway: Gateway, client: openai.OpenAI
) -> None:
    queue = (("test-context", "quality"),)
    carol, dan = Reviewer(gateway, "Carol", queues=queue), Reviewer(gateway, "Dan", queues=queue)
    lead = Reviewer(gateway, "Lou", "lead", queues=queue)
    flag(client, "I feel so sad and lonely today")  # echoed back: a feelings claim
    first = wait_for_item(carol, "test-context", "quality")
    assert first["rule_ids"] == ["human-likeness"] and first["reviewers_needed"] == 2
    assert carol.post(f"/items/{first['id']}/judgments", judgment(first)).status_code == 201
    assert dan.claim("test-context", "quality") is not None
    second = dan.get(f"/items/{first['id']}").json()
    assert second["judgments"] == []  # blind: Carol's judgment is not shown to Dan
    made = dan.post(
        f"/items/{first['id']}/judgments",
        judgment(
            second,
            verdict="acceptable",
            rule_verdicts={"human-likeness": "false_positive"},
            preferred="original",
            rewrite=None,
        ),
    )
    assert made.status_code == 201
    assert lead.get(f"/items/{first['id']}").json()["state"] == "adjudication"
    assert len(lead.get(f"/items/{first['id']}").json()["judgments"]) == 2
    agreement = lead.get("/agreement", context="test-context", queue="quality").json()
    assert agreement["items_with_several_reviewers"] >= 1
    assert agreement["verdict_alpha"] is not None and agreement["verdict_alpha"] < 1


def test_unflagged_traffic_is_sampled_for_oversight(gateway: Gateway, plain: openai.OpenAI) -> None:
    erin = Reviewer(gateway, "Erin", queues=(("plain-context", "oversight"),))
    raw = plain.chat.completions.with_raw_response.create(
        model="test-small", messages=[{"role": "user", "content": "an ordinary question"}]
    )
    assert raw.parse().choices[0].message.content
    item = wait_for_item(erin, "plain-context", "oversight")
    assert (item["reason"], item["rule_ids"]) == ("sampled", [])


def test_many_claimers_never_get_the_same_item(gateway: Gateway, client: openai.OpenAI) -> None:
    queue = (("test-context", "triage"),)
    claimers = [Reviewer(gateway, f"Claimer {i}", queues=queue) for i in range(8)]
    for i in range(16):
        flag(client, f"flag me number {i}")
    wait_waiting(claimers[0], "test-context", "triage", len(claimers))

    async def claim_all() -> list[str]:
        """Every claimer claims at the same moment and keeps what it got."""
        async with httpx.AsyncClient(base_url=f"{gateway.url}/review", timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/queues/test-context/triage/claim",
                        headers={"authorization": f"Bearer {r.token}"},
                    )
                    for r in claimers
                )
            )
        return [r.json()["id"] for r in responses if r.status_code == 200]

    for _ in range(3):  # three rounds: claim all at once, check, give everything back
        held = asyncio.run(claim_all())
        assert len(held) == len(claimers), "every claimer got an item"
        assert len(set(held)) == len(held), "no item was handed to two claimers at once"
        for reviewer in claimers:
            mine = reviewer.post("/queues/test-context/triage/claim").json()["id"]
            assert reviewer.post(f"/items/{mine}/skip").status_code == 200


@pytest.mark.parametrize("fmt", ["trl", "openai", "hh", "kto"])
def test_export_writes_the_format_its_provenance_and_a_card(
    gateway: Gateway, client: openai.OpenAI, tmp_path: Path, fmt: str
) -> None:
    # An item of its own, judged with a rewrite (every format exports it): the export never
    # depends on what other tests left.
    judge = Reviewer(gateway, f"Exporter {fmt}", queues=(("test-context", "triage"),))
    flagged = flag(client, f"flag me for the {fmt} export")
    item = item_of(judge, "test-context", "triage", flagged)
    assert judge.post(f"/items/{item['id']}/judgments", judgment(item)).status_code == 201
    out = tmp_path / fmt
    done = gateway.command(
        "export",
        "preferences",
        "--format",
        fmt,
        "--context",
        "test-context",
        "--out",
        str(out),
        "--by",
        "tests",
    )
    assert done.returncode == 0, done.stderr
    import json

    data = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    assert data and len(data) == len(provenance)
    keys = {
        "trl": {"prompt", "chosen", "rejected"},
        "openai": {"input", "preferred_output", "non_preferred_output"},
        "hh": {"chosen", "rejected"},
        "kto": {"prompt", "completion", "label"},
    }[fmt]
    assert all(set(row) == keys for row in data)
    assert flagged in {line["exchange_id"] for line in provenance}
    for line in provenance:
        record = gateway.record(line["exchange_id"])
        assert record["context"] == "test-context"
        assert set(line["rule_ids"]) <= {o["rule"] for o in record["decision"]["outcomes"]}
        assert line["guideline_revision"] and line["judged_by"] in ("human", "model")
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "Who are the annotators?" in card
    assert "Alice" not in card and "Acme Labelling" in card
