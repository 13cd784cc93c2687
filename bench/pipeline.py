"""The request path's own cost, with a real policy: bank-support (its rules and scope) and
recording on, one gateway worker, in front of a fixed-answer mock upstream.

1. Non-streaming load with Debian's ``wrk`` (a C load generator, so it does not compete with
   the gateway for a Python interpreter): requests per second at c=32 through the gateway, and
   the added p50 at c=1 (through the gateway minus direct to the upstream).
2. Streams of 10k, 100k and 300k characters, with no output rules and with bank-support's:
   the gateway process's CPU seconds per stream (user + system, from /proc), which is the
   event loop's work plus any detector threads. Linear in length means the per-character cost
   stays flat.

    python bench/pipeline.py [--duration 10] [--runs 3] [--skip-streams] [--skip-load]

Prints medians of ``--runs`` runs. Needs ``wrk`` on PATH for part 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import cli, free_port, process

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "My debit card was declined at the supermarket twice this week, why?"
ANSWER = (
    "Card declines usually come from a daily limit or a fraud check. Please open the app, "
    "go to Cards, and look at the card's status and limits; you can also call us."
)
LENGTHS = (10_000, 100_000, 300_000)
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def _stream_reply(length: int) -> str:
    words = "The transfer should arrive within one business day, please check the app. "
    return (words * (length // len(words) + 1))[:length]


def _script(folder: Path) -> Path:
    # Longest first: the first rule whose text the request contains answers it, and
    # "STREAM-10000" is inside "STREAM-100000".
    rules = [
        {"contains": f"STREAM-{n}", "reply": _stream_reply(n), "finish_reason": "stop"}
        for n in sorted(LENGTHS, reverse=True)
    ]
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump({"rules": rules, "echo": ANSWER}))
    return path


def _policies(folder: Path) -> Path:
    policies = folder / "policies"
    shutil.copytree(ROOT / "policies" / "guidelines", policies / "guidelines")
    shutil.copy(ROOT / "policies" / "bank-support.yaml", policies / "bank-support.yaml")
    bank = yaml.safe_load((ROOT / "policies" / "bank-support.yaml").read_text())
    plain = {k: bank[k] for k in ("purpose", "owner", "audience", "models")}
    (policies / "plain.yaml").write_text(yaml.safe_dump({"context": "plain", **plain}))
    output = [r for r in bank["rules"] if r["stage"] in ("output", "both")]
    for rule in output:
        rule.pop("review", None)
    (policies / "output.yaml").write_text(
        yaml.safe_dump({"context": "output", **plain, "rules": output})
    )
    return policies


def _config(folder: Path, mock_url: str) -> Path:
    config = folder / "gateway.yaml"
    model = {"backend": "mock", "model": "mock-small"}
    config.write_text(
        yaml.safe_dump(
            {
                "backends": {"mock": {"base_url": f"{mock_url}/v1"}},
                "models": {"demo-small": model, "demo-large": model},
                "recording": {"spill_dir": str(folder / "spill")},
                "policies_dir": str(_policies(folder)),
            }
        )
    )
    return config


def wrk(url: str, key: str | None, connections: int, duration: float) -> tuple[float, float]:
    """Requests per second and p50 latency in ms."""
    body = json.dumps({"model": "demo-small", "messages": [{"role": "user", "content": QUESTION}]})
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=body, auth=auth))
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
         "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rps, float(p50.group(1)) * scale


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream_cpu(url: str, key: str, pid: int, length: int, runs: int) -> float:
    """Median CPU seconds the gateway spends on one streamed answer of ``length`` chars."""
    body = {
        "model": "demo-small",
        "stream": True,
        "messages": [{"role": "user", "content": f"card question STREAM-{length}"}],
    }
    spent = []
    with httpx.Client(timeout=300, headers={"authorization": f"Bearer {key}"}) as client:
        for _ in range(runs):
            before = _cpu_seconds(pid)
            received = 0
            with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    received += len(chunk)
            time.sleep(0.3)  # let the record be handed over
            spent.append(_cpu_seconds(pid) - before)
    return statistics.median(spent)


def _keys(config: Path, env: dict[str, str]) -> dict[str, str]:
    assert cli(["db", "upgrade", "--config", str(config)], env).returncode == 0
    keys = {}
    for context in ("bank-support", "plain", "output"):
        made = cli(["keys", "create", "--context", context, "--name", "bench",
                    "--config", str(config)], env)
        assert made.returncode == 0, made.stderr
        keys[context] = made.stdout.strip()
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-streams", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mock_port, port = free_port(), free_port()
        mock_url, url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{port}"
        config = _config(folder, mock_url)
        env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}"}
        keys = _keys(config, env)
        mock = ["mock-upstream", "--port", str(mock_port), "--script", str(_script(folder))]
        serve = ["serve", "--config", str(config), "--port", str(port)]
        with (
            process(mock, f"{mock_url}/healthz", folder / "mock.log"),
            process(serve, f"{url}/readyz", folder / "gateway.log", env) as gateway,
        ):
            if not args.skip_load:
                _load(url, mock_url, keys["bank-support"], args)
            if not args.skip_streams:
                _streams(url, keys, gateway.pid, args.runs)


def _load(url: str, mock_url: str, key: str, args: argparse.Namespace) -> None:
    chat = f"{url}/v1/chat/completions"
    wrk(chat, key, 32, 2)  # warm up: caches, connections, the scope's encoder
    rows = {"via c=32": [], "via c=1": [], "direct c=1": [], "direct c=32": []}
    for _ in range(args.runs):
        rows["via c=32"].append(wrk(chat, key, 32, args.duration))
        rows["direct c=32"].append(wrk(f"{mock_url}/v1/chat/completions", None, 32, args.duration))
        rows["via c=1"].append(wrk(chat, key, 1, args.duration))
        rows["direct c=1"].append(wrk(f"{mock_url}/v1/chat/completions", None, 1, args.duration))
    print(f"non-streaming, bank-support, recording on; medians of {args.runs} runs of "
          f"{args.duration:g} s (wrk)")
    for name, values in rows.items():
        rps = statistics.median(v[0] for v in values)
        p50 = statistics.median(v[1] for v in values)
        print(f"  {name:<12} {rps:8.1f} req/s   p50 {p50:7.3f} ms")
    pairs = zip(rows["via c=1"], rows["direct c=1"], strict=True)
    added = [via[1] - direct[1] for via, direct in pairs]
    print(f"  added p50 at c=1: {statistics.median(added):.3f} ms")


def _streams(url: str, keys: dict[str, str], pid: int, runs: int) -> None:
    print(f"streams: gateway CPU seconds per answer, medians of {runs}")
    head = f"{'chars':>8} {'no rules':>10} {'output rules':>13} {'ratio':>6}"
    print(f"  {head} {'us/char (rules)':>16}")
    for length in LENGTHS:
        plain = stream_cpu(url, keys["plain"], pid, length, runs)
        ruled = stream_cpu(url, keys["output"], pid, length, runs)
        ratio = ruled / plain if plain else float("nan")
        print(f"  {length:>8} {plain:>10.3f} {ruled:>13.3f} {ratio:>6.2f} "
              f"{ruled / length * 1e6:>16.2f}")


if __name__ == "__main__":
    main()
