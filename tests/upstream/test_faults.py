"""The fault suite: the real ``openai`` SDK (its own retries off) through a gateway process in
front of ``gateway mock-upstream`` processes that misbehave as scripted. After each fault the
upstream's request log (every try the gateway made) is compared with the exchange record
(one record per request, with its attempts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests import spec
from tests.servers import UPSTREAM_SECRET, Gateway, Upstream
from tests.upstream.faults import (
    SPLIT_REPLY,
    fault_gateway,
    fault_script,
    marker,
    mock,
    readyz,
    sdk,
    seen_for,
    wait_for,
)

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
INTERNALS = ("127.0.0.1", "Cannot connect", "aiohttp", "Error:", "message=", "localhost")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with mock(tmp_path_factory.mktemp("faulty"), fault_script()) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def spare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with mock(tmp_path_factory.mktemp("spare"), {}) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(
    faulty: Upstream, spare: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder: Path = tmp_path_factory.mktemp("fault-gateway")
    lenient = {"failures": 1000, "ejection_seconds": 1}  # no test here ejects a backend
    with fault_gateway(folder, faulty, spare, lenient) as served:
        yield served


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with sdk(gateway) as made:
        yield made


def ask(client: openai.OpenAI, model: str, text: str, *, stream: bool) -> tuple[str, str]:
    """The gateway's request id and the answer's text."""
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True
        ) as raw:
            chunks = list(raw.parse())
            assert len({c.id for c in chunks}) == 1  # one clean stream, from one backend
            roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta]
            assert roles.count("assistant") == 1
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return raw.headers["x-request-id"], text
    answered = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    return answered.headers["x-request-id"], answered.parse().choices[0].message.content or ""


def refused(client: openai.OpenAI, model: str, text: str, *, stream: bool) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], stream=stream
        )
    spec.check("ErrorResponse", caught.value.response.json())
    return caught.value


def clean(message: str) -> None:
    """A client-facing message names the backend by its config name only."""
    for internal in INTERNALS:
        assert internal not in message, message


def after_first_byte(record: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    """The stream's first event was in hand when it failed: that try was the last one (a
    try before it may only have failed before its first byte), and the backend saw each."""
    assert record["attempts"][-1]["outcome"] == "ok"
    assert len(seen) == len(record["attempts"])
    assert seen[-1]["outcome"] in ("fault", "client_disconnected")


def outcomes(record: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    return [(a["backend"], a["outcome"], a["status"]) for a in record["attempts"]]


@STREAMS
def test_a_refused_connection_fails_over_to_the_next_backend(
    client: openai.OpenAI, gateway: Gateway, spare: Upstream, stream: bool
) -> None:
    request_id, text = ask(client, "pair", "hello there", stream=stream)
    assert "You said: hello there" in text
    assert len(seen_for(spare, request_id)) == 1
    record = gateway.record(request_id)
    assert (record["status"], record["backend"]) == ("ok", "spare")
    assert outcomes(record) == [("dead", "retried", None), ("spare", "ok", 200)]
    assert "is unreachable" in record["attempts"][0]["error"]
    assert all(a["alias"] == "pair" and a["ms"] is not None for a in record["attempts"])


@STREAMS
def test_no_reachable_backend_is_a_502_that_names_no_address(
    client: openai.OpenAI, gateway: Gateway, stream: bool
) -> None:
    exc = refused(client, "dead-only", "anyone?", stream=stream)
    assert exc.status_code == 502
    error = exc.response.json()["error"]
    assert (error["code"], error["message"]) == (
        "upstream_unreachable",
        "Backend 'dead' is unreachable.",
    )
    clean(exc.response.text)
    record = gateway.record(exc.response.headers["x-request-id"])
    assert outcomes(record) == [("dead", "retried", None)] * 2 + [("dead", "failed", None)]
    assert "127.0.0.1" in record["error_message"]  # the detail: the record's, never the client's


@STREAMS
def test_a_500_before_headers_is_retried_until_it_succeeds(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, stream: bool
) -> None:
    request_id, text = ask(client, "faulty", marker("FAIL-TWICE", stream), stream=stream)
    assert "You said" in text
    seen = seen_for(faulty, request_id)
    assert [e["outcome"] for e in seen] == ["fault", "fault", "completed"]
    record = gateway.record(request_id)
    assert outcomes(record) == [
        ("flaky", "retried", 500),
        ("flaky", "retried", 500),
        ("flaky", "ok", 200),
    ]
    assert record["status"] == "ok"


@STREAMS
def test_a_5xx_every_time_is_a_502_after_the_configured_tries(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, stream: bool
) -> None:
    exc = refused(client, "faulty", marker("ALWAYS-500", stream), stream=stream)
    assert exc.status_code == 502
    # the backend's text (a proxy's page may name addresses) in the record only
    assert exc.response.json()["error"]["message"] == "Backend 'flaky' failed with HTTP 503."
    request_id = exc.response.headers["x-request-id"]
    assert len(seen_for(faulty, request_id)) == 3
    record = gateway.record(request_id)
    assert [a["status"] for a in record["attempts"]] == [503, 503, 503]
    assert record["error_message"].endswith("(down for maintenance)")


@STREAMS
def test_a_429_with_retry_after_is_waited_out_and_retried(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, stream: bool
) -> None:
    started = time.monotonic()
    request_id, _ = ask(client, "faulty", marker("RATE-ONCE", stream), stream=stream)
    assert time.monotonic() - started >= 0.3  # the backend's Retry-After: 0.3
    assert [e["outcome"] for e in seen_for(faulty, request_id)] == ["fault", "completed"]
    record = gateway.record(request_id)
    assert outcomes(record) == [("flaky", "retried", 429), ("flaky", "ok", 200)]


@STREAMS
def test_a_retry_after_longer_than_allowed_passes_the_429_on(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, stream: bool
) -> None:
    exc = refused(client, "faulty", marker("RATE-LONG", stream), stream=stream)
    assert exc.status_code == 429 and exc.response.headers["retry-after"] == "30"
    request_id = exc.response.headers["x-request-id"]
    assert len(seen_for(faulty, request_id)) == 1
    record = gateway.record(request_id)
    assert outcomes(record) == [("flaky", "failed", 429)]
    assert "Retry-After 30 s is too long" in record["attempts"][0]["error"]


@STREAMS
def test_a_slow_first_byte_times_out_and_is_retried(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, stream: bool
) -> None:
    request_id, text = ask(client, "faulty", marker("SLOW-ONCE", stream), stream=stream)
    assert "You said" in text
    assert len(seen_for(faulty, request_id)) == 2
    first, second = gateway.record(request_id)["attempts"]
    assert (first["outcome"], second["outcome"]) == ("retried", "ok")
    assert "timed out" in first["error"] or "sent nothing within" in first["error"]
    assert first["ms"] >= 1900  # the first_byte (stream) or response (whole) timeout


@pytest.mark.parametrize("fault", ["LONG-HEADER", "BAD-STATUS", "BAD-CHUNK"])
@STREAMS
def test_malformed_http_is_a_502_never_a_500(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream, fault: str, stream: bool
) -> None:
    exc = refused(client, "faulty", marker(fault, stream), stream=stream)
    assert exc.status_code == 502
    error = exc.response.json()["error"]
    assert error["code"] in ("upstream_malformed_response", "upstream_stream_broken")
    clean(error["message"])
    request_id = exc.response.headers["x-request-id"]
    assert len(seen_for(faulty, request_id)) == 3  # retried: it may be the way, not the backend
    record = gateway.record(request_id)
    assert record["status"] == "upstream_error" and len(record["attempts"]) == 3
    assert record["error_message"].startswith(error["message"])
    assert len(record["error_message"]) > len(error["message"])  # the library's words too


@STREAMS
def test_a_malformed_answer_once_is_retried(
    client: openai.OpenAI, gateway: Gateway, stream: bool
) -> None:
    request_id, text = ask(client, "faulty", marker("MALFORMED-ONCE", stream), stream=stream)
    assert "You said" in text
    assert outcomes(gateway.record(request_id))[0] == ("flaky", "retried", None)


def test_a_connection_the_backend_closed_without_answering_is_retried(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream
) -> None:
    """What a pooled connection the backend closed as it was reused looks like: a hang-up
    before any response (aiohttp: ServerDisconnectedError)."""
    request_id, text = ask(client, "faulty", marker("HANGUP-ONCE", False), stream=False)
    assert "You said" in text
    attempts = gateway.record(request_id)["attempts"]
    assert [a["outcome"] for a in attempts] == ["retried", "ok"]
    assert "closed the connection" in attempts[0]["error"]


def test_after_the_first_byte_a_drop_is_never_retried(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream
) -> None:
    chunks: list[str] = []
    with client.chat.completions.with_streaming_response.create(
        model="faulty",
        messages=[{"role": "user", "content": marker("DROP-3", True)}],
        stream=True,
    ) as raw:
        request_id = raw.headers["x-request-id"]
        parsed = raw.parse()
        with pytest.raises(openai.APIError):
            chunks.extend(c.choices[0].delta.content or "" if c.choices else "" for c in parsed)
    assert "".join(chunks) == "one two three "
    record = gateway.record(request_id)
    assert record["status"] == "incomplete"
    after_first_byte(record, seen_for(faulty, request_id))


def test_an_error_frame_inside_a_stream_is_passed_on_not_retried(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="faulty",
        messages=[{"role": "user", "content": marker("ERROR-FRAME-2", True)}],
        stream=True,
    ) as raw:
        request_id = raw.headers["x-request-id"]
        with pytest.raises(openai.APIError, match="mock upstream error"):
            list(raw.parse())
    record = gateway.record(request_id)
    assert record["error_type"] == "upstream_stream_error"
    after_first_byte(record, seen_for(faulty, request_id))


def test_broken_chunked_encoding_mid_stream_ends_the_stream_within_the_idle_timeout(
    gateway: Gateway, faulty: Upstream
) -> None:
    """The transport never reports it; every read is bounded by the idle timeout (1 s here)
    instead of the client waiting for its own timeout (10 s)."""
    started = time.monotonic()
    messages: Any = [{"role": "user", "content": marker("BROKEN-CHUNK", True)}]
    with (
        sdk(gateway, timeout=10.0) as client,
        client.chat.completions.with_streaming_response.create(
            model="faulty", messages=messages, stream=True
        ) as raw,
    ):
        request_id = raw.headers["x-request-id"]
        with pytest.raises(openai.APIError) as caught:
            list(raw.parse())
    assert time.monotonic() - started < 5
    assert "Backend 'flaky'" in caught.value.message
    clean(caught.value.message)
    record = gateway.record(request_id)
    assert record["status"] == "incomplete"
    assert record["error_type"] in ("upstream_timeout", "upstream_stream_broken")
    after_first_byte(record, seen_for(faulty, request_id))


@STREAMS
def test_the_backends_key_split_across_frames_never_reaches_the_client_or_the_record(
    client: openai.OpenAI, gateway: Gateway, stream: bool
) -> None:
    request_id, text = ask(client, "faulty", "F-SPLIT-KEY-whole", stream=stream)
    assert UPSTREAM_SECRET not in text
    assert text == SPLIT_REPLY.replace(UPSTREAM_SECRET, "[redacted]")
    record = gateway.record(request_id)
    assert UPSTREAM_SECRET not in str(record)
    if stream:
        assert record["response_body"]["choices"][0]["message"]["content"] == text


@STREAMS
def test_every_backend_failed_so_the_fallback_alias_serves_one_clean_answer(
    client: openai.OpenAI, gateway: Gateway, spare: Upstream, stream: bool
) -> None:
    request_id, text = ask(client, "primary", marker("ALWAYS-500", stream), stream=stream)
    assert "You said" in text
    assert [e["model"] for e in seen_for(spare, request_id)] == ["mock-large"]
    record = gateway.record(request_id)
    assert record["status"] == "ok" and record["requested_model"] == "primary"
    assert (record["backend"], record["upstream_model"]) == ("spare", "mock-large")
    assert [(a["alias"], a["outcome"]) for a in record["attempts"]] == [
        ("primary", "retried"),
        ("primary", "retried"),
        ("primary", "retried"),
        ("backup", "ok"),
    ]


def test_no_fallback_to_an_alias_the_policy_does_not_allow(
    client: openai.OpenAI, gateway: Gateway, spare: Upstream
) -> None:
    exc = refused(client, "guarded", marker("ALWAYS-500", False), stream=False)
    assert exc.status_code == 502
    request_id = exc.response.headers["x-request-id"]
    assert seen_for(spare, request_id) == []
    assert {a["alias"] for a in gateway.record(request_id)["attempts"]} == {"guarded"}


def test_a_backend_that_refuses_the_gateways_key_is_not_retried_by_anyone(
    client: openai.OpenAI, gateway: Gateway, faulty: Upstream
) -> None:
    exc = refused(client, "faulty", marker("BAD-KEY", False), stream=False)
    assert exc.status_code == 502
    assert exc.response.headers["x-should-retry"] == "false"
    assert exc.response.json()["error"]["code"] == "upstream_auth_failed"
    assert len(seen_for(faulty, exc.response.headers["x-request-id"])) == 1


def test_weighted_backends_share_the_traffic_by_weight(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    served = [gateway.record(ask(client, "spread", "hi", stream=False)[0]) for _ in range(40)]
    backends = [r["backend"] for r in served]
    assert backends.count("spare") > backends.count("spare-too") > 0
    assert all(len(r["attempts"]) == 1 for r in served)


def test_a_stream_counts_as_in_flight_for_the_budget_until_it_ends(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    def in_flight() -> int:
        retries = readyz(gateway).json()["checks"]["backends"]["retries"]
        return int(retries["requests_in_flight"])

    assert in_flight() == 0
    with client.chat.completions.with_streaming_response.create(
        model="faulty",
        messages=[{"role": "user", "content": marker("SLOW-STREAM", True)}],
        stream=True,
    ) as raw:
        chunks = raw.parse()
        next(iter(chunks))
        assert in_flight() == 1  # streaming still: a request in flight to its backend
        list(chunks)
    wait_for(lambda: in_flight() == 0)
