"""The Responses API's added latency next to chat completions', on the same gateway.

Starts `gateway mock-upstream` (no token delay) and `gateway serve` (one worker, recording
on, SQLite) on loopback, with bank-support's policy (its rules and topic scope) and a tools
section, and two aliases of the same mock: ``m`` (a chat backend: Responses translated to
chat completions) and ``mn`` (``responses: native``: Responses passed to the mock's own
``/v1/responses``). For each path, whole and streamed, it sends the same question through the
gateway and straight to what the gateway calls upstream (the mock's ``/v1/chat/completions``
for chat and the translated path, its ``/v1/responses`` for the native one), one after the
other, and takes each pair's difference: the gateway's added latency, as bench/proxy.py
measures it. Streams: time to the first byte and to the end.

    python bench/responses.py [--requests 300] [--warmup 30]

Prints median and p90 of the added milliseconds per path; the target is Responses within 20%
of chat. One client, concurrency 1, all on this 2-core machine: compare rows, not hosts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import ANSWER, QUESTION  # the in-scope question bench/pipeline.py asks
from tests.servers import cli, free_port, process

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Path_:
    """One way in: the gateway's endpoint and body, and the upstream call it stands for."""

    name: str
    endpoint: str
    body: dict[str, Any]
    direct: str
    direct_body: dict[str, Any]


def _chat(model: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": QUESTION}]}


def _responses(model: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "stream": stream, "input": QUESTION}


def paths(stream: bool) -> list[Path_]:
    chat, responses = "/v1/chat/completions", "/v1/responses"
    upstream = "mock-small"
    return [
        Path_("chat", chat, _chat("m", stream), chat, _chat(upstream, stream)),
        Path_(
            "responses translated", responses, _responses("m", stream), chat,
            _chat(upstream, stream),
        ),
        Path_(
            "responses native", responses, _responses("mn", stream), responses,
            _responses(upstream, stream),
        ),
    ]


def _policies(folder: Path) -> Path:
    policies = folder / "policies"
    shutil.copytree(ROOT / "policies" / "guidelines", policies / "guidelines")
    bank = yaml.safe_load((ROOT / "policies" / "bank-support.yaml").read_text())
    bank["models"] = {"allow": ["m", "mn"], "default": "m"}
    bank.setdefault("tools", {"allow": ["get_balance"]})
    (policies / "bank-support.yaml").write_text(yaml.safe_dump(bank, sort_keys=False))
    return policies


def _config(folder: Path, mock_url: str) -> Path:
    config = folder / "gateway.yaml"
    backend = {"base_url": f"{mock_url}/v1"}
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {"mock": backend, "native": {**backend, "responses": "native"}},
                "models": {
                    "m": {"backend": "mock", "model": "mock-small"},
                    "mn": {"backend": "native", "model": "mock-small"},
                },
                "recording": {"spill_dir": str(folder / "spill")},
                "policies_dir": str(_policies(folder)),
            }
        )
    )
    return config


def timed(client: httpx.Client, url: str, body: dict[str, Any], key: str | None) -> tuple[
    float, float
]:
    """Seconds to the first byte of the body and to its end; the answer must be the
    backend's (not a refusal the gateway made without calling it)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    started = time.perf_counter()
    first = None
    received = bytearray()
    with client.stream("POST", url, json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter()
            received += chunk
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {bytes(received[:300])!r}")
    if b"Card" not in received:
        raise RuntimeError(f"{url}: not the backend's answer: {bytes(received[:300])!r}")
    end = time.perf_counter()
    return (first or end) - started, end - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    client: httpx.Client, gateway: str, mock: str, key: str, path: Path_, n: int, warmup: int
) -> dict[str, list[float]]:
    """Per request pair: the added ms to the first byte and to the end."""
    added: dict[str, list[float]] = {"ttfb": [], "total": []}
    for i in range(warmup + n):
        via = timed(client, gateway + path.endpoint, path.body, key)
        direct = timed(client, mock + path.direct, path.direct_body, None)
        if i >= warmup:
            added["ttfb"].append((via[0] - direct[0]) * 1000)
            added["total"].append((via[1] - direct[1]) * 1000)
    return added


def report(stream: bool, figures: dict[str, dict[str, list[float]]]) -> None:
    kind = "streamed" if stream else "whole"
    print(f"{kind}: the gateway's added ms (through it minus direct, per pair)")
    chat = statistics.median(figures["chat"]["total"])
    for name, added in figures.items():
        line = f"  {name:<22}"
        for part in ("ttfb", "total") if stream else ("total",):
            values = added[part]
            line += (
                f" {part} p50 {statistics.median(values):6.2f} p90 {_percentile(values, 0.9):6.2f}"
            )
        ratio = statistics.median(added["total"]) / chat if chat else float("nan")
        print(f"{line}   total p50 vs chat {ratio:5.2f}x")


def _key(config: Path, env: dict[str, str]) -> str:
    assert cli(["db", "upgrade", "--config", str(config)], env).returncode == 0
    made = cli(
        ["keys", "create", "--context", "bank-support", "--name", "bench", "--config",
         str(config)],
        env,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def run(args: argparse.Namespace, each: Callable[[httpx.Client, str, str, str], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mock_port, port = free_port(), free_port()
        mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{port}"
        script = folder / "script.yaml"
        script.write_text(yaml.safe_dump({"rules": [], "echo": ANSWER}))
        config = _config(folder, mock_url)
        env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}"}
        key = _key(config, env)
        mock = ["mock-upstream", "--port", str(mock_port), "--script", str(script)]
        serve = ["serve", "--config", str(config), "--port", str(port)]
        with (
            process(mock, f"{mock_url}/healthz", folder / "mock.log"),
            process(serve, f"{url}/readyz", folder / "gateway.log", env),
            httpx.Client(timeout=30) as client,
        ):
            each(client, url, mock_url, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="pairs per path and mode")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, Any] = {}

    def each(client: httpx.Client, url: str, mock_url: str, key: str) -> None:
        for stream in (False, True):
            figures = {
                p.name: measure(client, url, mock_url, key, p, args.requests, args.warmup)
                for p in paths(stream)
            }
            report(stream, figures)
            results["streamed" if stream else "whole"] = figures

    run(args, each)
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
