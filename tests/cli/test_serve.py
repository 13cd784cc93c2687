"""The gateway as a newcomer and an operator run it: the embedded default, and shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import openai

from tests.servers import ADMIN_TOKEN, cli, free_port, process

CLEAN_ENV: dict[str, str | None] = {"GATEWAY_DATABASE_URL": None, "GATEWAY_CONFIG": None}


def test_the_embedded_default_serves_the_demo_backend(tmp_path: Path) -> None:
    """README's first command: no config, SQLite under ./data, the built-in demo backend."""
    port = free_port()
    with process(
        ["serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        tmp_path / "serve.log",
        cwd=tmp_path,
        env=CLEAN_ENV,
    ):
        assert (tmp_path / "data" / "situate.db").is_file()
        made = cli(
            ["keys", "create", "--context", "demo", "--name", "readme"], CLEAN_ENV, cwd=tmp_path
        )
        assert made.returncode == 0, made.stderr
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=made.stdout.strip(), max_retries=0
        ) as client:
            assert [m.id for m in client.models.list()] == ["demo-small", "demo-large"]
            reply = client.chat.completions.create(
                model="demo-small", messages=[{"role": "user", "content": "Hello"}]
            )
            assert "You said: Hello" in (reply.choices[0].message.content or "")
            parts = [
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model="demo-small",
                    messages=[{"role": "user", "content": "Hello"}],
                    stream=True,
                )
                if c.choices
            ]
            assert "".join(parts) == reply.choices[0].message.content
    listed = cli(["exchanges", "list", "--json"], CLEAN_ENV, cwd=tmp_path)
    assert len(listed.stdout.splitlines()) == 2


def test_shutdown_writes_every_queued_record(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    env = {"GATEWAY_DATABASE_URL": db, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    port = free_port()
    with process(
        ["serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        tmp_path / "serve.log",
        env=env,
        cwd=tmp_path,
    ) as proc:
        key = cli(["keys", "create", "--context", "demo", "--name", "t"], env).stdout.strip()

        async def burst() -> int:
            async with httpx.AsyncClient(timeout=30) as http:
                responses = await asyncio.gather(
                    *(
                        http.post(
                            f"http://127.0.0.1:{port}/v1/chat/completions",
                            headers={"authorization": f"Bearer {key}"},
                            json={
                                "model": "demo-small",
                                "messages": [{"role": "user", "content": f"n{i}"}],
                            },
                        )
                        for i in range(200)
                    )
                )
            return sum(r.status_code == 200 for r in responses)

        assert asyncio.run(burst()) == 200
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    listed = cli(["exchanges", "list", "--limit", "1000", "--json"], env)
    assert len(listed.stdout.splitlines()) == 200


def test_a_database_outage_is_a_503_and_the_record_is_spilled_not_lost(tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        "GATEWAY_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone",
        "GATEWAY_CONFIG": None,
    }
    port = free_port()
    with process(
        ["serve", "--port", str(port)],
        f"http://127.0.0.1:{port}/healthz",
        tmp_path / "serve.log",
        env=env,
        cwd=tmp_path,
    ):
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": "Bearer sk-gw-" + "x" * 43},
            json={"model": "demo-small", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert response.headers["retry-after"] == "5"
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 20
        spilled: list[dict[str, object]] = []
        while not spilled and time.monotonic() < deadline:
            time.sleep(0.2)
            spilled = [
                json.loads(line)
                for path in (tmp_path / "data" / "spill").glob("*.jsonl")
                for line in path.read_text().splitlines()
            ]
    assert [entry["exchange"]["id"] for entry in spilled] == [request_id]
    assert spilled[0]["exchange"]["status"] == "gateway_error"
    assert spilled[0]["exchange"]["http_status"] == 503
