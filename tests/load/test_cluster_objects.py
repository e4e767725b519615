"""What an on-cluster load run creates: deploy/locust's objects as one run's, decided purely."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from resilience.errors import InvalidInputError, ManifestError
from resilience.load.cluster import (
    AUTOSTART_DONE,
    RUN_LABEL,
    ClusterLoad,
    cluster_objects,
    master_finished,
)
from resilience.load.runner import LoadPlan, locust_commands
from resilience.manifests import render
from tests.load.locustrun import LOADTESTS

REST, WS = LOADTESTS / "sessions_rest.py", LOADTESTS / "sessions_ws.py"


@pytest.fixture(scope="module")
def rendered() -> list[Mapping[str, Any]]:
    return [o.body for o in render(LOADTESTS.parent / "deploy" / "locust", True).objects]


def make_plan(**changes: Any) -> LoadPlan:
    fields: dict[str, Any] = {
        "host": "http://127.0.0.1:8081",
        "locustfiles": (REST, WS),
        "out_dir": Path("/reports/run"),
        "users": 12,
        "spawn_rate": 3.0,
        "run_time": 40.0,
        "env": {"HF_WAIT_MIN": "0.5"},
        "stop_timeout": 5.0,
    }
    return LoadPlan(**{**fields, **changes})


def flags(command: list[str]) -> dict[str, str]:
    """`--flag value` pairs (a flag followed by another flag maps to '')."""
    found: dict[str, str] = {}
    for index, word in enumerate(command):
        if word.startswith("-") and len(word) > 1:
            following = command[index + 1] if index + 1 < len(command) else "-"
            found[word] = "" if following.startswith("-") else following
    return found


def by_name(load: ClusterLoad) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name'].split('-')[1]}": dict(o) for o in load.objects}


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    [found] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.mark.parametrize(
    ("changes", "expected", "absent"),
    [
        pytest.param(
            {},
            {"--users": "12", "--spawn-rate": "3", "--run-time": "40s", "--expect-workers": "2"},
            ["--headless", "--processes"],
            id="users-for-a-run-time",
        ),
        pytest.param(
            {"shape": "step", "env": {"HF_SHAPE_STEP_USERS": "5"}},
            {"-f": ",".join(f"/mnt/locust/{f}" for f in (REST.name, WS.name, "shape_step.py"))},
            ["--users", "--spawn-rate", "--run-time"],
            id="a-shape-decides-users-and-time",
        ),
        pytest.param(
            {"run_time": 12.2, "stop_timeout": 2.0},
            {"--run-time": "13s", "--stop-timeout": "2"},
            [],
            id="run-time-rounded-up-as-locally",
        ),
    ],
)
def test_the_master_runs_the_plan_autostarted_with_the_pods_paths(
    rendered: list[Mapping[str, Any]],
    changes: dict[str, Any],
    expected: dict[str, str],
    absent: list[str],
) -> None:
    load = cluster_objects(rendered, make_plan(**changes), workers=2, run_id="r1")
    args = container(by_name(load)["Deployment/master"])["args"]
    found = flags(args)
    assert {k: found.get(k) for k in expected} == expected
    assert not [flag for flag in absent if flag in found]
    assert found["--timeline-file"] == "/tmp/timeline.jsonl"
    assert found["--csv"] == "/tmp/locust" and "--csv-full-history" in found
    assert {"--master", "--autostart", "--exit-code-on-error"} <= set(found)
    assert "--autoquit" not in found, "the master must stay up: its Deployment would restart it"


def test_the_master_agrees_with_a_local_run_on_every_run_flag(
    rendered: list[Mapping[str, Any]],
) -> None:
    plan = make_plan(user_classes=("RestUser",))
    load = cluster_objects(rendered, plan, workers=3, run_id="r1")
    pod = flags(container(by_name(load)["Deployment/master"])["args"])
    local = flags(locust_commands(plan, master_port=5557)[0])
    paths = {"-f", "--timeline-file", "--csv", "--html"}
    pod_only = {"--master", "--autostart", "--expect-workers"}
    local_only = {"--headless", "-m"}  # `python -m locust`: the image's entrypoint is locust
    assert {k: v for k, v in pod.items() if k not in paths | pod_only} == {
        k: v for k, v in local.items() if k not in paths | local_only
    }
    assert container(by_name(load)["Deployment/master"])["args"][-1] == "RestUser"


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_workers_are_n_replicas_of_deploy_locusts_worker(
    rendered: list[Mapping[str, Any]], workers: int
) -> None:
    plan = make_plan(user_classes=("WsUser",))
    load = cluster_objects(rendered, plan, workers=workers, run_id="r1")
    deployment = by_name(load)["Deployment/worker"]
    assert deployment["spec"]["replicas"] == workers
    assert container(deployment)["args"] == ["--worker", "--master-host", "locust-master", "WsUser"]
    assert flags(container(by_name(load)["Deployment/master"])["args"])["--expect-workers"] == str(
        workers
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {},
            {
                "HF_WAIT_MIN": "0.5",
                "LOCUST_LOCUSTFILE": "/mnt/locust/sessions_rest.py,/mnt/locust/sessions_ws.py",
                "LOCUST_HOST": "http://127.0.0.1:8081",
            },
            id="env-locustfiles-host",
        ),
        pytest.param(
            {"host": "https://ws.api.harmonyflow.io", "env": {}, "locustfiles": (WS,)},
            {
                "LOCUST_LOCUSTFILE": "/mnt/locust/sessions_ws.py",
                "LOCUST_HOST": "https://ws.api.harmonyflow.io",
            },
            id="deploy-locusts-own-host",
        ),
    ],
)
def test_the_settings_are_the_plans_environment_and_nothing_else(
    rendered: list[Mapping[str, Any]], changes: dict[str, Any], expected: dict[str, str]
) -> None:
    load = cluster_objects(rendered, make_plan(**changes), workers=1, run_id="r1")
    assert by_name(load)["ConfigMap/settings"]["data"] == expected


def test_every_object_and_pod_carries_the_run_id_in_the_chosen_namespace(
    rendered: list[Mapping[str, Any]],
) -> None:
    load = cluster_objects(rendered, make_plan(), 2, "load-1", namespace="elsewhere")
    assert load.namespace_object["metadata"]["name"] == "elsewhere"
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in load.objects)
    assert [k.rsplit("-", 1)[0] if k.startswith("ConfigMap") else k for k in kinds] == [
        "ConfigMap/locust-settings",
        "ConfigMap/locustfiles",
        "Deployment/locust-master",
        "Deployment/locust-worker",
        "Service/locust-master",
    ]
    for obj in load.objects:
        assert obj["metadata"]["namespace"] == "elsewhere"
        assert obj["metadata"]["labels"][RUN_LABEL] == "load-1"
        if obj["kind"] == "Deployment":
            assert obj["spec"]["template"]["metadata"]["labels"][RUN_LABEL] == "load-1"
            assert RUN_LABEL not in obj["spec"]["selector"]["matchLabels"]
    assert load.selector == f"{RUN_LABEL}=load-1"
    assert load.worker_selector == f"{RUN_LABEL}=load-1,role=worker"


def test_rendered_objects_are_not_changed(rendered: list[Mapping[str, Any]]) -> None:
    before = repr(rendered)
    cluster_objects(rendered, make_plan(), 4, "r1")
    assert repr(rendered) == before


@pytest.mark.parametrize(
    ("workers", "run_id", "drop", "error", "message"),
    [
        pytest.param(
            0, "r1", "", InvalidInputError, "--workers must be at least 1", id="no-worker"
        ),
        pytest.param(1, "Run 1!", "", InvalidInputError, "is not a label value", id="bad-run-id"),
        pytest.param(
            1,
            "r1",
            "locust-worker",
            ManifestError,
            "renders no Deployment/locust-worker",
            id="no-w",
        ),
    ],
)
def test_bad_runs_are_refused_naming_why(
    rendered: list[Mapping[str, Any]],
    workers: int,
    run_id: str,
    drop: str,
    error: type[Exception],
    message: str,
) -> None:
    kept = [o for o in rendered if o["metadata"]["name"] != drop]
    with pytest.raises(error, match=message):
        cluster_objects(kept, make_plan(), workers, run_id)


@pytest.mark.parametrize(
    ("log", "finished"),
    [
        pytest.param("", False, id="no-log-yet"),
        pytest.param("Waiting for workers to be ready, 1 of 2 connected", False, id="waiting"),
        pytest.param("Run time limit set to 40 seconds\nRamping to 12 users", False, id="running"),
        pytest.param(
            "--run-time limit reached, stopping test\n" + AUTOSTART_DONE, True, id="run-time-over"
        ),
        pytest.param("Shape test completed, stopping test\n" + AUTOSTART_DONE, True, id="shape"),
    ],
)
def test_the_end_of_a_run_is_read_from_the_masters_log(log: str, finished: bool) -> None:
    assert master_finished(log) is finished
