"""deploy/grafana/situate.json: every metric its panels query is one a running gateway really
exports (scraped from its /metrics after traffic of every kind), and every metric the gateway
exports has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.inprocess import eventually
from tests.servers import Upstream
from tests.telemetry.metrics_app import (
    MeteredGateway,
    audit_rows,
    environment,
    metered,
    metered_config,
    traffic,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "situate.json"
#: what is not a metric in an expression: PromQL's words, Grafana's variables
_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
          "unless", "offset", "le", "inf", "nan"}  # fmt: skip
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, label
    matchers, grouping labels, ranges or Grafana's variables."""
    text = re.sub(r'"[^"]*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    text = re.sub(r"\$\w+", "", text)
    names = set()
    for found in _IDENTIFIER.finditer(text):
        rest = text[found.end() :].lstrip()
        if rest.startswith("(") or found.group() in _WORDS:
            continue
        names.add(found.group())
    return names


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return [p for p in found if p["type"] != "row"]


@pytest.fixture(scope="module")
def exported(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The sample names a metered gateway serves at /metrics once every gauge has a value."""
    with environment():
        folder = tmp_path_factory.mktemp("dashboard")
        config = metered_config(folder, upstream, gauges_seconds=0.1)
        with metered(config) as served:
            traffic(served)
            audit_rows(served, "dashboard", 3, seconds_ago=5)
            yield eventually(lambda: _complete(served), timeout=15)


def _complete(served: MeteredGateway) -> set[str] | None:
    scraped = served.client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    names = {
        sample.name
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
    }
    wanted = ("gateway_review_backlog", "gateway_audit_checkpoint_age_seconds")
    return names if all(w in names for w in wanted) else None


def test_every_panel_queries_metrics_the_gateway_exports(exported: set[str]) -> None:
    queried: set[str] = set()
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            missing = names - exported
            assert not missing, f"{panel['title']}: {sorted(missing)} not exported"
            queried |= names
    ours = {n for n in exported if n.startswith(("gateway_", "gen_ai_"))}
    families = {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in ours}
    unused = {f for f in families if not any(q.startswith(f) for q in queried)}
    assert not unused, f"exported, on no panel: {sorted(unused)}"


def test_the_dashboard_asks_for_its_prometheus() -> None:
    model = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_metric_names_reads_past_labels_and_functions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, gateway_context) '
        '(rate(gen_ai_client_operation_duration_seconds_bucket{gateway_context=~"$context"}'
        "[$__rate_interval])))"
    )
    assert metric_names(expr) == {"gen_ai_client_operation_duration_seconds_bucket"}
    assert metric_names("max(gateway_recorder_lag_seconds) or gateway_x") == {
        "gateway_recorder_lag_seconds",
        "gateway_x",
    }
