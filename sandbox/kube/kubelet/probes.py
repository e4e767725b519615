"""Probe workers as a pure state machine: kubelet's `prober/worker.go`, one step at a time.

One worker per (container, probe type). Before each tick `before_probe` reads
the pod and container as the kubelet's status shows them and says whether to
probe, wait for the next tick, or stop for good; `after_probe` folds a result
into the threshold counter. A result is *published* (the `result` field) only
when the threshold is reached; the caller acts when `result` or
`container_id` changes, as `results_manager.go` publishes only on change.

Worked example (readiness, failureThreshold 3, successThreshold 1):
    new worker                       result Failure (the initial value)
    probe Success                    run 1 >= 1   -> publish Success
    probe Failure, Failure           run 2 < 3    -> still Success
    probe Failure                    run 3 >= 3   -> publish Failure
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any


class ProbeType(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        """The container field holding this probe (`livenessProbe`, ...)."""
        return f"{self.value.lower()}Probe"


class Result(StrEnum):
    UNKNOWN = "Unknown"
    SUCCESS = "Success"
    FAILURE = "Failure"


class Step(Enum):
    PROBE = "probe"
    WAIT = "wait"  # skip this tick
    STOP = "stop"  # the worker ends


INITIAL_RESULT: Mapping[ProbeType, Result] = {
    ProbeType.READINESS: Result.FAILURE,
    ProbeType.LIVENESS: Result.SUCCESS,
    ProbeType.STARTUP: Result.UNKNOWN,
}


@dataclass(frozen=True)
class ProbeSpec:
    """The probe's timing (upstream defaults: 1 s timeout, 10 s period, thresholds 1 and 3)."""

    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_json(cls, probe: Mapping[str, Any]) -> ProbeSpec:
        return cls(
            initial_delay_seconds=int(probe.get("initialDelaySeconds", 0)),
            timeout_seconds=int(probe.get("timeoutSeconds", 1)),
            period_seconds=int(probe.get("periodSeconds", 10)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


@dataclass(frozen=True)
class ContainerView:
    """The probed container as the kubelet's pod status shows it."""

    container_id: str = ""  # empty until the container is created
    running: bool = False
    terminated: bool = False
    seconds_since_start: float = 0.0  # since state.running.startedAt
    started: bool = False  # containerStatuses[].started


@dataclass(frozen=True)
class PodView:
    terminal: bool = False  # phase Succeeded or Failed
    deleting: bool = False  # metadata.deletionTimestamp is set
    restart_never: bool = False  # spec.restartPolicy == Never


@dataclass(frozen=True)
class WorkerState:
    probe_type: ProbeType
    spec: ProbeSpec
    container_id: str = ""
    result: Result | None = None  # published for container_id; None before any container
    last_result: Result = Result.UNKNOWN
    result_run: int = 0
    on_hold: bool = False


def new_worker(probe_type: ProbeType, spec: ProbeSpec) -> WorkerState:
    return WorkerState(probe_type, spec)


def before_probe(
    state: WorkerState, pod: PodView, container: ContainerView | None
) -> tuple[WorkerState, Step]:
    """What to do at this tick (`doProbe` up to the probe call)."""
    if pod.terminal:
        return state, Step.STOP
    if container is None or not container.container_id:
        return state, Step.WAIT
    state = _follow_container(state, container.container_id)
    if state.on_hold:
        return state, Step.WAIT
    if not container.running:
        keep_going = not container.terminated or not pod.restart_never
        return replace(state, result=Result.FAILURE), Step.WAIT if keep_going else Step.STOP
    if pod.deleting and state.probe_type is not ProbeType.READINESS:
        return replace(state, result=Result.SUCCESS), Step.STOP
    if int(container.seconds_since_start) < state.spec.initial_delay_seconds:
        return state, Step.WAIT
    if container.started == (state.probe_type is ProbeType.STARTUP):
        return state, Step.WAIT  # startup stops once started; the others wait for it
    return state, Step.PROBE


def after_probe(state: WorkerState, result: Result) -> WorkerState:
    """Fold one probe result in; `Unknown` is a prober error and is thrown away."""
    if result is Result.UNKNOWN:
        return state
    run = state.result_run + 1 if result is state.last_result else 1
    state = replace(state, last_result=result, result_run=run)
    threshold = (
        state.spec.failure_threshold if result is Result.FAILURE else state.spec.success_threshold
    )
    if run < threshold:
        return state
    state = replace(state, result=result)
    if state.probe_type is ProbeType.STARTUP or (
        state.probe_type is ProbeType.LIVENESS and result is Result.FAILURE
    ):
        state = replace(state, on_hold=True, result_run=0)  # until a new container
    return state


def _follow_container(state: WorkerState, container_id: str) -> WorkerState:
    if container_id == state.container_id:
        return state
    return replace(
        state,
        container_id=container_id,
        result=INITIAL_RESULT[state.probe_type],
        on_hold=False,
    )
