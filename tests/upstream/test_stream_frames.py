"""Frames the mock upstream cannot send, through a gateway process: the backend's key split
across two frames of a tool call's arguments or of a refusal, and a 200 stream whose first
event is an error. The backend is ``tests.upstream.frames`` (a process of its own); the
client is the real ``openai`` SDK with its own retries off, so every try counted is the
gateway's. Also readiness: an alias no policy allows does not make the replica unready."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.databases import make_key, upgrade
from tests.servers import (
    ADMIN_TOKEN,
    UPSTREAM_SECRET,
    Gateway,
    environment,
    free_port,
    process,
    wait_until_up,
)
from tests.upstream.frames import CONTEXT_ERROR, SERVER_ERROR, STOPPED

CONTEXT = "frames-context"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUTS = {"connect": 1, "response": 5, "first_byte": 5, "idle": 5}


@pytest.fixture(scope="module")
def frames_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("frames") / "frames.log"
    port = free_port()
    args = ["-m", "tests.upstream.frames", "--port", str(port), "--key", UPSTREAM_SECRET]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            env=environment({}),
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", proc, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _config(folder: Path, frames_url: str) -> Path:
    backend = {"base_url": f"{frames_url}/v1", "api_key_env": "FRAMES_KEY", "timeouts": TIMEOUTS}
    dead = {"base_url": f"http://127.0.0.1:{free_port()}/v1", "timeouts": TIMEOUTS}
    policies = folder / "policies"
    policies.mkdir()
    policy = {
        "context": CONTEXT,
        "purpose": "Pass traffic through, to test frames the mock cannot send.",
        "owner": "tests@situate.invalid",
        "audience": "the test suite",
        "models": {"allow": ["framed", "framed-too", "pair"]},
    }
    (policies / f"{CONTEXT}.yaml").write_text(yaml.safe_dump(policy))
    config = {
        "backends": {"frames": backend, "frames-too": backend, "dead": dead},
        "models": {
            "framed": {"backend": "frames", "model": "frames-model"},
            "framed-too": {"backend": "frames-too", "model": "frames-model"},
            # the dead backend fails over to frames, and is ejected after three requests
            "pair": {
                "backends": [
                    {"backend": "dead", "model": "x"},
                    {"backend": "frames", "model": "frames-model"},
                ]
            },
            # configured, but no policy allows it: its dead backend is nobody's loss
            "unused": {"backend": "dead", "model": "x"},
        },
        "policies_dir": str(policies),
        "recording": {"spill_dir": str(folder / "spill")},
        "upstream": {
            "retry": {"attempts": 2, "backoff_base": 0.01, "backoff_max": 0.05},
            # three failures eject: a stream's first error event retried and counted would
            # eject its backend at the second such request
            "health": {"failures": 3, "ejection_seconds": 60},
        },
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def gateway(frames_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("frames-gateway")
    config = _config(folder, frames_url)
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "FRAMES_KEY": UPSTREAM_SECRET,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    key = make_key(upgrade(env["GATEWAY_DATABASE_URL"]), CONTEXT, "frames")
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        yield Gateway(f"http://127.0.0.1:{port}", key, env, config, "sqlite", {}, folder)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as made:
        yield made


def _stream(client: openai.OpenAI, model: str, text: str) -> tuple[str, list[Any]]:
    messages: Any = [{"role": "user", "content": text}]
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=messages, stream=True
    ) as raw:
        return raw.headers["x-request-id"], list(raw.parse())


def _tries(frames_url: str) -> dict[str, int]:
    tries: dict[str, int] = httpx.get(f"{frames_url}/tries", timeout=5).json()
    return tries


def _frames_backend(gateway: Gateway) -> dict[str, Any]:
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5).json()
    report: dict[str, Any] = ready["checks"]["backends"]["backends"]["frames"]
    return report


def test_a_key_split_inside_a_tool_calls_arguments_never_reaches_client_or_record(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    request_id, chunks = _stream(client, "framed", "TOOL-SPLIT")
    wire = "".join(c.model_dump_json() for c in chunks)
    assert UPSTREAM_SECRET not in wire
    calls = [c.choices[0].delta.tool_calls or [] for c in chunks if c.choices]
    arguments = "".join(
        call.function.arguments or "" for group in calls for call in group if call.function
    )
    assert arguments == '{"token": "[redacted]"}'  # whole again, valid JSON for the caller
    record = gateway.record(request_id)
    assert UPSTREAM_SECRET not in str(record)
    message = record["response_body"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": '{"token": "[redacted]"}',
    }


def test_a_key_split_inside_a_refusal_never_reaches_client_or_record(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    request_id, chunks = _stream(client, "framed", "REFUSAL-SPLIT")
    assert UPSTREAM_SECRET not in "".join(c.model_dump_json() for c in chunks)
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == "I will not repeat [redacted] to you."
    record = gateway.record(request_id)
    assert UPSTREAM_SECRET not in str(record)
    assert record["response_body"]["choices"][0]["message"]["refusal"] == refusal


def test_an_error_event_first_is_the_backends_refusal_once_neither_retried_nor_counted(
    client: openai.OpenAI, gateway: Gateway, frames_url: str
) -> None:
    """A request the backend refuses inside a 200 stream meets the same refusal on every
    try: one try, the client told why once (not to retry), the backend still healthy."""
    before = _tries(frames_url).get("ERROR-FIRST", 0)
    for _ in range(3):  # with three failures ejecting, counted tries would eject it
        with pytest.raises(openai.BadRequestError) as caught:
            _stream(client, "framed", "ERROR-FIRST")
        error = caught.value
        assert error.response.headers["x-should-retry"] == "false"
        assert error.code == "upstream_stream_refused"
        assert error.message.count(CONTEXT_ERROR) == 1
        assert "Backend 'frames' refused the request" in error.message
        record = gateway.record(error.response.headers["x-request-id"])
        assert record["error_type"] == "upstream_stream_refused"
        assert [(a["outcome"], a["status"]) for a in record["attempts"]] == [("failed", 200)]
    assert _tries(frames_url)["ERROR-FIRST"] == before + 3
    report = _frames_backend(gateway)
    assert (report["state"], report["consecutive_failures"]) == ("healthy", 0)
    assert _stream(client, "framed", "hello")[1]  # and it still serves


def test_an_error_event_first_that_says_a_server_error_is_retried_and_counted(
    client: openai.OpenAI, gateway: Gateway, frames_url: str
) -> None:
    """A server error is the backend's failure, as a 5xx is: retried and counted; its words
    (which may name an address) in the record only."""
    before = _tries(frames_url).get("SERVER-ERROR-FIRST", 0)
    with pytest.raises(openai.APIStatusError) as caught:
        _stream(client, "framed-too", "SERVER-ERROR-FIRST")
    assert caught.value.status_code == 502
    assert SERVER_ERROR not in caught.value.message
    assert _tries(frames_url)["SERVER-ERROR-FIRST"] - before == 2
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert [a["outcome"] for a in record["attempts"]] == ["retried", "failed"]
    assert SERVER_ERROR in record["attempts"][0]["error"]
    report = httpx.get(f"{gateway.url}/readyz", timeout=5).json()["checks"]["backends"]
    assert report["backends"]["frames-too"]["consecutive_failures"] == 2
    assert _stream(client, "framed-too", "hello")[1]  # a success forgets the failures


def test_a_key_in_logprobs_tokens_or_an_audio_transcript_never_reaches_client_or_record(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    """The tokens of a choice whose text held or lost a key would spell it: they go, the
    text stays whole. An audio's transcript is scrubbed as the content is."""
    request_id, chunks = _stream(client, "framed", "LOGPROBS-SPLIT")
    assert UPSTREAM_SECRET not in "".join(c.model_dump_json() for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "my key is [redacted] ok"
    assert UPSTREAM_SECRET not in str(gateway.record(request_id))
    request_id, chunks = _stream(client, "framed", "AUDIO-SPLIT")
    assert UPSTREAM_SECRET not in "".join(c.model_dump_json() for c in chunks)
    audio = [(c.choices[0].delta.model_extra or {}).get("audio") or {} for c in chunks]
    assert "".join(a.get("transcript", "") for a in audio) == "it is [redacted]"
    assert UPSTREAM_SECRET not in str(gateway.record(request_id))


def test_a_stream_ending_without_done_or_finish_keeps_its_held_text(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    request_id, chunks = _stream(client, "framed", "UNFINISHED")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello sk"
    assert gateway.record(request_id)["status"] == "incomplete"


@pytest.mark.parametrize(
    ("marker", "words"),
    [("NO-KIND-FIRST", STOPPED), ("LONG-SERVER-ERROR-FIRST", SERVER_ERROR)],
)
def test_an_error_event_first_naming_no_kind_or_long_is_retried_and_counted(
    client: openai.OpenAI, gateway: Gateway, frames_url: str, marker: str, words: str
) -> None:
    """An error event with no type or code (a crashed runner's), or a server error too long
    to cut and still parse, is the backend's failure: retried, counted, its text kept from
    the client."""
    before = _tries(frames_url).get(marker, 0)
    with pytest.raises(openai.APIStatusError) as caught:
        _stream(client, "framed-too", marker)
    assert caught.value.status_code == 502 and words not in caught.value.message
    assert _tries(frames_url)[marker] - before == 2
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert [a["outcome"] for a in record["attempts"]] == ["retried", "failed"]
    assert words in record["attempts"][0]["error"]
    report = httpx.get(f"{gateway.url}/readyz", timeout=5).json()["checks"]["backends"]
    assert report["backends"]["frames-too"]["consecutive_failures"] == 2
    assert _stream(client, "framed-too", "hello")[1]  # a success forgets the failures


def test_an_alias_no_policy_allows_does_not_make_the_replica_unready(
    client: openai.OpenAI, gateway: Gateway
) -> None:
    for _ in range(3):  # each fails over from the dead backend: three failures eject it
        assert _stream(client, "pair", "hello")[1]
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5)
    backends = ready.json()["checks"]["backends"]
    assert backends["backends"]["dead"]["state"] == "ejected"
    assert ready.status_code == 200 and backends["ok"]
    assert backends["aliases_without_backend"] == []
    assert backends["unallowed_without_backend"] == ["unused"]
