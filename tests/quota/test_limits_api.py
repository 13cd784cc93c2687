"""Limits through the real openai SDK against a gateway process: the 429s and their headers,
the SDK's own retries obeying them, streams holding a slot, tokens settled from the backend's
usage, spend from the price table, and usage read back (CLI and admin API, both databases)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from tests.quota.fixtures import PRICE_IN, PRICE_OUT, minute_left, new_key, usage, usage_when
from tests.servers import Gateway

ASK = [{"role": "user", "content": "What is the capital of France?"}]
LONG = [{"role": "user", "content": "LONG-STREAM please"}]


def sdk(gateway: Gateway, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=retries)


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="test-small", messages=ASK, **extra
    )


def test_a_full_window_is_a_429_with_openais_headers(limited: Gateway) -> None:
    minute_left(10)
    _, key = new_key(limited.url, requests_per_minute=2)
    with sdk(limited, key) as client:
        first, second = ask(client), ask(client)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        assert first.headers["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as refused:
            ask(client)
    response = refused.value.response
    assert response.status_code == 429
    assert refused.value.code == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in response.headers
    assert response.headers["x-situate-decision"]  # the decision it was refused under
    record = limited.record(response.headers["x-request-id"])
    assert record["status"] == "rejected" and record["error_type"] == "rate_limit_exceeded"
    assert record["http_status"] == 429
    rules = [o["rule"] for o in record["decision"]["outcomes"]]
    assert rules == ["key.requests_per_minute"]
    findings = limited.admin("/findings", rule="key.requests_per_minute").json()["data"]
    assert record["id"] in [f["exchange_id"] for f in findings]


def test_a_contexts_limit_is_shared_by_its_keys(limited: Gateway) -> None:
    minute_left(10)
    # only this test uses the context, whose window is this gateway's: 3 a minute in all
    keys = [new_key(limited.url, "rated-context")[1] for _ in range(2)]
    passed, refused = 0, []
    for index in range(6):
        with sdk(limited, keys[index % 2]) as client:
            try:
                ask(client)
                passed += 1
            except openai.RateLimitError as exc:
                refused.append(exc.message)
    assert passed == 3 and len(refused) == 3
    assert all("this deployment context" in message for message in refused)


def test_the_sdk_retries_a_full_stream_slot_after_retry_after(limited: Gateway) -> None:
    key_id, key = new_key(limited.url, concurrent_streams=1)
    opened = threading.Event()
    done: list[str] = []

    def hold() -> None:
        with sdk(limited, key) as client:
            stream = client.chat.completions.create(model="test-small", messages=LONG, stream=True)
            for chunk in stream:
                opened.set()
                done.extend(c.delta.content or "" for c in chunk.choices)

    holder = threading.Thread(target=hold)
    holder.start()
    assert opened.wait(10)
    with sdk(limited, key) as client, pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="test-small", messages=ASK, stream=True)
    assert refused.value.response.headers["retry-after"] == "1"
    assert "1 concurrent streams" in refused.value.message
    started = time.monotonic()
    with sdk(limited, key, retries=4) as client:  # the SDK waits as retry-after says
        stream = client.chat.completions.create(model="test-small", messages=ASK, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    waited = time.monotonic() - started
    holder.join(10)
    assert "Paris" in text and done
    assert waited >= 0.9  # it did not get in until the first stream's slot was freed
    rows = usage_when(limited, lambda rows: bool(rows) and rows[0]["ok"] == 2, key=key_id)
    assert rows[0]["limited"] >= 2 and rows[0]["ok"] == 2


def test_a_spent_budget_says_do_not_retry_and_the_sdk_does_not(limited: Gateway) -> None:
    key_id, key = new_key(limited.url, tokens_per_day=5)  # less than one question's estimate
    with sdk(limited, key, retries=3) as client, pytest.raises(openai.RateLimitError) as refused:
        ask(client)
    response = refused.value.response
    assert refused.value.code == "budget_exceeded"
    assert response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) > 0
    limited.record(response.headers["x-request-id"])
    assert usage(limited, key=key_id)[0]["requests"] == 1  # no retry reached the gateway


def test_tokens_are_settled_from_the_backends_usage(limited: Gateway) -> None:
    minute_left(10)
    _, key = new_key(limited.url, tokens_per_minute=10_000)
    with sdk(limited, key) as client:
        first = ask(client, max_tokens=50)
        used = limited.record(first.headers["x-request-id"])["total_tokens"]
        assert used and used == first.parse().usage.total_tokens
        estimate = -(-len(ASK[0]["content"]) // 4) + 50
        assert first.headers["x-ratelimit-remaining-tokens"] == str(10_000 - estimate)
        second = ask(client, max_tokens=50)
    # the first request's estimate gave way to what the backend reported
    assert second.headers["x-ratelimit-remaining-tokens"] == str(10_000 - used - estimate)


def test_streams_are_settled_and_priced_too(limited: Gateway) -> None:
    _, key = new_key(limited.url, tokens_per_day=100_000, concurrent_streams=3)
    with sdk(limited, key) as client:
        stream = client.chat.completions.with_raw_response.create(
            model="test-small", messages=ASK, stream=True
        )
        for _ in stream.parse():
            pass
    assert stream.headers["x-ratelimit-limit-tokens"] == "100000"  # tokens_per_day: the tightest
    assert "x-ratelimit-limit-requests" not in stream.headers  # no request limit is set
    record = limited.record(stream.headers["x-request-id"])
    assert record["prompt_tokens"] and record["completion_tokens"]
    expected = (record["prompt_tokens"] * PRICE_IN + record["completion_tokens"] * PRICE_OUT) / 1e6
    assert record["cost"] == pytest.approx(expected) and record["currency"] == "EUR"
    with sdk(limited, key) as client:
        after = ask(client)
    # the stream's estimate gave way to the usage its last chunk reported
    estimate = -(-len(ASK[0]["content"]) // 4)
    left = 100_000 - record["total_tokens"] - estimate
    assert after.headers["x-ratelimit-remaining-tokens"] == str(left)


def test_spend_from_the_price_table_and_a_spend_budget(limited: Gateway) -> None:
    key_id, key = new_key(limited.url, spend_per_day=0.01)
    with sdk(limited, key) as client:
        first = ask(client)
        record = limited.record(first.headers["x-request-id"])
        cost = (record["prompt_tokens"] * PRICE_IN + record["completion_tokens"] * PRICE_OUT) / 1e6
        assert record["cost"] == pytest.approx(cost) and cost > 0.01
        with pytest.raises(openai.RateLimitError) as refused:
            ask(client)
    assert refused.value.code == "budget_exceeded"
    assert "spend budget per day" in refused.value.message
    rows = usage(limited, key=key_id)
    assert rows[0]["spend"] == pytest.approx(cost) and rows[0]["currency"] == "EUR"


def test_embeddings_are_limited_too(limited: Gateway) -> None:
    minute_left(10)
    _, key = new_key(limited.url, requests_per_minute=1)
    with sdk(limited, key) as client:
        client.embeddings.create(model="test-small", input="hello")
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="test-small", input="hello")


def test_a_keys_limits_are_changed_through_the_admin_api(limited: Gateway) -> None:
    minute_left(10)
    key_id, key = new_key(limited.url)
    changed = httpx.put(
        f"{limited.url}/admin/keys/{key_id}/limits",
        json={"requests_per_minute": 1},
        headers={"authorization": "Bearer admin-test-token"},
    )
    assert changed.status_code == 200, changed.text
    listed = [k for k in limited.admin("/keys").json()["data"] if k["id"] == key_id]
    assert listed[0]["limits"] == {"requests_per_minute": 1}
    with sdk(limited, key) as client:
        ask(client)
        with pytest.raises(openai.RateLimitError):
            ask(client)


def test_usage_by_cli_and_admin_api(limited: Gateway) -> None:
    key_id, key = new_key(limited.url, tokens_per_day=1_000_000)
    with sdk(limited, key) as client:
        answers = [ask(client) for _ in range(3)]
        embedded = client.embeddings.with_raw_response.create(model="test-large", input="hi")
    records = [limited.record(a.headers["x-request-id"]) for a in answers]
    limited.record(embedded.headers["x-request-id"])
    total = sum(r["total_tokens"] for r in records)
    by_model = {row["model"]: row for row in usage(limited, key=key_id, by="model")}
    assert by_model["test-small"]["requests"] == 3
    assert by_model["test-small"]["total_tokens"] == total
    assert by_model["test-small"]["spend"] == pytest.approx(sum(r["cost"] for r in records))
    assert by_model["test-large"]["requests"] == 1 and by_model["test-large"]["spend"] == 0
    day = usage(limited, key=key_id, by="day")
    assert [(row["day"], row["requests"]) for row in day] == [(records[0]["received_at"][:10], 4)]
    shown = limited.command("usage", "--key", key_id, "--by", "key", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sum(r["requests"] for r in rows) == 4 and rows[0]["key"] == key_id
    table = limited.command("usage", "--context", "quota-context", "--since", "1h")
    assert table.returncode == 0 and table.stdout.split()[:2] == ["currency", "requests"]


def _stream_admitted(gateway: Gateway, key: str) -> bool:
    with sdk(gateway, key) as client:
        try:
            for _ in client.chat.completions.create(
                model="test-small", messages=ASK, stream=True
            ):
                pass
        except openai.RateLimitError:
            return False
    return True


@pytest.mark.parametrize("ending", ["client leaves", "upstream drops"])
def test_a_streams_slot_is_freed_however_it_ends(limited: Gateway, ending: str) -> None:
    _, key = new_key(limited.url, concurrent_streams=1)
    content = "LONG-STREAM please" if ending == "client leaves" else "FAULT-DROP please"
    with httpx.stream(
        "POST",
        f"{limited.v1}/chat/completions",
        json={"model": "test-small", "messages": [{"role": "user", "content": content}],
              "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)  # the stream is open, its slot taken
        if ending == "client leaves":
            assert not _stream_admitted(limited, key)  # the slot is held meanwhile
        else:
            for _ in chunks:  # the backend drops the stream after 3 chunks
                pass
    deadline = time.monotonic() + 5  # the client is gone: the gateway notices, and frees it
    while not _stream_admitted(limited, key):
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.1)


def test_keys_create_takes_the_limits(limited: Gateway) -> None:
    minute_left(10)
    limits = ("--rpm", "1", "--tpd", "900")
    made = limited.command("keys", "create", "--context", "quota-context", "--name", "cli", *limits)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    listed = limited.command("keys", "list", "--json")
    mine = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"requests_per_minute": 1, "tokens_per_day": 900} in [k["limits"] for k in mine]
    text = limited.command("keys", "list").stdout
    assert "requests_per_minute=1 tokens_per_day=900" in text
    with sdk(limited, key) as client:
        assert ask(client).headers["x-ratelimit-limit-tokens"] == "900"
        with pytest.raises(openai.RateLimitError):
            ask(client)


def test_a_fallback_is_priced_as_the_alias_that_served(limited: Gateway) -> None:
    _, key = new_key(limited.url, spend_per_month=100)
    with sdk(limited, key) as client:
        answer = client.chat.completions.with_raw_response.create(
            model="dead-priced", messages=ASK
        )
    record = limited.record(answer.headers["x-request-id"])
    assert record["requested_model"] == "dead-priced" and record["backend"] == "mock"
    expected = (record["prompt_tokens"] * PRICE_IN + record["completion_tokens"] * PRICE_OUT) / 1e6
    assert record["cost"] == pytest.approx(expected)  # test-small's price, not dead-priced's


def test_a_fallback_to_a_priced_alias_is_costed_without_limits(limited: Gateway) -> None:
    """The requested alias has no price and the key no limits: the fallback that served is
    priced all the same, and usage by model names the alias that served."""
    key_id, key = new_key(limited.url)
    with sdk(limited, key) as client:
        answer = client.chat.completions.with_raw_response.create(
            model="dead-unpriced", messages=ASK
        )
    record = limited.record(answer.headers["x-request-id"])
    assert record["requested_model"] == "dead-unpriced" and record["backend"] == "mock"
    expected = (record["prompt_tokens"] * PRICE_IN + record["completion_tokens"] * PRICE_OUT) / 1e6
    assert record["cost"] == pytest.approx(expected) and record["currency"] == "EUR"
    rows = usage(limited, key=key_id, by="model")
    assert [(r["model"], r["requests"]) for r in rows] == [("test-small", 1)]
    assert rows[0]["spend"] == pytest.approx(expected)
