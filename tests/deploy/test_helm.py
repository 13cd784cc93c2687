"""The Helm chart (helm/situate): linted, rendered with the default and a production-like values
file, every manifest validated offline against the Kubernetes schemas, and checked against the
gateway itself: the config file it renders is one the gateway accepts, the probes point at
routes the app serves, the environment names are ones gateway/config.py reads, the security
context is the Dockerfile's non-root user, the migration hook runs a real `gateway db upgrade`.

Needs a `helm` binary (SITUATE_HELM, else on PATH; .ci/run fetches one): skipped with the
reason without it, unless SITUATE_REQUIRE_HELM=1 (as CI sets).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.app import create_app
from gateway.checks.registry import default_registry
from gateway.config import EnvSettings, default_config
from gateway.policy.loader import load_policy
from gateway.version import __version__
from tests.deploy import chart
from tests.deploy.chart import APP_DIR, CHART, PRODUCTION, ROOT
from tests.servers import in_process

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas.
KUBERNETES = ("1.25.0", kubernetes_validate.latest_version())
DEMO = "http://127.0.0.1:8080/_demo/v1"  # the app is only built, never served


@pytest.fixture(scope="module", params=["default", "production"])
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return chart.render(PRODUCTION) if request.param == "production" else chart.render()


def test_the_chart_lints_strictly_with_either_values_file() -> None:
    for values in ((), ("-f", str(PRODUCTION))):
        done = chart.run("lint", "--strict", CHART, *values)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_manifest_is_valid_for_the_kubernetes_versions_supported(
    manifests: list[dict[str, Any]],
) -> None:
    kinds = {d["kind"] for d in manifests}
    assert {"Deployment", "Service", "ConfigMap", "Job", "PodDisruptionBudget"} <= kinds
    for doc in manifests:
        for version in KUBERNETES:
            # strict: a field Kubernetes does not know is an error, not silently dropped
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_production_values_scale_share_limits_and_keep_the_spool() -> None:
    docs = chart.render(PRODUCTION)
    hpa = chart.one(docs, "HorizontalPodAutoscaler")
    deployment = chart.one(docs, "Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    data = next(v for v in chart.pod(docs)["volumes"] if v["name"] == "data")
    assert "ephemeral" in data and "emptyDir" not in data
    assert "GATEWAY_REDIS_URL" in {e["name"] for e in chart.container(docs)["env"]}


def test_the_rendered_config_file_is_one_the_gateway_accepts(
    manifests: list[dict[str, Any]],
) -> None:
    config = chart.config(manifests)
    assert config.models  # the aliases clients call
    env = {e["name"]: e for e in chart.container(manifests)["env"]}
    mount = next(m for m in chart.container(manifests)["volumeMounts"] if m["name"] == "config")
    assert PurePosixPath(env["GATEWAY_CONFIG"]["value"]).parent == PurePosixPath(
        mount["mountPath"]
    )


def test_the_probes_point_at_the_routes_the_gateway_serves_for_them(
    manifests: list[dict[str, Any]],
) -> None:
    routes = create_app(default_config(), demo_base_url=DEMO).openapi()["paths"]
    container = chart.container(manifests)
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("readiness", "liveness")}
    probes["startup"] = container["startupProbe"]["httpGet"]
    for probe in probes.values():
        assert probe["path"] in routes, probe
        assert probe["port"] == "http"
    # readiness is the full check (database schema, policies, recorder, backends); liveness
    # only that the process answers: a database outage must not restart every pod
    assert routes[probes["readiness"]["path"]]["get"]["operationId"].startswith("readyz_")
    assert routes[probes["liveness"]["path"]]["get"]["operationId"].startswith("healthz_")
    (port,) = container["ports"]
    command = container["command"]
    assert port["name"] == "http"
    assert command[:2] == ["gateway", "serve"]
    assert int(command[command.index("--port") + 1]) == port["containerPort"]


def test_every_environment_variable_is_one_the_gateway_reads(
    manifests: list[dict[str, Any]],
) -> None:
    config = chart.config(manifests)
    read = {f"GATEWAY_{name}".upper() for name in EnvSettings.model_fields}
    read |= {config.admin_token_env} | {b.api_key_env for b in config.backends.values()}
    secrets = {"GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL", config.admin_token_env}
    secrets |= {b.api_key_env for b in config.backends.values() if b.api_key_env}
    job = chart.one(manifests, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]
    for container in (chart.container(manifests), job):
        for env in container["env"]:
            assert env["name"] in read, env["name"]
            if env["name"] in secrets:  # never a value in the chart
                assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
    names = [e["name"] for e in chart.container(manifests)["env"]]
    assert len(names) == len(set(names))


def test_the_pods_run_as_the_images_non_root_user_on_a_read_only_root(
    manifests: list[dict[str, Any]],
) -> None:
    uid = int(re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())[1])  # type: ignore[index]
    job = chart.one(manifests, "Job", "migrate")["spec"]["template"]["spec"]
    for pod in (chart.pod(manifests), job):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context.get("privileged", False) is False


def test_every_path_the_gateway_writes_is_on_a_writable_volume(
    manifests: list[dict[str, Any]],
) -> None:
    config = chart.config(manifests)
    writable = [
        PurePosixPath(m["mountPath"])
        for m in chart.container(manifests)["volumeMounts"]
        if not m.get("readOnly")
    ]
    for path in (config.recording.spill_dir, config.exports_dir, Path("/tmp")):
        absolute = APP_DIR / PurePosixPath(path.as_posix())
        assert any(absolute.is_relative_to(m) for m in writable), absolute


def test_the_migration_hook_runs_gateway_db_upgrade_before_install_and_upgrade(
    manifests: list[dict[str, Any]],
) -> None:
    job = chart.one(manifests, "Job", "migrate")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gateway", "db", "upgrade"]
    assert container["image"] == chart.container(manifests)["image"]
    assert in_process([*container["command"][1:], "--help"], {}).returncode == 0  # a real command
    database = {e["name"]: e for e in container["env"]}["GATEWAY_DATABASE_URL"]
    served = {e["name"]: e for e in chart.container(manifests)["env"]}["GATEWAY_DATABASE_URL"]
    assert database == served  # the schema migrated is the one the gateways use


def test_the_pods_grace_outlasts_the_gateways_own_shutdown(
    manifests: list[dict[str, Any]],
) -> None:
    config = chart.config(manifests)
    pod = chart.pod(manifests)
    pre_stop = int(chart.container(manifests)["lifecycle"]["preStop"]["exec"]["command"][1])
    needed = pre_stop + config.server.shutdown_grace + 5 + config.database.statement_timeout
    assert pod["terminationGracePeriodSeconds"] >= needed  # docs/reliability.md's sum


def test_the_chart_refuses_values_that_would_leak_or_break() -> None:
    assert "database_url" in chart.refusal("config.database_url=postgresql://u:secret@db/x")
    unkeyed = chart.refusal(
        "config.backends.up.base_url=https://api.example.com/v1",
        "config.backends.up.api_key_env=UP_KEY",
    )
    assert "UP_KEY" in unkeyed and "upstreamKeys" in unkeyed
    assert "shutdown_grace" in chart.refusal("terminationGracePeriodSeconds=20")
    assert "existingSecret" in chart.refusal("database.existingSecret=")
    # the root filesystem is read-only: what the gateway writes stays on its volumes
    assert "spill_dir" in chart.refusal("config.recording.spill_dir=/var/spool/situate")
    assert "exports_dir" in chart.refusal("config.exports_dir=../exports")
    moved = ("config.policies_dir=/etc/policies", "policies.existingConfigMap=mine")
    assert "policies_dir" in chart.refusal(*moved)
    kept = chart.config(chart.render(sets=("config.recording.spill_dir=./data/spool",)))
    assert kept.recording.spill_dir == Path("data/spool")


def test_policy_files_mount_back_at_their_paths_and_compile(tmp_path: Path) -> None:
    policy = ROOT / "policies" / "kids-tutor.yaml"
    files = {"kids-tutor.yaml": policy}
    for guideline in sorted((ROOT / "policies" / "guidelines").glob("kids-*.md")):
        files[f"guidelines/{guideline.name}"] = guideline
    docs = chart.render(chart.policy_values(tmp_path, files))
    folder = tmp_path / "policies"
    chart.lay_out_policies(docs, folder)
    compiled = load_policy(folder / "kids-tutor.yaml", default_registry())
    shipped = load_policy(policy, default_registry())
    assert compiled.revision == shipped.revision
    served = {queue: guideline.revision for queue, guideline in compiled.guidelines.items()}
    assert served == {queue: guideline.revision for queue, guideline in shipped.guidelines.items()}
    assert served  # the guidelines were found at their relative paths
    mount = next(m for m in chart.container(docs)["volumeMounts"] if m["name"] == "policies")
    assert APP_DIR / PurePosixPath(chart.config(docs).policies_dir.as_posix()) == PurePosixPath(
        mount["mountPath"]
    )


def test_the_image_tag_defaults_to_the_gateways_version() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert meta["appVersion"] == __version__
    assert chart.container(chart.render())["image"].endswith(f":{__version__}")


def test_the_notes_name_every_secret_the_release_reads() -> None:
    done = chart.run("install", "rel", CHART, "-f", PRODUCTION, "--dry-run=client", "-n", "ai")
    assert done.returncode == 0, done.stderr
    notes = done.stdout[done.stdout.index("NOTES:") :]
    docs = chart.render(PRODUCTION)
    job = chart.one(docs, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for container in (chart.container(docs), job)
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert len(refs) == 4  # the database, the admin token, Redis, one upstream key
    for name, key in refs:
        assert re.search(rf"\b{re.escape(name)}\b.*\n?.*\b{re.escape(key)}\b", notes), (name, key)


def test_configmaps_of_the_operators_own_are_mounted_instead_of_rendered() -> None:
    sets = ("existingConfigMap=my-config", "policies.existingConfigMap=my-policies")
    docs = chart.render(sets=sets)
    assert not [d for d in docs if d["kind"] == "ConfigMap"]  # neither is the chart's
    volumes = {v["name"]: v.get("configMap", {}).get("name") for v in chart.pod(docs)["volumes"]}
    assert volumes["config"] == "my-config" and volumes["policies"] == "my-policies"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES[-1], strict=True)


def test_each_pod_keeps_its_own_audit_chain_with_the_operators_keys() -> None:
    env = {e["name"]: e for e in chart.container(chart.render())["env"]}
    chain = env["GATEWAY_AUDIT_CHAIN_ID"]["valueFrom"]
    assert chain == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "GATEWAY_AUDIT_KEYS_DIR" not in env  # no Secret: keys made in the data volume
    docs = chart.render(sets=("audit.existingSecret=situate-audit",))
    container = chart.container(docs)
    env = {e["name"]: e for e in container["env"]}
    assert env["GATEWAY_AUDIT_KEYS_DIR"]["value"] == "/etc/situate/audit"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["audit-keys"] == {
        "name": "audit-keys", "mountPath": "/etc/situate/audit", "readOnly": True
    }
    volume = next(v for v in chart.pod(docs)["volumes"] if v["name"] == "audit-keys")
    assert volume["secret"]["secretName"] == "situate-audit"
    assert {i["key"] for i in volume["secret"]["items"]} == {"hmac.key", "signing.key"}
