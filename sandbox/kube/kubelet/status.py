"""Pod status from container states: pure builders (kubelet `generateAPIPodStatus`, `getPhase`).

The kubelet keeps one `ContainerRecord` per container; `build_pod_status`
turns them, with the previous status, into the `status` it writes. Condition
`lastTransitionTime` is kept while a condition's status is unchanged, so
building twice from the same records gives an identical status (and the
store skips the write).

Worked example: one container running and ready ->
    phase Running; PodReadyToStartContainers, Initialized, ContainersReady,
    Ready and PodScheduled all True; containerStatuses[0].state.running.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.kube.clock import rfc3339

KubeObject = dict[str, Any]
TERMINAL_PHASES = ("Succeeded", "Failed")
CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


@dataclass(frozen=True)
class Waiting:
    reason: str = "ContainerCreating"
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: datetime


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    finished_at: datetime
    started_at: datetime | None = None
    message: str = ""
    container_id: str = ""


ContainerState = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerRecord:
    """What the kubelet knows about one container of the pod."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    state: ContainerState = field(default_factory=Waiting)
    last_state: Terminated | None = None
    ready: bool = False
    started: bool = False
    restart_count: int = 0


@dataclass(frozen=True)
class PodRuntime:
    """The pod-level facts next to its containers."""

    containers: tuple[ContainerRecord, ...]
    host_ip: str
    pod_ip: str = ""
    start_time: datetime | None = None
    sandbox_ready: bool = False
    terminal: bool = False  # being deleted and every container has stopped


def exit_code(returncode: int) -> int:
    """asyncio's negative return code for a signal becomes 128 + signo (SIGKILL: 137)."""
    return 128 - returncode if returncode < 0 else returncode


def exit_reason(code: int, oom_killed: bool = False) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if code == 0 else "Error"


def signal_name(code: int) -> str:
    """`143` -> `SIGTERM`, for log lines and messages."""
    try:
        return signal.Signals(code - 128).name if code > 128 else ""
    except ValueError:
        return ""


def container_state_json(state: ContainerState | None) -> KubeObject:
    if state is None:
        return {}
    if isinstance(state, Waiting):
        waiting = {"reason": state.reason, **({"message": state.message} if state.message else {})}
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": rfc3339(state.started_at)}}
    terminated: KubeObject = {"exitCode": state.exit_code, "reason": state.reason}
    if state.message:
        terminated["message"] = state.message
    if state.started_at is not None:
        terminated["startedAt"] = rfc3339(state.started_at)
    terminated["finishedAt"] = rfc3339(state.finished_at)
    if state.container_id:
        terminated["containerID"] = state.container_id
    return {"terminated": terminated}


def container_status_json(record: ContainerRecord) -> KubeObject:
    status: KubeObject = {
        "name": record.name,
        "state": container_state_json(record.state),
        "lastState": container_state_json(record.last_state),
        "ready": record.ready,
        "restartCount": record.restart_count,
        "image": record.image,
        "imageID": record.image_id,
        "started": record.started,
    }
    if record.container_id:
        status["containerID"] = record.container_id
    return status


def pod_phase(records: Sequence[ContainerRecord], restart_policy: str, terminal: bool) -> str:
    """Upstream `getPhase` for pods without init containers."""
    waiting = running = stopped = succeeded = 0
    for record in records:
        state = record.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            stopped += 1
            succeeded += state.exit_code == 0
        elif record.last_state is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting > 0 or not records:
        return "Pending"
    if running > 0:
        return "Running"
    if terminal:
        return "Succeeded" if stopped == succeeded else "Failed"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def for_terminal_pod(record: ContainerRecord, now: datetime) -> ContainerRecord:
    """A container that never ran is reported terminated once its pod is terminal."""
    if not isinstance(record.state, Waiting):
        return record
    unknown = Terminated(
        137,
        "ContainerStatusUnknown",
        now,
        message="The container could not be located when the pod was terminated",
    )
    return ContainerRecord(
        record.name,
        record.image,
        record.image_id,
        record.container_id,
        unknown,
        record.last_state,
        ready=False,
        started=False,
        restart_count=record.restart_count,
    )


