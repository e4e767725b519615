"""Pod status built from container records: phase, conditions, container statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.kube.kubelet.status import (
    ContainerRecord,
    ContainerState,
    PodRuntime,
    Running,
    Terminated,
    Waiting,
    build_pod_status,
    exit_code,
    exit_reason,
    pod_phase,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)


def running(name: str = "app", ready: bool = True) -> ContainerRecord:
    return make_record(name, Running(T0), ready=ready, started=True)


def exited(code: int, name: str = "app") -> ContainerRecord:
    return make_record(name, Terminated(code, exit_reason(code), T1, T0))


def crash_looping(name: str = "app") -> ContainerRecord:
    return make_record(name, Waiting("CrashLoopBackOff"), last=Terminated(1, "Error", T1, T0))


def make_record(
    name: str,
    state: ContainerState,
    ready: bool = False,
    started: bool = False,
    last: Terminated | None = None,
) -> ContainerRecord:
    return ContainerRecord(
        name,
        "sandbox.local/testapp:latest",
        "id",
        "containerd://c1",
        state,
        last,
        ready,
        started,
        restart_count=1 if last else 0,
    )


def make_pod(
    restart_policy: str = "Always",
    status: dict[str, Any] | None = None,
    gates: list[str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": restart_policy, "containers": [{"name": "app"}]}
    if gates:
        spec["readinessGates"] = [{"conditionType": gate} for gate in gates]
    return {
        "metadata": {"name": "p"},
        "spec": spec,
        "status": status or {"phase": "Pending", "qosClass": "BestEffort"},
    }


def runtime(*records: ContainerRecord, terminal: bool = False) -> PodRuntime:
    return PodRuntime(
        records, "127.0.1.10", "127.0.2.7", T0, sandbox_ready=not terminal, terminal=terminal
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("records", "policy", "terminal", "phase"),
    [
        pytest.param([make_record("app", Waiting())], "Always", False, "Pending", id="creating"),
        pytest.param(
            [make_record("app", Waiting("ErrImagePull"))],
            "Always",
            False,
            "Pending",
            id="image-pull-failing",
        ),
        pytest.param([running()], "Always", False, "Running", id="running"),
        pytest.param(
            [running(), make_record("b", Waiting())],
            "Always",
            False,
            "Pending",
            id="one-still-waiting",
        ),
        pytest.param([crash_looping()], "Always", False, "Running", id="crash-loop-stays-running"),
        pytest.param([exited(1)], "Always", False, "Running", id="always-restarting"),
        pytest.param([exited(0)], "Never", False, "Succeeded", id="never-all-zero"),
        pytest.param([exited(1)], "Never", False, "Failed", id="never-one-failed"),
        pytest.param([exited(1)], "OnFailure", False, "Running", id="onfailure-restarting"),
        pytest.param([exited(0)], "OnFailure", False, "Succeeded", id="onfailure-done"),
        pytest.param(
            [exited(0), exited(0, "b")], "Always", True, "Succeeded", id="terminated-all-zero"
        ),
        pytest.param(
            [exited(0), exited(137, "b")], "Always", True, "Failed", id="terminated-one-killed"
        ),
        pytest.param([exited(143)], "Always", True, "Failed", id="terminated-by-sigterm"),
    ],
)
def test_phase(records: list[ContainerRecord], policy: str, terminal: bool, phase: str) -> None:
    assert pod_phase(records, policy, terminal) == phase


@pytest.mark.parametrize(
    ("returncode", "code", "reason"),
    [
        pytest.param(0, 0, "Completed", id="clean-exit"),
        pytest.param(1, 1, "Error", id="error-exit"),
        pytest.param(-15, 143, "Error", id="sigterm"),
        pytest.param(-9, 137, "Error", id="sigkill"),
    ],
)
def test_exit_codes(returncode: int, code: int, reason: str) -> None:
    assert (exit_code(returncode), exit_reason(exit_code(returncode))) == (code, reason)


def test_oom_killed_reason() -> None:
    assert exit_reason(137, oom_killed=True) == "OOMKilled"


@pytest.mark.parametrize(
    ("records", "terminal", "expected"),
    [
        pytest.param(
            [running()],
            False,
            {
                "Ready": ("True", ""),
                "ContainersReady": ("True", ""),
                "Initialized": ("True", ""),
                "PodReadyToStartContainers": ("True", ""),
                "PodScheduled": ("True", ""),
            },
            id="all-ready",
        ),
        pytest.param(
            [running(ready=False)],
            False,
            {
                "Ready": ("False", "ContainersNotReady"),
                "ContainersReady": ("False", "ContainersNotReady"),
            },
            id="not-ready",
        ),
        pytest.param(
            [exited(0)],
            True,
            {"Ready": ("False", "PodCompleted"), "PodReadyToStartContainers": ("False", "")},
            id="succeeded",
        ),
        pytest.param([exited(137)], True, {"Ready": ("False", "PodFailed")}, id="failed"),
    ],
)
def test_conditions(
    records: list[ContainerRecord], terminal: bool, expected: dict[str, tuple[str, str]]
) -> None:
    status = build_pod_status(make_pod(), runtime(*records, terminal=terminal), T1)
    assert conditions(status).items() >= expected.items()


def test_not_ready_message_names_the_containers() -> None:
    status = build_pod_status(make_pod(), runtime(running("a", False), running("b", False)), T1)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "containers with unready status: [a b]"


@pytest.mark.parametrize(
    ("gate_status", "ready"),
    [
        pytest.param(None, "False", id="gate-missing"),
        pytest.param("False", "False", id="gate-false"),
        pytest.param("True", "True", id="gate-true"),
    ],
)
def test_readiness_gates(gate_status: str | None, ready: str) -> None:
    previous: dict[str, Any] = {"phase": "Running", "conditions": []}
    if gate_status is not None:
        previous["conditions"].append({"type": "example.com/lb", "status": gate_status})
    status = build_pod_status(
        make_pod(status=previous, gates=["example.com/lb"]), runtime(running()), T1
    )
    assert conditions(status)["Ready"][0] == ready
    assert conditions(status)["ContainersReady"][0] == "True"


def test_transition_time_kept_while_status_unchanged() -> None:
    first = build_pod_status(make_pod(), runtime(running()), T0)
    again = build_pod_status(make_pod(status=first), runtime(running()), T1)
    assert again == first
    flipped = build_pod_status(make_pod(status=first), runtime(running(ready=False)), T1)
    ready = next(c for c in flipped["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:30Z"


def test_container_status_fields() -> None:
    record = ContainerRecord(
        "app",
        "img:1",
        "img@sha256:x",
        "containerd://c2",
        Running(T1),
        Terminated(137, "Error", T1, T0, container_id="containerd://c1"),
        ready=True,
        started=True,
        restart_count=1,
    )
    status = build_pod_status(make_pod(), runtime(record), T1)
    assert status["containerStatuses"] == [
        {
            "name": "app",
            "state": {"running": {"startedAt": "2026-01-01T00:00:30Z"}},
            "lastState": {
                "terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": "2026-01-01T00:00:00Z",
                    "finishedAt": "2026-01-01T00:00:30Z",
                    "containerID": "containerd://c1",
                }
            },
            "ready": True,
            "restartCount": 1,
            "image": "img:1",
            "imageID": "img@sha256:x",
            "started": True,
            "containerID": "containerd://c2",
        }
    ]
    assert (status["podIP"], status["hostIP"], status["qosClass"]) == (
        "127.0.2.7",
        "127.0.1.10",
        "BestEffort",
    )
    assert status["podIPs"] == [{"ip": "127.0.2.7"}]
    assert status["startTime"] == "2026-01-01T00:00:00Z"


def test_terminal_pod_reports_never_started_containers_as_unknown() -> None:
    status = build_pod_status(
        make_pod(), runtime(make_record("app", Waiting("ErrImagePull")), terminal=True), T1
    )
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (status["phase"], terminated["exitCode"], terminated["reason"]) == (
        "Failed",
        137,
        "ContainerStatusUnknown",
    )


def test_terminal_phase_never_changes_back() -> None:
    status = build_pod_status(make_pod(status={"phase": "Succeeded"}), runtime(running()), T1)
    assert status["phase"] == "Succeeded"


def test_container_statuses_sorted_by_name() -> None:
    status = build_pod_status(make_pod(), runtime(running("zeta"), running("alpha")), T1)
    assert [c["name"] for c in status["containerStatuses"]] == ["alpha", "zeta"]
