"""Issue 9's policy gaps: embeddings held to the input rules, streamed output blocks that keep
their refusal, a backend's own content filter recorded as the backend's, and statuses that
say what happened. Through the real openai SDK, against the gateway and the mock upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.servers import Gateway, Upstream, admin_key

NOTICE = "[automated assistant]"
REFUSAL = "That is not something I can share."

GAPS = """\
context: {context}
purpose: Close the policy gaps of issue 9.
owner: tests@situate.invalid
audience: the test suite
models:
  allow: [test-small]
  default: test-small
limits:
  max_input_tokens: 100
rules:
  - id: email-in
    stage: input
    why: Email addresses are not sent to the model.
    detect: {{pii: [email]}}
    action: redact
  - id: no-classified
    stage: input
    why: Classified material is refused.
    detect: {{keywords: [classified material]}}
    action: block
  - id: refuse-politely
    stage: input
    why: Refused with an answer in chat.
    detect: {{keywords: [refuse me politely]}}
    action: block
    block_as: answer
    message: I can only help with test matters.
  - id: flag-it
    stage: input
    why: Marked for review.
    detect: {{keywords: [flag me]}}
    action: flag
    review: triage
  - id: no-secret-recipe
    stage: output
    why: The secret recipe must never be revealed.
    detect: {{keywords: [secret recipe]}}
    action: block
    block_as: answer
    message: {refusal}
disclosure:
  notice: "{notice}"
record:
  content: {content}
review:
  sample_rate: 0
  queues:
    triage: {{guidelines: guidelines/triage.md}}
