"""The chart's pods as rendered, run here: the gateway container's command and environment
(its Secrets resolved to a fresh PostgreSQL database and an admin token), the config file from
the chart's ConfigMap, then the migration hook's command. The probes mean what the chart says:
/healthz answers while the schema is missing, /readyz is 503 until the hook ran, then 200.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.databases import postgres_database
from tests.deploy import chart
from tests.servers import free_port, in_process, process

Secrets = dict[tuple[str, str], str]


def _environment(container: dict[str, Any], values: Secrets, config: Path) -> dict[str, str]:
    """The container's env as the kubelet gives it: values, and Secret keys looked up."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:  # the downward API: the pod's own name
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[entry["name"]] = "situate-7d9f8-x2k4q"
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = values[(ref["name"], ref["key"])]
    if "GATEWAY_CONFIG" in env:
        env["GATEWAY_CONFIG"] = str(config)  # the ConfigMap's mount, here
    return env


def _serve_args(container: dict[str, Any], port: int) -> list[str]:
    command: list[str] = container["command"]
    assert command[:2] == ["gateway", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # in the pod
    return ["serve", "--host", "127.0.0.1", "--port", str(port)]  # only loopback here


def _readiness(url: str, status: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url, timeout=10)
        if answer.status_code == status or time.monotonic() > deadline:
            assert answer.status_code == status, answer.text
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.2)


def test_the_pod_serves_its_probes_once_the_migration_hook_ran(tmp_path: Path) -> None:
    base = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("the chart's pods need PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")
    # one light policy (demo's) through the chart's policies ConfigMap, laid out as mounted
    values = chart.policy_values(tmp_path, {"demo.yaml": chart.ROOT / "policies" / "demo.yaml"})
    docs = chart.render(values, sets=("adminToken.existingSecret=situate-admin",))
    gateway = chart.container(docs)
    job = chart.one(docs, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]
    config = tmp_path / "etc" / "config.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(chart.config(docs).model_dump(mode="json")))
    workdir = tmp_path / "app"  # the image's WORKDIR, where data/ (the emptyDir) lives
    chart.lay_out_policies(docs, workdir / chart.config(docs).policies_dir)
    port = free_port()
    probes = {k: gateway[f"{k}Probe"]["httpGet"]["path"] for k in ("liveness", "readiness")}
    token = secrets.token_hex(16)
    with postgres_database(base, f"situate_helm_{secrets.token_hex(4)}") as url:
        secret_values = {("situate-database", "url"): url, ("situate-admin", "token"): token}
        env = _environment(gateway, secret_values, config)
        live = f"http://127.0.0.1:{port}{probes['liveness']}"
        with process(_serve_args(gateway, port), live, tmp_path / "gateway.log", env, workdir):
            ready = f"http://127.0.0.1:{port}{probes['readiness']}"
            before = _readiness(ready, 503)  # no schema yet: out of the Service, not restarted
            assert before["checks"]["database"]["ok"] is False
            assert httpx.get(live).status_code == 200
            job_env = _environment(job, secret_values, config)
            migrated = in_process(job["command"][1:], job_env)  # the hook's command and env
            assert migrated.returncode == 0, migrated.stderr
            after = _readiness(ready, 200)
            assert after["status"] == "ready", after
            admin = httpx.get(
                f"http://127.0.0.1:{port}/admin/policies",
                headers={"authorization": f"Bearer {token}"},
            )
            assert admin.status_code == 200, admin.text  # the token reached the right variable
            assert [p["context"] for p in admin.json()["data"]] == ["demo"]
