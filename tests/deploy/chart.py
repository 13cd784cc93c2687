"""The Helm chart rendered by a real helm, and the parts of its manifests the tests read.

Needs a `helm` binary (SITUATE_HELM, else on PATH; .ci/run fetches one): a test that asks for
it is skipped with the reason without it, unless SITUATE_REQUIRE_HELM=1 (as CI sets).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "situate"
PRODUCTION = CHART / "ci" / "production-values.yaml"
APP_DIR = PurePosixPath("/app")  # the image's WORKDIR: relative config paths resolve here


def helm() -> str:
    found = os.environ.get("SITUATE_HELM") or shutil.which("helm")
    if found and Path(found).is_file():
        return found
    message = "helm not found (set SITUATE_HELM, or run .ci/run, which fetches it)"
    if os.environ.get("SITUATE_REQUIRE_HELM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [helm(), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    flags = [arg for v in values for arg in ("-f", str(v))]
    flags += [arg for s in sets for arg in ("--set", s)]
    done = run("template", "rel", CHART, "--namespace", "ai", *flags)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def refusal(*sets: str) -> str:
    done = run("template", "rel", CHART, *[a for s in sets for a in ("--set", s)])
    assert done.returncode != 0, f"rendered with {sets}"
    return done.stderr


def one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = pod(docs)["containers"]
    return dict(only)


def config(docs: list[dict[str, Any]]) -> GatewayConfig:
    (data,) = [d["data"]["config.yaml"] for d in docs if "config.yaml" in d.get("data", {})]
    return GatewayConfig.model_validate(yaml.safe_load(data))  # the gateway's own validation


def policy_values(folder: Path, files: dict[str, Path]) -> Path:
    """A values file giving ``policies.files``: a path in the folder -> that file's text."""
    texts = {name: path.read_text(encoding="utf-8") for name, path in files.items()}
    values = folder / "policy-values.yaml"
    values.write_text(yaml.safe_dump({"policies": {"files": texts}}), encoding="utf-8")
    return values


def lay_out_policies(docs: list[dict[str, Any]], folder: Path) -> None:
    """The policies ConfigMap written out as the kubelet mounts it: each item at its path."""
    volume = next(v for v in pod(docs)["volumes"] if v["name"] == "policies")["configMap"]
    data = next(d for d in docs if d["metadata"]["name"] == volume["name"])["data"]
    for item in volume["items"]:
        (folder / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (folder / item["path"]).write_text(data[item["key"]], encoding="utf-8")
