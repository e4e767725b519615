"""HPA recovery: under the HPA-trigger load the autoscaler scales within its limits, and back.

- The live HPA is deploy/base's: minReplicas, maxReplicas, the metric targets and
  the scale target (CI). Its behaviour is not compared: overlays may change its
  windows (the sandbox waits 30 s instead of 300 s before scaling down); the checks
  below use the live behaviour, read from the cluster, never a typed number.
- Under the HPA-trigger load (slow), replicas rise above minReplicas within the
  behaviour's rate limits and never above maxReplicas, at every HPA event
  (check_hpa); the load's SLOs recover once the new pods are Ready; after the load
  stops, replicas return to minReplicas, no sooner than the scale-down stabilization
  window after the metrics last asked for more; the seconds to each step are
  recorded (record_property, and printed).

One machine cannot push the reference service over 70 % of its 500m CPU request, so
the test rolls the Deployment to the CPU-heavy release first (`burns-cpu`, as
experiments/hpa-surge.yaml does; on staging, pass the current release with
HARMONYFLOW_HPA_SURGE_IMAGE and a bigger profile) and puts the release back after
it (`destructive`; restore_image in a `finally`, the snapshot restore behind it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from resilience.chaos.deployments import restore_image, rollout_seconds, set_image
from resilience.observe import Monitors, State, check_hpa, hpa_steps
from resilience.policy import IntendedPolicy
from resilience.suites.hpa import (
    at_minimum,
    ceiling_reached,
    check_scale_down_waited,
    hpa_drift,
    replicas_needed,
    scale_times,
    scaled_up,
    with_live_behavior,
)
from resilience.targets.live import REQUEST_TIMEOUT, LiveTarget
from resilience.traffic import LoadSession

pytestmark = pytest.mark.resilience

SURGE_IMAGE = os.environ.get(
    "HARMONYFLOW_HPA_SURGE_IMAGE", "ghcr.io/harmonyflow/session-state:burns-cpu"
)
ROLLOUT_TIMEOUT_SECONDS = 180.0
# Metrics need a window of samples and the controller a sync or two: minutes at most.
SCALE_UP_TIMEOUT_SECONDS = 240.0
# Beyond the stabilization window: the metrics window, sync periods, pod termination.
SCALE_DOWN_SLACK_SECONDS = 120.0


def live_hpa(target: LiveTarget, policy: IntendedPolicy) -> dict[str, Any]:
    """The live HPA as API JSON (camelCase); a clear failure when it is missing."""
    api = client.AutoscalingV2Api(target.api)
    try:
        body = api.read_namespaced_horizontal_pod_autoscaler(
            policy.hpa.name, target.namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except client.ApiException as error:
        if error.status == 404:
            pytest.fail(
                f"no HorizontalPodAutoscaler {policy.hpa.name!r} in namespace "
                f"{target.namespace!r}: deploy/base has one",
                pytrace=False,
            )
        raise
    found: dict[str, Any] = target.api.sanitize_for_serialization(body)
    return found


@pytest.mark.timeout(60)
def test_live_hpa_is_the_intended_one(target: LiveTarget, intended_policy: IntendedPolicy) -> None:
    drift = hpa_drift(live_hpa(target, intended_policy), intended_policy)
    assert not drift, "the live HPA is not deploy/base's:\n" + "\n".join(d.message for d in drift)


@pytest.mark.slow
@pytest.mark.destructive
@pytest.mark.timeout(900)
def test_hpa_scales_up_within_its_limits_under_load_and_back_to_min(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    load: Callable[[str], LoadSession],
    recovery_journal: None,
    record_property: Callable[[str, object], None],
) -> None:
    policy = with_live_behavior(intended_policy, live_hpa(target, intended_policy))
    window = policy.hpa.scale_down_stabilization_seconds
    load_started = load_stopped = 0.0
    set_image(target.deployment, target.namespace, SURGE_IMAGE)
    try:
        with monitors.mark("surge-release", SURGE_IMAGE):
            rollout_seconds(target.deployment, target.namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
        session = load("hpa")
        load_started = time.time()
        with (
            session as background,
            background.fault("scale-up"),
            monitors.mark("scale-up", f"load until the new pods are Ready, {SURGE_IMAGE}"),
        ):
            wait_scaled_up(monitors, policy, SCALE_UP_TIMEOUT_SECONDS)
        load_stopped = time.time()
        with monitors.mark("scale-down", f"stabilization window {window}s"):
            monitors.timeline.wait_for(
                lambda s: at_minimum(s, policy),
                window + SCALE_DOWN_SLACK_SECONDS,
                f"the HPA back at minReplicas {policy.hpa.min_replicas} after the load stopped",
            )
    finally:
        restore_image(target.deployment, target.namespace)
        rollout_seconds(target.deployment, target.namespace, timeout=ROLLOUT_TIMEOUT_SECONDS)
    states = monitors.timeline.states()
    steps = hpa_steps(states, policy.hpa.name)
    times = scale_times(states, steps, policy, load_started, load_stopped)
    for name, value in times.properties():
        record_property(name, value)
    print(f"hpa {policy.hpa.name}: " + ", ".join(f"{k} {v}" for k, v in times.properties()))
    check_hpa(states, policy).raise_if_violated()
    check_scale_down_waited(states, policy, window).raise_if_violated()
    background.check(f"scale-up of {target.deployment} under the HPA load").raise_if_violated()


def wait_scaled_up(monitors: Monitors, policy: IntendedPolicy, timeout: float) -> State:
    """Until the HPA runs more than minReplicas and all of them are Ready (bounded).

    Fails at once when the HPA sits at its live maxReplicas while the load needs more
    (naming maxReplicas, the need and desiredReplicas), and at the bound with what the
    HPA last reported.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = monitors.timeline.current
        if scaled_up(state, policy):
            return state
        hpa = state.hpas.get(policy.hpa.name)
        ceiling = None if hpa is None else ceiling_reached(hpa, policy.hpa)
        if ceiling is not None:
            raise AssertionError(ceiling.message)
        time.sleep(0.5)
    hpa = monitors.timeline.current.hpas.get(policy.hpa.name)
    if hpa is None:
        raise AssertionError(f"hpa {policy.hpa.name}: the monitors never saw it")
    needed = replicas_needed(hpa, policy.hpa)
    need = f"the load needs {needed[0]} replicas ({needed[1]})" if needed else "no metrics"
    raise AssertionError(
        f"hpa {policy.hpa.name}: not scaled up and Ready within {timeout:.0f}s of the load: "
        f"current {hpa.current_replicas}, desired {hpa.desired_replicas}, maxReplicas "
        f"{hpa.max_replicas}; {need}; conditions "
        + ", ".join(f"{c.type}={c.status} {c.reason}" for c in hpa.conditions)
    )
