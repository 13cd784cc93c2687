"""Follow-ups of issue 9's review loop: an export says a judgment was redacted when the policy
revision that recorded its exchange kept content redacted (not the current one); judgments on
exchanges whose records kept no content, and on embeddings requests, are counted in the card
and the API's ``left_out`` with the reason, never dropped silently; and an embeddings request
in a review queue shows the inputs the rules checked, with their highlights, says there is no
answer to judge, and is offered no alternative. Through the real openai SDK, the review API,
the page and ``gateway export preferences``, against the gateway and the mock upstream."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.export.test_export_card import holes
from tests.policy.test_policy_gaps import _key, _loaded
from tests.records.test_redaction import marked
from tests.reviewing import Reviewer, judgment
from tests.servers import Gateway, Upstream
from tests.webpage import Browserless

EMAIL = "jane.doe@example.com"

POLICY = """\
context: {context}
purpose: Follow up issue 9's review loop.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small, test-large]
  default: test-small
rules:
  - id: email-in
    stage: input
    why: Email addresses are not sent to the model.
    detect: {{pii: [email]}}
    action: redact
  - id: flag-it
    stage: input
    why: Marked for review.
    detect: {{keywords: [flag me]}}
    action: flag
    review: kept
  - id: refuse-it
    stage: input
    why: Refused with an error, and reviewed.
    detect: {{keywords: [refuse me]}}
    action: block
    review: kept
  - id: flag-vectors
    stage: input
    why: Inputs to embed that a reviewer should see.
    detect: {{keywords: [flag vectors]}}
    action: flag
    review: vectors
record:
  content: {content}
review:
  sample_rate: {sample_rate}
  default_queue: sampled
  queues:
    kept: {{guidelines: guidelines/triage.md}}
    vectors: {{guidelines: guidelines/triage.md}}
    sampled: {{guidelines: guidelines/triage.md}}
"""

CONTEXTS = {
    # context: (record.content, review.sample_rate)
    "fup-full": ("full", 0),
    "fup-none": ("none", 0),
    "fup-rev": ("redacted", 0),
    "fup-sample": ("full", 1),
    "fup-redacted": ("redacted", 0),
}


def policy_text(context: str, content: str, sample_rate: float = 0) -> str:
    return POLICY.format(context=context, content=content, sample_rate=sample_rate)


@pytest.fixture(scope="module")
def keys(gateway: Gateway) -> dict[str, str]:
    for context, (content, rate) in CONTEXTS.items():
        (gateway.policies / f"{context}.yaml").write_text(policy_text(context, content, rate))
    _loaded(gateway, set(CONTEXTS))
    return {context: _key(gateway, context) for context in CONTEXTS}


def ask(gateway: Gateway, key: str, text: str) -> str:
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=[{"role": "user", "content": text}]
        )
    exchange_id: str = raw.headers["x-request-id"]
    gateway.record(exchange_id)  # its review item is written with it
    return exchange_id


def refused(gateway: Gateway, key: str, text: str) -> str:
    """A request an input rule refuses with an error: the model never answers it."""
    with (
        openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        sdk.chat.completions.create(
            model="test-small", messages=[{"role": "user", "content": text}]
        )
    exchange_id: str = caught.value.response.headers["x-request-id"]
    gateway.record(exchange_id)
    return exchange_id


def embed(gateway: Gateway, key: str, inputs: list[str]) -> str:
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as sdk:
        raw = sdk.embeddings.with_raw_response.create(model="test-small", input=inputs)
    exchange_id: str = raw.headers["x-request-id"]
    gateway.record(exchange_id)
    return exchange_id


def item_of(reviewer: Reviewer, context: str, queue: str, exchange_id: str) -> dict[str, Any]:
    """Claim the queue's items until this exchange's comes up (others are given back)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        item = reviewer.claim(context, queue)
        if item is not None and item["exchange_id"] == exchange_id:
            return item
        if item is not None:
            assert reviewer.post(f"/items/{item['id']}/skip").status_code == 200
        time.sleep(0.1)
    raise AssertionError(f"no item for {exchange_id} in {context}/{queue}")


def judged(reviewer: Reviewer, item: dict[str, Any], **changes: Any) -> None:
    made = reviewer.post(f"/items/{item['id']}/judgments", judgment(item, **changes))
    assert made.status_code == 201, made.text


def export(gateway: Gateway, out: Path, *args: str) -> tuple[int, str, str]:
    done = gateway.command("export", "preferences", "--format", "trl", "--out", str(out), *args)
    return done.returncode, (out / "README.md").read_text(), done.stderr