def readiness_conditions(
    spec: Mapping[str, Any],
    records: Sequence[ContainerRecord],
    previous: Sequence[KubeObject],
    phase: str,
) -> list[tuple[str, bool, str, str]]:
    """ContainersReady and Ready as (type, status, reason, message)."""
    if phase in TERMINAL_PHASES:
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        return [("ContainersReady", False, reason, ""), ("Ready", False, reason, "")]
    unready = [r.name for r in records if not r.ready]
    if unready:
        message = f"containers with unready status: [{' '.join(unready)}]"
        return [
            ("ContainersReady", False, "ContainersNotReady", message),
            ("Ready", False, "ContainersNotReady", message),
        ]
    gate_problem = _readiness_gate_problem(spec, previous)
    ready = (
        ("Ready", True, "", "")
        if not gate_problem
        else ("Ready", False, "ReadinessGatesNotReady", gate_problem)
    )
    return [("ContainersReady", True, "", ""), ready]


def _readiness_gate_problem(spec: Mapping[str, Any], previous: Sequence[KubeObject]) -> str:
    by_type = {c.get("type"): c for c in previous}
    for gate in spec.get("readinessGates") or []:
        kind = gate.get("conditionType")
        condition = by_type.get(kind)
        if condition is None:
            return f'corresponding condition of pod readiness gate "{kind}" does not exist.'
        if condition.get("status") != "True":
            status = condition.get("status")
            return f'the status of pod readiness gate "{kind}" is not "True", but {status}'
    return ""


def merge_conditions(
    previous: Sequence[KubeObject], wanted: Iterable[tuple[str, bool, str, str]], now: datetime
) -> list[KubeObject]:
    """Kubelet-owned conditions replaced, others kept; lastTransitionTime kept if unchanged."""
    by_type = {c.get("type"): c for c in previous}
    merged = dict(by_type)
    for kind, ok, reason, message in wanted:
        status = "True" if ok else "False"
        old = by_type.get(kind)
        same = old is not None and old.get("status") == status
        condition: KubeObject = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime")
            if same and old is not None
            else rfc3339(now),
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        merged[kind] = condition
    known = [merged[k] for k in CONDITION_ORDER if k in merged]
    return known + [c for k, c in merged.items() if k not in CONDITION_ORDER]


def kubelet_conditions(
    spec: Mapping[str, Any],
    records: Sequence[ContainerRecord],
    previous: Sequence[KubeObject],
    phase: str,
    sandbox_ready: bool,
) -> list[tuple[str, bool, str, str]]:
    """The conditions the kubelet owns; PodScheduled only if the scheduler did not set it."""
    wanted = [
        ("PodReadyToStartContainers", sandbox_ready, "", ""),
        ("Initialized", True, "", ""),
        *readiness_conditions(spec, records, previous, phase),
    ]
    if not any(c.get("type") == "PodScheduled" for c in previous):
        wanted.append(("PodScheduled", True, "", ""))
    return wanted


def build_pod_status(pod: KubeObject, runtime: PodRuntime, now: datetime) -> KubeObject:
    """The pod's next `status`; fields the kubelet does not own (qosClass, ...) are kept."""
    previous: KubeObject = dict(pod.get("status") or {})
    spec = pod.get("spec") or {}
    records = list(runtime.containers)
    if runtime.terminal:
        records = [for_terminal_pod(r, now) for r in records]
    phase = pod_phase(records, spec.get("restartPolicy", "Always"), runtime.terminal)
    if previous.get("phase") in TERMINAL_PHASES:
        phase = previous["phase"]  # a terminal phase never changes back
    wanted = kubelet_conditions(
        spec, records, previous.get("conditions") or [], phase, runtime.sandbox_ready
    )
    status = {
        **previous,
        "phase": phase,
        "hostIP": runtime.host_ip,
        "hostIPs": [{"ip": runtime.host_ip}],
    }
    status["conditions"] = merge_conditions(previous.get("conditions") or [], wanted, now)
    if runtime.pod_ip:
        status.update(podIP=runtime.pod_ip, podIPs=[{"ip": runtime.pod_ip}])
    if runtime.start_time is not None and "startTime" not in previous:
        status["startTime"] = rfc3339(runtime.start_time)
    ordered = sorted(records, key=lambda r: r.name)
    status["containerStatuses"] = [container_status_json(r) for r in ordered]
    return status