"""


def _loaded(gateway: Gateway, contexts: set[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listing = gateway.admin("/policies").json()
        if contexts <= {p["context"] for p in listing["data"]}:
            return
        assert time.monotonic() < deadline, listing
        time.sleep(0.1)


def _key(gateway: Gateway, context: str) -> str:
    return admin_key(gateway.url, context, "policy gaps")


@pytest.fixture(scope="module")
def gap_keys(gateway: Gateway) -> dict[str, str]:
    """Keys of three contexts with the same rules, recording full, redacted or no content."""
    contents = {"gaps-full": "full", "gaps-redacted": "redacted", "gaps-none": "none"}
    for context, content in contents.items():
        text = GAPS.format(context=context, content=content, notice=NOTICE, refusal=REFUSAL)
        (gateway.policies / f"{context}.yaml").write_text(text)
    _loaded(gateway, set(contents))
    return {context: _key(gateway, context) for context in contents}


@pytest.fixture
def gaps(gateway: Gateway, gap_keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=gap_keys["gaps-full"], max_retries=0) as sdk:
        yield sdk


def sdk_for(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)


def outcome(record: dict[str, Any], rule: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in record["decision"]["outcomes"] if o["rule"] == rule)
    return found


# --- embeddings -----------------------------------------------------------------------------


def test_embedding_input_is_redacted_before_it_goes_upstream(
    gateway: Gateway, upstream: Upstream, gaps: openai.OpenAI
) -> None:
    raw = gaps.embeddings.with_raw_response.create(
        model="test-small", input="write to jane.doe@example.com about it"
    )
    assert len(raw.parse().data) == 1
    request_id = raw.headers["x-request-id"]
    sent = upstream.seen(request_id)["body"]["input"]
    assert sent == "write to [email] about it"
    record = gateway.record(request_id)
    assert raw.headers["x-situate-decision"] == record["decision_id"]
    assert record["policy_revision"] == record["decision"]["policy_revision"]
    assert (record["decision"]["verdict"], record["decision"]["enforced"]) == ("redact", "redact")
    evidence = outcome(record, "email-in")["evidence"][0]
    assert (evidence["message"], evidence["start"], evidence["end"]) == (0, 9, 29)
    assert record["status"] == "ok"


def test_a_list_of_inputs_is_checked_item_by_item(
    gateway: Gateway, upstream: Upstream, gaps: openai.OpenAI
) -> None:
    raw = gaps.embeddings.with_raw_response.create(
        model="test-small", input=["nothing to see", "mail bob@example.org now", "flag me"]
    )
    assert len(raw.parse().data) == 3
    request_id = raw.headers["x-request-id"]
    sent = upstream.seen(request_id)["body"]["input"]
    assert sent == ["nothing to see", "mail [email] now", "flag me"]
    record = gateway.record(request_id)
    assert outcome(record, "email-in")["evidence"][0]["message"] == 1
    assert outcome(record, "flag-it")["evidence"][0]["message"] == 2
    assert record["decision"]["flagged"] == ["flag-it"]


@pytest.mark.parametrize("phrase", ["classified material", "refuse me politely"])
def test_an_embedding_input_block_is_a_policy_error_and_never_goes_upstream(
    gateway: Gateway, upstream: Upstream, gaps: openai.OpenAI, phrase: str
) -> None:
    # There is no answer to put a refusal in: a block on embeddings is always the error.
    with pytest.raises(openai.BadRequestError) as caught:
        gaps.embeddings.create(model="test-small", input=["fine", f"some {phrase} here"])
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "policy_violation"
    request_id = caught.value.response.headers["x-request-id"]
    assert request_id not in {e["request_id"] for e in upstream.requests()}
    record = gateway.record(request_id)
    assert record["status"] == "blocked"
    assert record["decision"]["enforced"] == "block"


def test_embedding_inputs_are_held_to_the_token_limit(
    gateway: Gateway, gaps: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gaps.embeddings.create(model="test-small", input=["word " * 100])
    body = caught.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"]) == ("limit_exceeded", "input")
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert record["status"] == "rejected"
    assert outcome(record, "limits.max_input_tokens")["enforced"] == "block"
    with pytest.raises(openai.BadRequestError) as tokens:
        gaps.embeddings.create(model="test-small", input=[list(range(101))])
    assert isinstance(tokens.value.body, dict) and tokens.value.body["code"] == "limit_exceeded"


def test_token_arrays_are_refused_where_input_rules_read_text(
    gateway: Gateway, upstream: Upstream, gaps: openai.OpenAI, plain: openai.OpenAI
) -> None:
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(openai.BadRequestError) as caught:
            gaps.embeddings.create(model="test-small", input=tokens)
        body = caught.value.body
        assert isinstance(body, dict)
        assert (body["code"], body["param"]) == ("unsupported_input", "input")
        request_id = caught.value.response.headers["x-request-id"]
        assert request_id not in {e["request_id"] for e in upstream.requests()}
        assert gateway.record(request_id)["status"] == "rejected"
    # A context with no input rules has nothing to read: token arrays pass through.
    raw = plain.embeddings.with_raw_response.create(model="test-small", input=[[1, 2], [3]])
    assert len(raw.parse().data) == 2
    assert upstream.seen(raw.headers["x-request-id"])["body"]["input"] == [[1, 2], [3]]


@pytest.mark.parametrize("as_list", [False, True])
def test_the_embedding_record_honours_record_content(
    gateway: Gateway, gap_keys: dict[str, str], as_list: bool
) -> None:
    text = "write to jane.doe@example.com about it"
    sent: str | list[str] = ["plain text", text] if as_list else text
    records = {}
    for context in ("gaps-full", "gaps-redacted", "gaps-none"):
        with sdk_for(gateway, gap_keys[context]) as sdk:
            raw = sdk.embeddings.with_raw_response.create(model="test-small", input=sent)
        records[context] = gateway.record(raw.headers["x-request-id"])
    assert records["gaps-full"]["request_body"]["input"] == sent  # as the client sent it
    kept = records["gaps-redacted"]["request_body"]["input"]
    assert "jane.doe" not in json.dumps(kept)
    assert (kept[-1] if as_list else kept) == "write to [email] about it"
    if as_list:
        assert kept[0] == "plain text"
    assert records["gaps-none"]["request_body"] is None
    for record in records.values():
        assert outcome(record, "email-in")["enforced"] == "redact"


# --- a streamed output block keeps its refusal ------------------------------------------------


def chat(
    sdk: openai.OpenAI, text: str, *, stream: bool, n: int = 1
) -> tuple[list[str], list[str | None], str]:
    """Each choice's text and finish_reason, and the request id, streamed or not."""
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        raw = sdk.chat.completions.with_raw_response.create(
            model="test-small", messages=messages, n=n
        )
        answer = raw.parse()
        texts = [c.message.content or "" for c in answer.choices]
        return texts, [c.finish_reason for c in answer.choices], raw.headers["x-request-id"]
    texts, finishes = [""] * n, [None] * n
    with sdk.chat.completions.with_streaming_response.create(
        model="test-small", messages=messages, n=n, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        for chunk in response.parse():
            for choice in chunk.choices:
                texts[choice.index] += choice.delta.content or ""
                finishes[choice.index] = choice.finish_reason or finishes[choice.index]
    return texts, list(finishes), request_id


@pytest.mark.parametrize("stream", [False, True])
def test_an_output_block_as_answer_carries_the_notice_and_the_refusal(
    gateway: Gateway, gaps: openai.OpenAI, stream: bool
) -> None:
    texts, finishes, request_id = chat(gaps, "RECIPE-FIRST please", stream=stream)
    assert texts == [f"{NOTICE}\n\n{REFUSAL}"]
    assert finishes == ["content_filter"]
    record = gateway.record(request_id)
    assert (record["status"], record["http_status"]) == ("blocked", 200)
    assert outcome(record, "no-secret-recipe")["enforced"] == "block"
    assert record["decision"]["disclosure"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_every_blocked_choice_gets_the_refusal(
    gateway: Gateway, gaps: openai.OpenAI, stream: bool
) -> None:
    texts, finishes, request_id = chat(gaps, "RECIPE-FIRST please", stream=stream, n=2)
    assert texts == [f"{NOTICE}\n\n{REFUSAL}"] * 2
    assert finishes == ["content_filter"] * 2
    assert gateway.record(request_id)["status"] == "blocked"


def test_a_stream_blocked_after_some_text_ends_with_the_refusal(gaps: openai.OpenAI) -> None:
    # The echo is long enough before the rule's phrase (the keyword check holds back 120
    # characters) that the stream releases its greeting before the phrase arrives.
    ask = "tell me a long story about bread, ovens and flour, the people who bake, and then "
    (text,), (finish,), _ = chat(gaps, ask + "the secret recipe now", stream=True)
    assert text.startswith(f"{NOTICE}\n\nHello!")
    assert text.endswith(f"\n\n{REFUSAL}")
    assert "secret recipe" not in text
    assert finish == "content_filter"


# --- the backend's own content filter -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("context", ["plain-context", "test-context"])
def test_a_backends_content_filter_is_recorded_as_the_backends(
    gateway: Gateway, stream: bool, context: str
) -> None:
    with sdk_for(gateway, gateway.keys[context]) as sdk:
        (text,), (finish,), request_id = chat(sdk, "UPSTREAM-FILTER this", stream=stream)
    assert text == "I started to answer but"
    assert finish == "content_filter"  # passed on as the backend gave it
    record = gateway.record(request_id)
    assert (record["status"], record["http_status"]) == ("upstream_filtered", 200)
    assert record["error_type"] == "upstream_content_filter"
    assert "backend" in record["error_message"]
    assert record["decision"]["verdict"] == "allow"
    assert not any(o["stage"] == "output" for o in record["decision"]["outcomes"])


# --- statuses that say what happened --------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_policy_refusals_are_blocked_whatever_their_shape(
    gateway: Gateway, gaps: openai.OpenAI, stream: bool
) -> None:
    (text,), _, answered = chat(gaps, "please refuse me politely", stream=stream)
    assert text == "I can only help with test matters."
    record = gateway.record(answered)
    assert (record["status"], record["http_status"]) == ("blocked", 200)
    with pytest.raises(openai.BadRequestError) as caught:
        gaps.chat.completions.create(
            model="test-small",
            messages=[{"role": "user", "content": "the classified material"}],
            stream=stream,
        )
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert (record["status"], record["http_status"]) == ("blocked", 400)


def test_authentication_validation_and_limits_stay_rejected(
    gateway: Gateway, gaps: openai.OpenAI
) -> None:
    ids = []
    unknown = httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"authorization": "Bearer sk-gw-nope"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert unknown.status_code == 401
    ids.append(unknown.headers["x-request-id"])
    bad_role = {"role": "robot", "content": "hi"}
    too_long = {"role": "user", "content": "x" * 500}
    for message in (bad_role, too_long):
        with pytest.raises(openai.BadRequestError) as caught:
            gaps.chat.completions.create(
                model="test-small",
                messages=[message],  # type: ignore[list-item]
            )
        ids.append(caught.value.response.headers["x-request-id"])
    assert [gateway.record(i)["status"] for i in ids] == ["rejected"] * 3


def test_the_status_filters_know_blocked(gateway: Gateway, gaps: openai.OpenAI) -> None:
    (_,), _, request_id = chat(gaps, "please refuse me politely", stream=False)
    gateway.record(request_id)
    listed = gateway.admin("/exchanges", status="blocked", context="gaps-full", limit=200).json()
    assert request_id in {row["id"] for row in listed["data"]}
    assert {row["status"] for row in listed["data"]} == {"blocked"}
    cli = gateway.command("exchanges", "list", "--status", "blocked", "--context", "gaps-full")
    assert cli.returncode == 0, cli.stderr
    assert request_id in cli.stdout
