"""The Grafana dashboard: valid, every query parses, every metric it reads exists.

A metric "exists" when the service exports it (its `Metrics()` rendered), the control
plane's kube-state-metrics view serves it (`statemetrics.families`), a recording rule
of deploy/monitoring/rules defines it, or Prometheus itself makes it (ALERTS).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.images.session_state.metrics import Metrics
from sandbox.kube import statemetrics
from tests.builders import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "monitoring" / "grafana" / "session-state.json"
RULES = sorted((REPO_ROOT / "deploy" / "monitoring" / "rules").glob("*.yaml"))
PROMETHEUS_BUILTINS = {"ALERTS", "ALERTS_FOR_STATE", "up"}
REQUIRED_PANEL_TOPICS = (
    "ready pods per zone",
    "hpa max",
    "requests per second",
    "error ratio",
    "latency p95 / p99",
    "websocket",
    "database writes",
    "outbox",
    "firing alerts",
)
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels removed).

    >>> sorted(metric_names('sum by (a) (rate(x_total{b="c"}[1m])) / on (a) y > 0.5'))
    ['x_total', 'y']
    """
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub(" ", text)
    return {
        name
        for name in _IDENTIFIER.findall(text)
        if name.lower() not in PROMQL_WORDS and not re.fullmatch(r"\d.*", name)
    }


def service_metrics() -> set[str]:
    """Series names of the service's registry, from its own exposition (# TYPE lines)."""
    names: set[str] = set()
    for line in Metrics().render().decode().splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            base = name.removesuffix("_total")
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "histogram":
            names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def control_plane_metrics() -> set[str]:
    return {family.name for family in statemetrics.families(statemetrics.ClusterState())}


def recorded_metrics() -> set[str]:
    return {
        str(rule["record"])
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_dashboard_has_what_grafana_requires() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    for panel in board["panels"]:
        assert {"type", "title", "gridPos", "targets"} <= set(panel), panel.get("title")
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["refId"] and target["expr"]


def test_the_dashboard_shows_what_on_call_needs() -> None:
    titles = " | ".join(panel["title"].lower() for panel in dashboard()["panels"])
    missing = [topic for topic in REQUIRED_PANEL_TOPICS if topic not in titles]
    assert not missing, f"no panel for {missing} in: {titles}"


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """promtool's PromQL parser on every expr, each wrapped as a recording rule."""
    rules = [
        {"record": f"dashboard:panel_{index}", "expr": expr.replace("$namespace", "harmonyflow")}
        for index, (_, expr) in enumerate(exprs())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        ["/usr/bin/promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_bad_panel_query_is_caught(tmp_path: Path) -> None:
    """Twin: the same check on a query with a missing parenthesis fails."""
    path = tmp_path / "bad.yaml"
    bad = {"record": "dashboard:bad", "expr": "sum(rate(session_state_http_requests_total[1m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [bad]}]}))
    done = subprocess.run(
        ["/usr/bin/promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0


def test_every_metric_the_dashboard_reads_is_exported_or_recorded() -> None:
    known = service_metrics() | control_plane_metrics() | recorded_metrics() | PROMETHEUS_BUILTINS
    unknown = {
        (title, name) for title, expr in exprs() for name in metric_names(expr) if name not in known
    }
    assert not unknown, f"metrics nobody exports: {sorted(unknown)}"


def test_the_alert_rules_read_only_exported_or_recorded_metrics() -> None:
    known = service_metrics() | control_plane_metrics() | recorded_metrics()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(str(rule["expr"])) - known
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('rate(a_total{x="y"}[5m])', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ('a * on (pod) group_left (node) b{c=~"d.*"}', {"a", "b"}),
        ('ALERTS{alertstate="firing"}', {"ALERTS"}),
        ("ns:rec:rate1m > 0.05", {"ns:rec:rate1m"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_misspelled_metric_is_reported() -> None:
    """Twin of the existence check: a name nobody exports is caught."""
    known = service_metrics() | control_plane_metrics() | recorded_metrics()
    assert "session_state_http_request_total" not in known
    assert metric_names("rate(session_state_http_request_total[1m])") - known
