"""The policy store: any failure to compile a file is that file's reported problem, whatever
raised it (a PolicyError, or a detector's own code raising while it is built); the last good
revision keeps serving and the other contexts keep reloading."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.checks.registry import default_registry
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.store import PolicyStore
from tests.inprocess import ADMIN, POLICY, config_for, eventually, running, write_policy
from tests.servers import cli

# A model factory an operator names as ``package.module:attribute`` that raises when built.
RAISING_MODEL = '''\
class Unbuildable:
    def __init__(self) -> None:
        raise RuntimeError("the model's weights are not where its factory looks")
'''

WITH_MODEL = POLICY + """\
rules:
  - id: learned
    stage: input
    why: A test of the store.
    detect: {{classifier: {{model: "platform_raising_models:Unbuildable"}}}}
    action: block
"""

WITH_KEYWORD = POLICY + """\
rules:
  - id: {rule}
    stage: input
    why: A test of the store.
    detect: {{keywords: [{word}]}}
    action: block
"""

BAD_FIELD = POLICY + "no_such_field: true\n"


@pytest.fixture
def raising_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "platform_raising_models.py").write_text(RAISING_MODEL)
    monkeypatch.syspath_prepend(str(models))


def _touch(path: Path, text: str) -> None:
    """Rewrite a file so a poll sees it changed, even within the clock's resolution."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def _rules(policy: CompiledPolicy | None) -> list[str]:
    assert policy is not None
    return [rule.id for rule in policy.rules]


@pytest.mark.usefixtures("raising_model")
def test_any_compile_failure_is_its_files_problem_and_the_others_reload(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    model_file, plain_file = (
        write_policy(folder, context, WITH_KEYWORD.format(context=context, rule="first", word="x"))
        for context in ("model-context", "plain-context")
    )
    store = PolicyStore([folder], default_registry(), aliases=["test-small"])
    assert {p.context for p in store.refresh()} == {"model-context", "plain-context"}

    _touch(model_file, WITH_MODEL.format(context="model-context"))
    _touch(plain_file, BAD_FIELD.format(context="plain-context"))
    other = write_policy(folder, "other-context")
    loaded = store.refresh()

    assert [p.context for p in loaded] == ["other-context"]  # the others still load
    assert _rules(store.get("model-context")) == ["first"]  # the last good revision serves
    assert _rules(store.get("plain-context")) == ["first"]
    model_error = store.errors[model_file]
    assert "RuntimeError: the model's weights are not where its factory looks" in model_error
    assert str(model_file) in model_error
    assert "no_such_field" in store.errors[plain_file]
    assert store.file_error("model-context") == model_error
    assert other not in store.errors


@pytest.mark.usefixtures("raising_model")
def test_the_watcher_outlives_a_raising_detector(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    model_file = write_policy(folder, "model-context")
    plain_file = write_policy(folder, "plain-context")
    store = PolicyStore([folder], default_registry(), aliases=["test-small"])
    store.refresh()
    saved: list[str] = []

    async def save(compiled: CompiledPolicy) -> None:
        saved.append(compiled.context)

    async def scenario() -> None:
        watcher = asyncio.create_task(store.watch(0.01, save))
        _touch(model_file, WITH_MODEL.format(context="model-context"))
        while model_file not in store.errors:
            await asyncio.sleep(0.01)
        _touch(plain_file, WITH_KEYWORD.format(context="plain-context", rule="later", word="x"))
        while "plain-context" not in saved:
            await asyncio.sleep(0.01)
        assert not watcher.done()
        watcher.cancel()

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert _rules(store.get("plain-context")) == ["later"]
    assert _rules(store.get("model-context")) == []  # its last good revision: no rules


@pytest.mark.usefixtures("raising_model")
def test_readyz_and_the_admin_api_show_both_problems_and_stay_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN["authorization"].split()[1])
    folder = tmp_path / "policies"
    model_file = write_policy(folder, "model-context")
    plain_file = write_policy(folder, "plain-context")
    with running(config_for(tmp_path)) as (client, _):
        _touch(model_file, WITH_MODEL.format(context="model-context"))
        _touch(plain_file, BAD_FIELD.format(context="plain-context"))
        ready = eventually(
            lambda: (r := client.get("/readyz")).json()["checks"]["policies"]["refused_edits"] == 2
            and r
        )
        assert ready.status_code == 200
        checks = ready.json()["checks"]
        assert checks["background"]["ok"] is True  # the watcher still runs
        errors = "\n".join(checks["policies"]["errors"])
        assert "RuntimeError: the model's weights" in errors and "no_such_field" in errors
        listing = client.get("/admin/policies", headers=ADMIN).json()
        assert set(listing["errors"]) == {str(model_file), str(plain_file)}
        assert {p["context"] for p in listing["data"]} == {"model-context", "plain-context"}


@pytest.mark.usefixtures("raising_model")
def test_policy_check_reports_a_raising_detector_as_the_files_problem(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    broken = write_policy(folder, "model-context", WITH_MODEL.format(context="model-context"))
    write_policy(folder, "plain-context")
    config_for(tmp_path)
    models = str(tmp_path / "models")
    done = cli(
        ["policy", "check", str(folder), "--config", str(tmp_path / "gateway.yaml")],
        {"PYTHONPATH": os.pathsep.join([models, os.environ.get("PYTHONPATH", "")])},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"{broken}: cannot compile: RuntimeError: the model's weights are not where its "
        "factory looks"
    )
    assert "ok  plain-context" in done.stdout
