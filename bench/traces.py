"""What tracing adds to a chat call's latency: two `gateway serve` processes on one mock
upstream, one with tracing off, one exporting every span over OTLP/HTTP to a receiver in this
process (that accepts and drops them), called in turn, one request at a time.

    python bench/traces.py [--requests 1000] [--stream]

Requests alternate between the two gateways, so drift on a shared machine hits both alike.
Printed: each side's p50, p90, p99 and mean (ms), the difference of the medians, and each
gateway process's CPU time per request (user + system, from /proc: what a loaded machine's
noise does not blur), its span export thread's included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.databases import make_keys, upgrade
from tests.servers import free_port, process
from tests.telemetry.serving import threaded

ROOT = Path(__file__).resolve().parents[1]
POLICY = """\
context: bench
purpose: Measure tracing's cost.
owner: bench@situate.invalid
audience: the benchmark
models: {allow: [bench]}
rules:
  - id: no-secret
    stage: input
    why: One rule, so the policy span has something to say.
    detect: {keywords: [forbidden phrase]}
    action: block
"""


class _Drop(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        self.server.exports += 1  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def gateway(folder: Path, upstream: str, env: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    folder.mkdir()
    (folder / "policies").mkdir()
    (folder / "policies" / "bench.yaml").write_text(POLICY)
    url = upgrade(f"sqlite+aiosqlite:///{folder / 'situate.db'}")
    config = {
        "database_url": url,
        "backends": {"mock": {"base_url": f"{upstream}/v1"}},
        "models": {"bench": {"backend": "mock", "model": "mock-small"}},
        "policies_dir": str(folder / "policies"),
        "recording": {"spill_dir": str(folder / "spill")},
    }
    (folder / "gateway.yaml").write_text(yaml.safe_dump(config))
    key = make_keys(url, ("bench",))["bench"]
    port = free_port()
    args = ["serve", "--config", str(folder / "gateway.yaml"), "--port", str(port)]
    with process(args, f"http://127.0.0.1:{port}/readyz", folder / "gateway.log", env) as proc:
        yield f"http://127.0.0.1:{port}", key, proc.pid


def cpu_ms(pid: int) -> float:
    """The process's user + system CPU time so far (ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def call(client: httpx.Client, url: str, key: str, stream: bool) -> float:
    body = {"model": "bench", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    started = time.perf_counter()
    with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        r.read()
        assert r.status_code == 200, r.text
    return (time.perf_counter() - started) * 1000


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return (
        f"{name:12} p50 {q[49]:6.2f}  p90 {q[89]:6.2f}  p99 {q[98]:6.2f}  "
        f"mean {statistics.fmean(ms):6.2f} ms  ({len(ms)} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-traces-"))
    try:
        with ExitStack() as stack:
            sink = ThreadingHTTPServer(("127.0.0.1", 0), _Drop)
            sink.exports = 0  # type: ignore[attr-defined]
            sink_url = stack.enter_context(threaded(sink))
            port = free_port()
            mock = ["mock-upstream", "--port", str(port)]
            upstream = f"http://127.0.0.1:{port}"
            stack.enter_context(process(mock, f"{upstream}/healthz", folder / "upstream.log"))
            off_env = {"OTEL_TRACES_EXPORTER": "none"}
            on_env = {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
            }
            off = stack.enter_context(gateway(folder / "off", upstream, off_env))
            on = stack.enter_context(gateway(folder / "on", upstream, on_env))
            timings: dict[str, list[float]] = {"tracing off": [], "tracing on": []}
            with httpx.Client(timeout=30) as client:
                for _ in range(50):  # warm both
                    call(client, *off[:2], args.stream), call(client, *on[:2], args.stream)
                before = {"tracing off": cpu_ms(off[2]), "tracing on": cpu_ms(on[2])}
                for _ in range(args.requests):
                    timings["tracing off"].append(call(client, *off[:2], args.stream))
                    timings["tracing on"].append(call(client, *on[:2], args.stream))
            time.sleep(6)  # the last batch (the SDK's default delay is 5 s)
            spent = {"tracing off": cpu_ms(off[2]), "tracing on": cpu_ms(on[2])}
            for name, ms in timings.items():
                cpu = (spent[name] - before[name]) / args.requests
                print(f"{summary(name, ms)}  CPU {cpu:.2f} ms/request")
            added = statistics.median(timings["tracing on"]) - statistics.median(
                timings["tracing off"]
            )
            print(f"added at the median: {added * 1000:.0f} µs; OTLP exports: {sink.exports}")  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
