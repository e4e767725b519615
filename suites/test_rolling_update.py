"""Rolling update: the limits of deploy/base hold at every watch event of a rollout.

- The live strategy is the intended one (else every other verdict is about a
  different Deployment).
- A good release (1.0.0 -> 1.0.1) never has more than replicas + maxSurge pods nor
  fewer than replicas - maxUnavailable available, at any pod event, and completes
  within progressDeadlineSeconds, while requests through the ingress keep
  succeeding: Locust REST and WebSocket load (suite-rolling-update.yaml) within
  its error budget in every window, WebSocket sessions resumed without a gap or
  a duplicate, no lost or stale data.
- A bad release (an image that never gets Ready) stalls within the same limits,
  the service stays up meanwhile, and `kubectl rollout undo` restores it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from resilience.observe import Monitors, State, check_rollout_limits
from resilience.policy import IntendedPolicy
from resilience.slo.error_budget import check_error_budget
from resilience.suites.drift import ROLLOUT_FIELDS, deployment_drift
from resilience.targets.live import LiveTarget
from resilience.traffic import LoadSession, SessionTraffic

pytestmark = pytest.mark.resilience

REPOSITORY = "ghcr.io/harmonyflow/session-state"
RELEASES = (f"{REPOSITORY}:1.0.0", f"{REPOSITORY}:1.0.1")
BAD_RELEASE = f"{REPOSITORY}:never-ready"
STALL_OBSERVATION_SECONDS = 10.0
STALL_TIMEOUT_SECONDS = 60.0


def set_image(target: LiveTarget, image: str) -> None:
    target.apps.patch_namespaced_deployment(
        target.deployment,
        target.namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": target.deployment, "image": image}]}}
            }
        },
        _request_timeout=15,
    )


def live_image(target: LiveTarget) -> str:
    containers = target.read_deployment()["spec"]["template"]["spec"]["containers"]
    return str(next(c["image"] for c in containers if c["name"] == target.deployment))


def rolled_out_to(image: str, deployment: str):  # type: ignore[no-untyped-def]
    def done(state: State) -> bool:
        observed = state.deployments.get(deployment)
        return bool(observed and observed.image == image and observed.complete)

    return done


@pytest.mark.timeout(60)
def test_live_rollout_strategy_is_the_intended_one(
    target: LiveTarget, intended_policy: IntendedPolicy
) -> None:
    drift = [
        d
        for d in deployment_drift(target.read_deployment(), intended_policy)
        if d.field in ROLLOUT_FIELDS.values() or d.field == "spec.strategy.type"
    ]
    assert not drift, "the live rollout strategy is not deploy/base's:\n" + "\n".join(
        d.message for d in drift
    )


@pytest.mark.destructive
@pytest.mark.timeout(900)
def test_rollout_stays_within_surge_and_availability_limits(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    traffic: Callable[..., SessionTraffic],
    load: Callable[[str], LoadSession],
) -> None:
    before = live_image(target)
    image = RELEASES[1] if before != RELEASES[1] else RELEASES[0]
    deadline = intended_policy.rollout.progress_deadline_seconds
    requests = traffic()
    with (
        load("rolling-update") as background,
        background.fault("rollout"),
        monitors.mark("rollout", f"{before} -> {image}"),
    ):
        began = time.monotonic()
        set_image(target, image)
        monitors.timeline.wait_for(
            rolled_out_to(image, target.deployment), deadline + 30, f"the rollout to {image}"
        )
        seconds = time.monotonic() - began
    outcome = requests.stop()
    result = check_rollout_limits(monitors.timeline.states(), intended_policy)
    print(f"rollout {before} -> {image}: {seconds:.1f}s, {dict(result.details)}")
    assert result.ok, result.summary()
    assert result.details["rollout_states"] > 0, "the monitors saw no rollout state at all"
    assert seconds <= deadline, (
        f"rollout to {image} took {seconds:.0f}s, longer than progressDeadlineSeconds {deadline}"
    )
    budget = background.witness_budget()
    check_error_budget(outcome, budget, f"rollout to {image}").raise_if_violated()
    background.check(f"rollout to {image}").raise_if_violated()


@pytest.mark.slow
@pytest.mark.destructive
@pytest.mark.timeout(600)
def test_bad_release_stalls_within_limits_and_rollout_undo_restores(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    traffic: Callable[..., SessionTraffic],
    load: Callable[[str], LoadSession],
) -> None:
    before = live_image(target)
    floor = intended_policy.rollout.fenceposts.min_available
    requests = traffic()
    with load("rolling-update") as background:
        with background.fault("bad-release"), monitors.mark("bad-release", BAD_RELEASE):
            set_image(target, BAD_RELEASE)
            stalled = wait_stalled(target, monitors)
            endpoints = observe_endpoints(target, STALL_OBSERVATION_SECONDS)
        with background.fault("rollout-undo"), monitors.mark("rollout-undo"):
            target.kubectl(
                "rollout", "undo", f"deployment/{target.deployment}", "-n", target.namespace
            )
            target.kubectl(
                "rollout",
                "status",
                f"deployment/{target.deployment}",
                "-n",
                target.namespace,
                "--timeout=180s",
                timeout=200,
            )
    outcome = requests.stop()
    result = check_rollout_limits(monitors.timeline.states(), intended_policy)
    assert result.ok, result.summary()
    print(f"stalled at {stalled}; ready endpoints during the stall: {endpoints}")
    assert min(endpoints) >= floor, (
        f"bad release {BAD_RELEASE}: only {min(endpoints)} ready endpoints during the stall, "
        f"fewer than replicas - maxUnavailable = {floor}"
    )
    assert live_image(target) == before, (
        f"kubectl rollout undo left image {live_image(target)}, expected {before}"
    )
    check_error_budget(
        outcome, background.witness_budget(), f"stalled rollout to {BAD_RELEASE}"
    ).raise_if_violated()
    background.check(f"stalled rollout to {BAD_RELEASE} and its undo").raise_if_violated()


def wait_stalled(target: LiveTarget, monitors) -> str:  # type: ignore[no-untyped-def]
    """Until the bad release's pods exist, none is Ready, and nothing changed for a few seconds."""

    def signature(state: State) -> tuple[int, ...]:
        pods = [p for p in state.pods.values() if p.active]
        bad = [p for p in pods if p.image == BAD_RELEASE]
        return (len(pods), len(bad), sum(p.ready for p in pods), sum(p.ready for p in bad))

    deadline = time.monotonic() + STALL_TIMEOUT_SECONDS
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = signature(monitors.timeline.current)
        if now != last:
            last, since = now, time.monotonic()
        elif now[1] > 0 and time.monotonic() - since >= 5.0:
            assert now[3] == 0, f"a pod of {BAD_RELEASE} became Ready: the release is not bad"
            return f"{now[0]} pods, {now[1]} of the bad release, {now[2]} Ready"
        time.sleep(0.25)
    raise AssertionError(
        f"rollout to {BAD_RELEASE} did not settle within {STALL_TIMEOUT_SECONDS:.0f}s: {last}"
    )


def observe_endpoints(target: LiveTarget, seconds: float) -> list[int]:
    """Ready endpoint counts, once a second, for `seconds`."""
    counts = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.append(target.ready_endpoints())
        time.sleep(1.0)
    return counts
