"""Per-pod readiness and restart history, and the two probe assertions built on it.

Probes themselves are invisible through the API; their effects are not: the
Ready condition flips (readiness) and `restartCount` goes up (liveness or
startup kills, crashes). From the pod watch this module keeps, per pod, the
times of every Ready transition and every restart, so that a suite can assert:

- "liveness restarted within period x threshold + timeout": the container's
  last run ended (`lastState.terminated.finishedAt`, server clock, whole
  seconds) no later than `worst_detection_seconds` + the termination it took +
  slack after the fault began;
- "readiness went false then true with no restart".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from resilience.observe.records import PodObservation
from resilience.observe.timeline import State
from resilience.policy import ProbePolicy
from resilience.slo.result import CheckResult, Violation, format_clock

LIVENESS_LIMIT = "probe.liveness"
READINESS_LIMIT = "probe.readiness"


@dataclass(frozen=True)
class ReadyTransition:
    wall: float
    index: int
    ready: bool


@dataclass(frozen=True)
class Restart:
    wall: float  # when the watch saw restartCount go up
    index: int
    container: str
    restart_count: int
    exit_code: int | None
    reason: str
    finished_at: float | None  # server time the previous run ended

    @property
    def ended(self) -> float:
        """When the killed run ended: the server's finishedAt if known, else when seen."""
        return self.finished_at if self.finished_at is not None else self.wall


@dataclass(frozen=True)
class PodHistory:
    pod: str
    first_seen: float
    transitions: tuple[ReadyTransition, ...] = ()
    restarts: tuple[Restart, ...] = ()

    def restarts_after(self, since: float) -> tuple[Restart, ...]:
        return tuple(r for r in self.restarts if r.ended >= since or r.wall >= since)


def pod_histories(
    states: Iterable[State], selector: Mapping[str, str] | None = None
) -> dict[str, PodHistory]:
    """Ready transitions and restarts of every pod (matching `selector`) in the states.

    The first state is the baseline: its pods start their history there (one
    transition giving their readiness then), later events add to it.
    """
    histories: dict[str, PodHistory] = {}
    last: dict[str, PodObservation] = {}
    baseline = True
    for state in states:
        if baseline:
            baseline = False
            for pod in state.pods.values():
                if _selected(pod, selector):
                    start = ReadyTransition(state.wall, state.index, pod.ready)
                    histories[pod.name] = PodHistory(pod.name, state.wall, (start,))
                    last[pod.name] = pod
            continue
        event = state.event
        if event is None or not isinstance(event.observation, PodObservation):
            continue
        pod = event.observation
        if not _selected(pod, selector):
            continue
        history = histories.get(pod.name) or PodHistory(pod.name, state.wall)
        before = last.get(pod.name)
        if before is None or before.ready != pod.ready:
            transition = ReadyTransition(state.wall, state.index, pod.ready)
            history = replace(history, transitions=(*history.transitions, transition))
        history = replace(history, restarts=history.restarts + _new_restarts(before, pod, state))
        histories[pod.name] = history
        last[pod.name] = pod
    return histories


def check_liveness_restart(
    history: PodHistory,
    probe: ProbePolicy,
    failure_started: float,
    *,
    termination_seconds: float = 0.0,
    slack_seconds: float = 1.0,
    observed_until: float | None = None,
) -> CheckResult:
    """The first restart after `failure_started` came within period x threshold + timeout.

    `termination_seconds`: what the kill may take on top (the container's SIGTERM
    handling, at most the pod's grace period). `slack_seconds` covers the
    server's whole-second timestamps. `observed_until`: end of the observation,
    for the message when no restart came at all.
    """
    limit = probe.worst_detection_seconds + termination_seconds + slack_seconds
    restarts = history.restarts_after(failure_started)
    detail = (
        f"period {probe.period_seconds}s x failureThreshold {probe.failure_threshold} "
        f"+ timeout {probe.timeout_seconds}s = {probe.worst_detection_seconds}s"
    )
    if not restarts:
        waited = None if observed_until is None else observed_until - failure_started
        return CheckResult(
            "liveness restart",
            (
                Violation(
                    LIVENESS_LIMIT,
                    limit,
                    -1.0 if waited is None else waited,
                    failure_started,
                    -1,
                    f"pod {history.pod}: no restart after the liveness failure began at "
                    f"{format_clock(failure_started)}"
                    + ("" if waited is None else f" ({waited:.1f}s observed)")
                    + f"; expected within {detail}",
                ),
            ),
        )
    first = restarts[0]
    elapsed = first.ended - failure_started
    details = {"seconds": round(elapsed, 3), "limit_seconds": limit}
    if elapsed <= limit:
        return CheckResult("liveness restart", (), details)
    return CheckResult(
        "liveness restart",
        (
            Violation(
                LIVENESS_LIMIT,
                limit,
                elapsed,
                first.wall,
                first.index,
                f"pod {history.pod}: restarted {elapsed:.1f}s after the liveness failure began "
                f"(restart seen at {format_clock(first.wall)}, event {first.index}), later than "
                f"{detail} (+{termination_seconds + slack_seconds:g}s termination and slack)",
            ),
        ),
        details,
    )


def check_readiness_recovered_without_restart(
    history: PodHistory, since: float | None = None
) -> CheckResult:
    """Ready went False, then True again, and the pod did not restart in between."""
    transitions = [t for t in history.transitions if since is None or t.wall >= since]
    went_down = next((t for t in transitions if not t.ready), None)
    came_back = next(
        (t for t in transitions if went_down and t.ready and t.index > went_down.index), None
    )
    if went_down is None or came_back is None:
        state = "never went unready" if went_down is None else "never became Ready again"
        at = went_down or ReadyTransition(since or history.first_seen, -1, True)
        return CheckResult(
            "readiness flap",
            (
                Violation(
                    READINESS_LIMIT,
                    1,
                    0,
                    at.wall,
                    at.index,
                    f"pod {history.pod}: readiness {state} after {format_clock(at.wall)}",
                ),
            ),
        )
    restarted = [r for r in history.restarts if went_down.index <= r.index <= came_back.index]
    details = {"unready_seconds": round(came_back.wall - went_down.wall, 3)}
    if not restarted:
        return CheckResult("readiness flap", (), details)
    restart = restarted[0]
    return CheckResult(
        "readiness flap",
        (
            Violation(
                READINESS_LIMIT,
                0,
                len(restarted),
                restart.wall,
                restart.index,
                f"pod {history.pod}: restarted at {format_clock(restart.wall)} (event "
                f"{restart.index}, exit {restart.exit_code} {restart.reason}) while unready; "
                f"readiness alone must not restart a container",
            ),
        ),
        details,
    )


def _new_restarts(
    before: PodObservation | None, pod: PodObservation, state: State
) -> tuple[Restart, ...]:
    previous = {c.name: c.restart_count for c in before.containers} if before else {}
    return tuple(
        Restart(
            wall=state.wall,
            index=state.index,
            container=c.name,
            restart_count=c.restart_count,
            exit_code=c.last_exit_code,
            reason=c.last_reason,
            finished_at=c.last_finished_at,
        )
        for c in pod.containers
        if before is not None and c.restart_count > previous.get(c.name, 0)
    )


def _selected(pod: PodObservation, selector: Mapping[str, str] | None) -> bool:
    return not selector or all(pod.labels.get(k) == v for k, v in selector.items())
