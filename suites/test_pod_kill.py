"""Pod kill: one pod deleted under traffic; recovery measured, no acknowledged write lost.

The pod is deleted through the API with its grace period (what an eviction, a
node upgrade or `kubectl delete pod` does), under Locust REST and WebSocket load
(loadtests/profiles/suite-pod-kill.yaml). The Deployment must be back to all
replicas Ready and spread over the zones (when they were spread before the kill: a
pod kill cannot be blamed for a skew it found, which is recorded as a finding),
the time that took is measured from
the watch timeline, every write the service acknowledged must still be there,
failed requests stay within the error budget of each window (baseline, fault,
recovery), and WebSocket sessions resume without a gap or a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience.chaos.pods import kill_one_pod
from resilience.observe import Monitors, check_recovery, measure_recovery
from resilience.observe.recovery import ready_spread
from resilience.policy import IntendedPolicy
from resilience.safety.refusals import blast_radius_refusal, disruption_budget, enforce
from resilience.slo.error_budget import check_error_budget
from resilience.slo.writes import check_no_lost_writes
from resilience.targets.live import LiveTarget
from resilience.traffic import LoadSession, SessionTraffic, read_back

pytestmark = pytest.mark.resilience

SEED = 8  # the same pod on every run of a game day


@pytest.mark.timeout(300)
def test_pod_kill_recovers_in_time_without_losing_acknowledged_writes(
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    monitors: Monitors,
    traffic: Callable[..., SessionTraffic],
    load: Callable[[str], LoadSession],
    finding: Callable[[str, str], None],
) -> None:
    enforce([blast_radius_refusal(1, disruption_budget(intended_policy), "pod kill")])
    writes = traffic(sessions=6)
    # The load's baseline and recovery windows are also writes acknowledged before and
    # after the fault.
    with load("pod-kill") as background:
        # loadtests/profiles/suite-pod-kill.yaml: the limits and their reasons
        recovery_limit = background.limit("recovery_seconds")
        with background.fault("kill-pod"), monitors.mark("kill-pod") as mark:
            killed = kill_one_pod(
                target.namespace,
                target.label_selector,
                target.deployment,
                recovery_timeout=recovery_limit,
                seed=SEED,
            )
    outcome = writes.stop()
    fault = monitors.timeline.marks[mark.id]
    states = monitors.timeline.states()
    before = [ready_spread(s, intended_policy) for s in states if s.wall < fault.start][-1:]
    spread_before = not before or before[0].skew <= intended_policy.zones.max_skew
    if not spread_before:
        finding(
            "Replicas were not spread over the zones before the pod kill",
            f"ready pods per zone {dict(before[0].zones)} (skew {before[0].skew}, maxSkew "
            f"{intended_policy.zones.max_skew}): left by an earlier rollout; the recovery is "
            "judged on the replica count alone",
        )
    recovery = measure_recovery(states, intended_policy, fault, spread=spread_before)
    print(
        f"killed {killed['pod']} in {killed['zone']}; recovery {recovery.seconds}s; "
        f"{outcome.failures} of {outcome.requests} requests failed"
    )
    assert recovery.disrupted_at is not None, (
        f"the monitors never saw {killed['pod']} go: the kill did not take effect"
    )
    check_recovery(recovery, recovery_limit).raise_if_violated()
    final = read_back(target.base_url, writes.sessions)
    check_no_lost_writes(outcome.acked, final, f"kill of {killed['pod']}").raise_if_violated()
    what = f"kill of {killed['pod']}"
    check_error_budget(outcome, background.witness_budget(), what).raise_if_violated()
    background.check(f"kill of {killed['pod']}").raise_if_violated()
