"""Probes: the live configuration is the intended one, and each probe does its job.

- The live probes equal deploy/base's (path, port, timings, thresholds).
- A hung container (the `liveness-hang` image) leaves the endpoints through
  readiness and is restarted by liveness within period x failureThreshold +
  timeout, plus the kill's grace period (upstream sends SIGTERM and waits up to
  terminationGracePeriodSeconds before the restart).
- Losing a readiness dependency (PostgreSQL stopped through the RDS API,
  StopDBInstance, and always started again) takes pods out of the endpoints
  without restarting them: no restart storm; under Locust load, the service is
  clean again once the database is back (suite-database-outage.yaml).
- A slow start (the `slow-start` image) is protected by the startup probe: no
  kill while it starts, not Ready (no traffic) until it has started.

Single-pod faults run in a canary (resilience.suites.canary): the live pod
template with the fault image, one replica, behind the same Service.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from resilience.chaos.database import start_db_instance, stop_db_instance
from resilience.observe import (
    Monitors,
    State,
    check_liveness_restart,
    check_readiness_recovered_without_restart,
    pod_histories,
)
from resilience.observe.timeline import Timeline
from resilience.policy import IntendedPolicy, ProbeKind
from resilience.suites.canary import canary_deployment
from resilience.suites.drift import deployment_drift
from resilience.targets.live import CANARY_LABEL, LiveTarget, delete_canary_and_wait
from resilience.traffic import LoadSession

pytestmark = pytest.mark.resilience

REPOSITORY = "ghcr.io/harmonyflow/session-state"
DB_INSTANCE = "harmonyflow-db"
# The hang starts this long after the process: after the startup probe passed,
# so that liveness (not startup) is what must catch it.
HANG_AFTER_SECONDS = 8
# Longer than readiness's failure window (5 s x 3) and far inside the startup
# budget (5 s x 30 = 150 s): only the startup probe stands between it and a kill.
SLOW_START_SECONDS = 25
SLACK_SECONDS = 2.0  # whole-second server timestamps and watch delivery
OUTAGE_LIMIT_SECONDS = 60.0
# StartDBInstance takes minutes on AWS (no documented figure; a stop still `stopping` is
# waited out first); the sandbox's take 30 s + 60 s (--rds-stop/start-seconds)
DB_START_TIMEOUT_SECONDS = 900.0


@pytest.mark.timeout(60)
def test_live_probe_configuration_equals_the_intended_one(
    target: LiveTarget, intended_policy: IntendedPolicy
) -> None:
    drift = [
        d for d in deployment_drift(target.read_deployment(), intended_policy) if "Probe" in d.field
    ]
    assert not drift, "the live probes are not deploy/base's:\n" + "\n".join(
        d.message for d in drift
    )


def start_canary(target: LiveTarget, purpose: str, image: str, env: dict[str, str]) -> str:
    body = canary_deployment(target.read_deployment(), target.deployment, purpose, image, env)
    target.apps.create_namespaced_deployment(target.namespace, body, _request_timeout=15)
    return str(body["metadata"]["name"])


def canary_pod(timeline: Timeline, purpose: str) -> Any:
    pods = [p for p in timeline.current.pods.values() if p.labels.get(CANARY_LABEL) == purpose]
    return pods[0] if pods else None


def wait_canary(monitors, purpose: str, what: str, predicate, timeout: float) -> Any:  # type: ignore[no-untyped-def]
    def found(state: State) -> bool:
        pods = [p for p in state.pods.values() if p.labels.get(CANARY_LABEL) == purpose]
        return bool(pods) and predicate(pods[0])

    monitors.timeline.wait_for(found, timeout, f"the {purpose} canary {what}")
    return canary_pod(monitors.timeline, purpose)


def container_started(target: LiveTarget, pod_name: str) -> float:
    pod = target.core.read_namespaced_pod(pod_name, target.namespace, _request_timeout=15)
    [status] = [s for s in pod.status.container_statuses if s.name == target.deployment]
    return status.state.running.started_at.timestamp()


def endpoint_ready_at(states: list[State], pod: str) -> list[tuple[float, bool]]:
    """(wall, ready) each time the pod's endpoint readiness changed in the EndpointSlices."""
    changes: list[tuple[float, bool]] = []
    for state in states:
        endpoints = [e for s in state.endpoint_slices.values() for e in s.endpoints if e.pod == pod]
        if endpoints:
            ready = any(e.ready for e in endpoints)
            if not changes or changes[-1][1] != ready:
                changes.append((state.wall, ready))
    return changes