def section(card: str, title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", card, flags=re.S | re.M)
    assert found, card
    return found.group(1)


def serving(gateway: Gateway, context: str, other_than: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gateway.admin("/policies").json()["data"]
        revision = next(str(p["revision"]) for p in rows if p["context"] == context)
        if revision != other_than:
            return revision
        time.sleep(0.1)
    raise AssertionError(f"the edited policy of {context} was not loaded")


def page_of(gateway: Gateway, reviewer: Reviewer, item_id: str) -> str:
    session = Browserless(gateway, reviewer.token)
    try:
        shown = session.http.get(f"/items/{item_id}")
        assert shown.status_code == 200, shown.text
        return shown.text
    finally:
        session.close()


# --- 1. redacted, as the revision that recorded the exchange kept it --------------------------


def test_an_export_says_redacted_as_the_recording_revision_kept_it(
    gateway: Gateway, keys: dict[str, str], tmp_path: Path
) -> None:
    desk = Reviewer(gateway, "Rhea", queues=(("fup-rev", "kept"),))
    first = item_of(desk, "fup-rev", "kept", ask(gateway, keys["fup-rev"], f"flag me {EMAIL}"))
    assert first["exchange"]["record"]["content"] == "redacted"
    judged(desk, first)
    path = gateway.policies / "fup-rev.yaml"
    path.write_text(policy_text("fup-rev", "full"))
    serving(gateway, "fup-rev", first["policy_revision"])
    later = item_of(desk, "fup-rev", "kept", ask(gateway, keys["fup-rev"], f"flag me {EMAIL}"))
    assert later["exchange"]["record"]["content"] == "full"
    judged(desk, later)

    code, card, stderr = export(gateway, tmp_path / "rev", "--context", "fup-rev")
    assert code == 0, stderr
    lines = (tmp_path / "rev" / "data.jsonl").read_text().splitlines()
    prompts = sorted(json.loads(line)["prompt"][-1]["content"] for line in lines)
    assert prompts == ["flag me [email]", f"flag me {EMAIL}"]  # recorded redacted, then full
    sensitive = section(card, "Personal and Sensitive Information")
    # The first exchange's revision kept it redacted, whatever the policy says now.
    assert "1 (50.0%) judgments come from exchanges whose records were kept redacted" in sensitive
    assert "`fup-rev`" in sensitive
    assert holes(card) == []


# --- 2. no content kept: counted, with the reason ---------------------------------------------


def test_judgments_without_content_are_counted_as_left_out(
    gateway: Gateway, keys: dict[str, str], tmp_path: Path
) -> None:
    desk = Reviewer(gateway, "Nell", queues=(("fup-full", "kept"), ("fup-none", "kept")))
    kept = item_of(desk, "fup-full", "kept", ask(gateway, keys["fup-full"], "flag me, kept"))
    judged(desk, kept)
    for _ in range(2):
        bare = item_of(desk, "fup-none", "kept", ask(gateway, keys["fup-none"], "flag me"))
        assert bare["exchange"]["content_kept"] is False
        judged(desk, bare)
    unanswered = item_of(desk, "fup-full", "kept", refused(gateway, keys["fup-full"], "refuse me"))
    judged(desk, unanswered, preferred=None, rewrite=None)

    code, card, stderr = export(gateway, tmp_path / "kept", "--queue", "kept")
    assert code == 0, stderr
    written = (tmp_path / "kept" / "data.jsonl").read_text()
    assert "flag me, kept" in written
    summary = section(card, "Dataset summary")
    assert (
        "- Left out: 2 judgments on 2 items whose exchanges were recorded without content"
        " (`record.content: none`), so there is no prompt or answer to export."
    ) in summary, summary
    assert (
        "- Left out: 1 judgment on 1 item whose exchange was not answered by the model"
    ) in summary, summary
    assert holes(card) == []
    assert "2 judgments on 2 items" in stderr and "no prompt or answer" in stderr

    admin = Reviewer(gateway, "Exporting Ada", role="admin")
    made = admin.post("/exports", {"format": "trl", "queue": "kept"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["left_out_reasons"]["no_content"] == {"judgments": 2, "items": 2}
    assert body["left_out_reasons"]["no_answer"] == {"judgments": 1, "items": 1}
    assert body["left_out"]["judgments"] >= 2 and body["left_out"]["items"] >= 2


# --- 3. embeddings requests in review ---------------------------------------------------------


def test_an_embeddings_item_shows_its_inputs_and_no_answer_to_judge(
    gateway: Gateway, upstream: Upstream, keys: dict[str, str]
) -> None:
    desk = Reviewer(gateway, "Vera", queues=(("fup-full", "vectors"), ("fup-full", "kept")))
    inputs = ["a plain sentence", f"please flag vectors and mail {EMAIL}"]
    item = item_of(desk, "fup-full", "vectors", embed(gateway, keys["fup-full"], inputs))
    exchange = item["exchange"]
    assert exchange["endpoint"] == "embeddings"
    assert exchange["inputs"] == inputs  # the texts the input rules checked, as recorded
    assert item["alternative"] is None
    assert "no alternative" in item["alternative_note"].lower()
    assert "embeddings" in item["alternative_note"]
    # No alternative was asked for it, while a chat item of the same context has one.
    assert [e for e in upstream.requests() if e["request_id"] == item["id"]] == []
    chat = item_of(desk, "fup-full", "kept", ask(gateway, keys["fup-full"], "flag me too"))
    assert chat["alternative"]["model"] == "test-large" and chat["alternative_note"] is None

    html = page_of(gateway, desk, item["id"])
    assert 'id="embeddings-note"' in html
    note = re.search(r'id="embeddings-note">(.*?)</p>', html, flags=re.S)
    assert note and "embeddings request" in note.group(1)
    assert "no answer to judge" in note.group(1)
    assert "a plain sentence" in html
    assert marked(html, "flag-vectors") == ["flag vectors"]
    assert marked(html, "email-in") == [EMAIL]
    assert '<q class="span">flag vectors</q>' in html  # the rule list's "Found:"
    assert "No answer was recorded" not in html
    assert "Preferred answer" not in html  # there is no answer to prefer
    assert 'id="alternative-note"' in html


def test_a_redacted_embeddings_item_places_the_kept_spans_past_the_removals(
    gateway: Gateway, keys: dict[str, str]
) -> None:
    desk = Reviewer(gateway, "Rina", queues=(("fup-redacted", "vectors"),))
    inputs = [f"mail {EMAIL} and please flag vectors"]
    item = item_of(desk, "fup-redacted", "vectors", embed(gateway, keys["fup-redacted"], inputs))
    assert item["exchange"]["inputs"] == ["mail [email] and please flag vectors"]
    html = page_of(gateway, desk, item["id"])
    assert "This record is redacted" in html
    # The evidence's offsets are into the input as sent; the e-mail address before it was
    # removed, so the kept span is moved to where it stands in the recorded text.
    assert marked(html, "flag-vectors") == ["flag vectors"]
    assert marked(html, "email-in") == ["[email]"]
    assert EMAIL not in html


def test_an_export_leaves_embeddings_out_and_says_why(
    gateway: Gateway, keys: dict[str, str], tmp_path: Path
) -> None:
    desk = Reviewer(gateway, "Emil", queues=(("fup-full", "vectors"), ("fup-full", "kept")))
    vector = embed(gateway, keys["fup-full"], ["flag vectors once"])
    judged(desk, item_of(desk, "fup-full", "vectors", vector), preferred=None, rewrite=None)
    judged(desk, item_of(desk, "fup-full", "kept", ask(gateway, keys["fup-full"], "flag me")))

    code, card, stderr = export(gateway, tmp_path / "all", "--context", "fup-full")
    assert code == 0, stderr
    rows = (tmp_path / "all" / "data.jsonl").read_text()
    assert "flag vectors once" not in rows
    summary = section(card, "Dataset summary")
    found = re.search(
        r"- Left out: (\d+) judgments? on (\d+) items? that (?:is an embeddings request|are"
        r" embeddings requests) \(`/v1/embeddings`\), which ha(?:s|ve) no answer to prefer\.",
        summary,
    )
    assert found, summary
    assert int(found.group(1)) >= 1
    assert holes(card) == []

    args = ("--context", "fup-full", "--queue", "vectors")
    code, card, stderr = export(gateway, tmp_path / "vectors", *args)
    assert code == 1
    assert "Nothing was exported" in card and "none can be written in any format" in stderr
    assert "embeddings request" in stderr
    assert "`/v1/embeddings`" in card and holes(card) == []


def test_embeddings_are_not_sampled_into_review(gateway: Gateway, keys: dict[str, str]) -> None:
    desk = Reviewer(gateway, "Sami", queues=(("fup-sample", "sampled"),))
    vector = embed(gateway, keys["fup-sample"], ["nothing to flag here"])
    chat = ask(gateway, keys["fup-sample"], "nothing to flag here either")
    seen: set[str] = set()
    # Every item of the queue once: a skipped item comes back last, so a repeat means all seen.
    while (item := desk.claim("fup-sample", "sampled")) is not None:
        if item["exchange_id"] in seen:
            break
        seen.add(item["exchange_id"])
        assert desk.post(f"/items/{item['id']}/skip").status_code == 200
    assert chat in seen  # answered chat traffic is sampled at this rate
    assert vector not in seen  # an embeddings request has no answer to sample for review
