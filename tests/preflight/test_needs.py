"""A run's permissions are derived from what it runs, and the table knows everything the
experiments, plans and suites use (so it cannot silently fall behind them)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from resilience.chaos.runner import DEFAULT_DEAD_MAN_SECONDS, with_safeguards
from resilience.gameday.permissions import plan_needs
from resilience.gameday.plan import load_plan
from resilience.observe.monitors import MonitorScope, watched_kinds
from resilience.observe.records import ResourceKind
from resilience.preflight.needs import SuiteTest, explain, needs, suite_needs, unknown
from resilience.preflight.table import ACTIVITIES, CONTROLS, SUITE_FIXTURES, SUITES
from tests.builders import REPO_ROOT

EXPERIMENTS = sorted((REPO_ROOT / "experiments").glob("*.yaml"))
PLANS = sorted((REPO_ROOT / "experiments" / "gameday").glob("*.yaml"))


def experiment(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "experiments" / name).read_text())
    return loaded


def action(module: str, func: str, **arguments: Any) -> dict[str, Any]:
    provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
    return {"type": "action", "name": func, "provider": provider}


def names(permissions: Any) -> list[str]:
    return sorted(str(p) for p in permissions)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_uses_only_what_the_table_knows(path: Path) -> None:
    guarded = with_safeguards(yaml.safe_load(path.read_text()), DEFAULT_DEAD_MAN_SECONDS, ["A"])
    assert explain(guarded).unknown == ()


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_every_plan_uses_only_what_the_table_knows(path: Path) -> None:
    found = plan_needs(load_plan(path), MonitorScope(namespace="harmonyflow"))
    assert found.unknown == ()
    assert found.permissions, "a game day that asks nothing of the cluster: the derivation broke"


def test_every_table_row_names_a_function_or_control_that_exists() -> None:
    absent = []
    for key in ACTIVITIES:
        module, _, func = key.rpartition(".")
        if not callable(getattr(importlib.import_module(module), func, None)):
            absent.append(key)
    for module in CONTROLS:
        importlib.import_module(module)
    assert not absent, f"table rows for functions that do not exist: {absent}"


def test_every_activity_our_modules_export_is_in_the_table() -> None:
    missing = []
    for path in sorted((REPO_ROOT / "resilience" / "chaos").glob("*.py")):
        module = importlib.import_module(f"resilience.chaos.{path.stem}")
        for name in getattr(module, "__all__", ()):
            if f"resilience.chaos.{path.stem}.{name}" not in ACTIVITIES:
                missing.append(f"resilience.chaos.{path.stem}.{name}")
    assert not missing, f"activities without a row in preflight/table.py: {missing}"


def test_every_resilience_suite_module_is_in_the_table() -> None:
    marked = {
        f"suites.{p.stem}"
        for p in (REPO_ROOT / "suites").glob("test_*.py")
        if re.search(r"pytest\.mark\.resilience\b", p.read_text())
    }
    assert marked == set(SUITES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "pod-kill.yaml",
            [
                "delete pods in harmonyflow",
                "get deployments in harmonyflow",
                "get pods in harmonyflow",
                "list endpointslices in harmonyflow",
                "list nodes",
                "list pods in harmonyflow",
            ],
            id="pod-kill",
        ),
        pytest.param(
            "az-drain.yaml",
            [
                "create pods/eviction in harmonyflow",
                "get deployments in harmonyflow",
                "list endpointslices in harmonyflow",
                "list nodes",
                "list pods in harmonyflow",
                "patch nodes",
            ],
            id="az-drain",
        ),
        pytest.param(
            "liveness-hang.yaml",
            [
                "create deployments in harmonyflow",
                "delete deployments named session-state-service-chaos-canary in harmonyflow",
                "get deployments in harmonyflow",
                "list endpointslices in harmonyflow",
                "list pods in harmonyflow",
            ],
            id="canary-and-its-journaled-delete",
        ),
        pytest.param(
            "dns-failure.yaml",
            [
                "create dnschaos.chaos-mesh.org in harmonyflow",
                "delete dnschaos.chaos-mesh.org named dns-failure-database in harmonyflow",
                "get deployments in harmonyflow",
                "get dnschaos.chaos-mesh.org named dns-failure-database in harmonyflow",
                "list pods in harmonyflow",
            ],
            id="chaos-mesh-object-and-its-journaled-delete",
        ),
        pytest.param("broker-outage.yaml", [], id="aws-and-prometheus-only"),
    ],
)
def test_an_experiments_needs(name: str, expected: list[str]) -> None:
    assert names(needs(experiment(name))) == expected


def test_variables_move_the_needs_to_another_namespace() -> None:
    moved = needs(experiment("az-drain.yaml"), {"namespace": "harmonyflow-staging"})
    assert "create pods/eviction in harmonyflow-staging" in names(moved)
    assert not [p for p in names(moved) if p.endswith(" in harmonyflow")]


def test_a_budget_makes_the_fis_action_count_the_zones_pods() -> None:
    run = action("resilience.chaos.fis", "run_fis_experiment", template_file="t", zone="z")
    without = {"configuration": {"namespace": "harmonyflow"}, "method": [run]}
    budget = {"namespace": "harmonyflow", "max_disrupted_pods": 1}
    with_budget = {"configuration": budget, "method": [run]}
    assert names(needs(without)) == []
    assert names(needs(with_budget)) == ["list nodes", "list pods in harmonyflow"]


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        pytest.param(
            action("chaosk8s.node.actions", "drain_nodes", label_selector="zone=a"),
            [
                "create pods/eviction in every namespace",
                "get pods in every namespace",
                "list nodes",
                "list pods in every namespace",
                "patch nodes",
            ],
            id="chaosk8s-drain-reaches-every-namespace",
        ),
        pytest.param(
            action("chaosk8s.pod.actions", "terminate_pods", label_selector="app=a"),
            ["delete pods in default", "list pods in default"],
            id="chaosk8s-namespace-defaults-to-default",
        ),
        pytest.param(
            action("chaosk8s.pod.actions", "exec_in_pods", cmd="ls", ns="harmonyflow"),
            [
                "create pods/exec in harmonyflow",
                "get pods/exec in harmonyflow",
                "list pods in harmonyflow",
            ],
            id="exec-over-a-websocket",
        ),
        pytest.param(
            action("chaosaws.ec2.actions", "stop_instances", az="a"), [], id="aws-is-not-rbac"
        ),
    ],
)
def test_activity_rows(activity: dict[str, Any], expected: list[str]) -> None:
    assert names(needs({"method": [activity]})) == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            {"method": [action("chaosk8s.secret.actions", "delete_secret", name="s")]},
            ["chaosk8s.secret.actions.delete_secret"],
            id="an-activity-not-in-the-table",
        ),
        pytest.param(
            {
                "method": [
                    {
                        "type": "action",
                        "name": "k",
                        "provider": {"type": "process", "path": "kubectl"},
                    }
                ]
            },
            ["process kubectl"],
            id="a-process-may-run-anything",
        ),
        pytest.param(
            {"controls": [{"name": "c", "provider": {"type": "python", "module": "my.control"}}]},
            ["control my.control"],
            id="a-control-not-in-the-table",
        ),
        pytest.param(
            {
                "method": [
                    {"ref": "elsewhere"},
                    {"type": "action", "name": "h", "provider": {"type": "http", "url": "u"}},
                ]
            },
            [],
            id="refs-and-http-are-no-unknowns",
        ),
    ],
)
def test_what_the_table_does_not_know_is_named(
    document: dict[str, Any], expected: list[str]
) -> None:
    assert unknown(document) == expected


def test_a_suite_session_needs_its_modules_fixtures_and_watches() -> None:
    tests = [
        SuiteTest("suites.test_pod_kill", frozenset({"target", "monitors"})),
        SuiteTest("suites.test_rolling_update", frozenset({"target"}), destructive=True),
    ]
    kinds = watched_kinds(MonitorScope(namespace="harmonyflow"))
    found = suite_needs(tests, "harmonyflow", kinds)
    listed = names(found.permissions)
    assert "delete pods in harmonyflow" in listed  # kill_one_pod, through the activity table
    assert "watch replicasets in harmonyflow" in listed  # the monitors fixture
    assert "update deployments in harmonyflow" in listed  # the destructive restore (PUT)
    assert "create poddisruptionbudgets in harmonyflow" in listed
    replicasets = next(p for p in found.permissions if str(p) == "list replicasets in harmonyflow")
    assert found.by[replicasets] == {"watch of ReplicaSet objects", "suites.test_rolling_update"}
    assert found.unknown == ()


def test_a_suite_module_not_in_the_table_is_named() -> None:
    found = suite_needs([SuiteTest("suites.test_new_fault")], "harmonyflow", ())
    assert found.unknown == ("suite suites.test_new_fault",)


def test_the_fixture_table_names_only_fixtures_or_markers_that_exist() -> None:
    conftest = (REPO_ROOT / "suites" / "conftest.py").read_text()
    for fixture in SUITE_FIXTURES:
        assert f"def {fixture}(" in conftest or f'"{fixture}"' in conftest, fixture


def test_watches_cover_every_kind_the_monitors_can_watch() -> None:
    everything = MonitorScope(namespace="n", events=True)
    assert set(watched_kinds(everything)) == set(ResourceKind)