@pytest.mark.timeout(300)
def test_hung_container_leaves_the_endpoints_and_is_restarted_by_liveness(
    target: LiveTarget, intended_policy: IntendedPolicy, monitors: Monitors
) -> None:
    liveness = intended_policy.probes[ProbeKind.LIVENESS]
    readiness = intended_policy.probes[ProbeKind.READINESS]
    grace = intended_policy.termination_grace_period_seconds
    name = start_canary(
        target,
        "hang",
        f"{REPOSITORY}:liveness-hang",
        {"HANG_AFTER_SECONDS": str(HANG_AFTER_SECONDS)},
    )
    try:
        pod = wait_canary(monitors, "hang", "Ready", lambda p: p.ready, 60)
        hang_began = container_started(target, pod.name) + HANG_AFTER_SECONDS
        limit = liveness.worst_detection_seconds + grace + SLACK_SECONDS
        waited = max(0.0, hang_began + limit + 5 - time.time())
        with contextlib.suppress(TimeoutError):  # judged below, with the numbers
            wait_canary(monitors, "hang", "restarted", lambda p: p.restart_count > 0, waited)
        observed_until = time.time()
    finally:
        delete_canary_and_wait(target, name)
    states = monitors.timeline.states()
    history = pod_histories(states, {CANARY_LABEL: "hang"})[pod.name]
    check_liveness_restart(
        history,
        liveness,
        hang_began,
        termination_seconds=grace,
        slack_seconds=SLACK_SECONDS,
        observed_until=observed_until,
    ).raise_if_violated()
    restart = history.restarts_after(hang_began)[0]
    left = [
        wall
        for wall, ready in endpoint_ready_at(states, pod.name)
        if not ready and wall >= hang_began
    ]
    assert left, (
        f"canary {pod.name} hung at {hang_began:.0f} but its endpoint never went not-ready: "
        "traffic kept going to a hung container"
    )
    assert left[0] <= restart.ended + SLACK_SECONDS, (
        f"canary {pod.name}: its endpoint left only {left[0] - hang_began:.1f}s after the hang, "
        "after liveness had already restarted it"
    )
    readiness_limit = readiness.worst_detection_seconds + SLACK_SECONDS
    assert left[0] - hang_began <= readiness_limit, (
        f"canary {pod.name}: hung for {left[0] - hang_began:.1f}s before its endpoint went "
        f"not-ready, more than readiness period {readiness.period_seconds}s x failureThreshold "
        f"{readiness.failure_threshold} + timeout {readiness.timeout_seconds}s "
        f"(+{SLACK_SECONDS:g}s)"
    )


@pytest.mark.timeout(300)
def test_slow_start_is_protected_by_the_startup_probe(
    target: LiveTarget, intended_policy: IntendedPolicy, monitors: Monitors
) -> None:
    startup = intended_policy.probes[ProbeKind.STARTUP]
    budget = startup.period_seconds * startup.failure_threshold
    assert budget > SLOW_START_SECONDS, (
        f"startup budget period {startup.period_seconds}s x failureThreshold "
        f"{startup.failure_threshold} = {budget}s cannot cover a {SLOW_START_SECONDS}s start"
    )
    name = start_canary(
        target, "slow", f"{REPOSITORY}:slow-start", {"STARTUP_SECONDS": str(SLOW_START_SECONDS)}
    )
    try:
        pod = wait_canary(monitors, "slow", "running", lambda p: p.phase == "Running", 60)
        started = container_started(target, pod.name)
        with contextlib.suppress(TimeoutError):  # judged below
            wait_canary(monitors, "slow", "Ready", lambda p: p.ready, SLOW_START_SECONDS + budget)
    finally:
        delete_canary_and_wait(target, name)
    history = pod_histories(monitors.timeline.states(), {CANARY_LABEL: "slow"})[pod.name]
    assert not history.restarts, (
        f"canary {pod.name} was restarted {len(history.restarts)} time(s) while starting "
        f"(exit {history.restarts[0].exit_code} {history.restarts[0].reason}): the startup probe "
        f"(period {startup.period_seconds}s x failureThreshold {startup.failure_threshold}) "
        f"did not protect a {SLOW_START_SECONDS}s start"
    )
    ready = [t for t in history.transitions if t.ready]
    assert ready, f"canary {pod.name} never became Ready within {SLOW_START_SECONDS + budget}s"
    after = ready[0].wall - started
    assert after >= SLOW_START_SECONDS - SLACK_SECONDS, (
        f"canary {pod.name} was Ready {after:.1f}s after it started, before its "
        f"{SLOW_START_SECONDS}s start ended: traffic reached a pod that was not ready"
    )


@pytest.mark.timeout(1200)
def test_losing_the_database_takes_pods_out_of_the_endpoints_without_restarts(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    load: Callable[[str], LoadSession],
    recovery_journal: None,
) -> None:
    replicas = intended_policy.rollout.replicas
    selector = dict(intended_policy.selector)
    with (
        load("database-outage") as background,
        background.fault("database-outage"),
        monitors.mark("database-outage", f"{DB_INSTANCE} stopped") as mark,
    ):
        down = keep_database_down(
            lambda: unready_pods_seen(monitors.timeline.states(), selector) >= replicas,
            OUTAGE_LIMIT_SECONDS,
        )
        monitors.timeline.wait_for(
            lambda s: sum(p.ready and p.active for p in s.pods_matching(selector)) >= replicas,
            90,
            "every pod Ready again after the database came back",
        )
    states = monitors.timeline.states()
    histories = pod_histories(states, selector)
    went = {n: h for n, h in histories.items() if any(not t.ready for t in h.transitions[1:])}
    restarted = {n: h.restarts for n, h in histories.items() if h.restarts}
    print(f"{DB_INSTANCE} stopped for {down:.1f}s; pods that left the endpoints: {sorted(went)}")
    assert not restarted, (
        "pods restarted while the database was down (liveness must not depend on it, or every "
        "pod restarts at once): "
        + "; ".join(f"{n}: exit {r[0].exit_code} {r[0].reason}" for n, r in restarted.items())
    )
    assert went, (
        f"no pod left the endpoints during {down:.0f}s of database outage ({DB_INSTANCE} "
        "stopped): readiness does not follow the database; requests kept reaching pods that "
        "cannot serve them"
    )
    for history in went.values():
        check_readiness_recovered_without_restart(history, since=mark.start).raise_if_violated()
    background.check(f"outage of {DB_INSTANCE}").raise_if_violated()


def unready_pods_seen(states: list[State], selector: dict[str, str]) -> int:
    histories = pod_histories(states, selector)
    return sum(1 for h in histories.values() if any(not t.ready for t in h.transitions[1:]))


def keep_database_down(done: Callable[[], bool], limit: float) -> float:
    """Stop the RDS instance until `done()` or `limit` s; always start it again.

    StopDBInstance shuts the database down, so that nothing answers until the start, the
    same way on every run (resilience.chaos.database). The start, which waits until
    the instance is `available`, runs in a `finally`. Returns the seconds it was down.
    """
    began = time.monotonic()
    stop_db_instance(DB_INSTANCE)
    try:
        deadline = began + limit
        while time.monotonic() < deadline and not done():
            time.sleep(0.2)
    finally:
        start_db_instance(DB_INSTANCE, timeout=DB_START_TIMEOUT_SECONDS)
    return time.monotonic() - began
