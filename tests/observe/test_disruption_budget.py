"""Table tests of the PDB checker: evictions are held to the budget, other losses are dips."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience.observe.disruption import (
    BUDGET_LIMIT,
    EVICTION_REASON,
    check_disruption_budget,
    disruption_dips,
)
from tests.observe.builders import World, base_policy, make_policy, steady


def _evict(world: World, name: str) -> None:
    world.pod(name, disruption_target=EVICTION_REASON)
    world.pod(name, deleting=True, ready=False)


def one_eviction(world: World) -> None:
    _evict(world, "old-0")
    world.pod("old-0-replacement").pod("old-0-replacement", ready=True)


def evictions_one_at_a_time(world: World) -> None:
    for i in range(world.policy.rollout.replicas):
        _evict(world, f"old-{i}")
        world.delete(f"old-{i}")
        world.pod(f"r-{i}").pod(f"r-{i}", ready=True)


def evicting_an_unready_pod(world: World) -> None:
    world.pod("extra").pod("extra", ready=False)  # never Ready: outside the healthy count
    _evict(world, "extra")


def _healthy_spare(world: World) -> int:
    policy = world.policy
    assert policy.disruption is not None
    return policy.rollout.replicas - policy.disruption.desired_healthy(policy.rollout.replicas)


def evictions_past_the_budget(world: World) -> None:
    for i in range(_healthy_spare(world) + 1):
        _evict(world, f"old-{i}")


def direct_deletes_past_the_budget(world: World) -> None:
    for i in range(_healthy_spare(world) + 1):
        world.pod(f"old-{i}", deleting=True, ready=False)


def probe_failures_past_the_budget(world: World) -> None:
    for i in range(_healthy_spare(world) + 1):
        world.pod(f"old-{i}", ready=False)


@pytest.mark.parametrize(
    ("scenario", "violated", "dip_cause"),
    [
        pytest.param(one_eviction, False, None, id="one-eviction"),
        pytest.param(evictions_one_at_a_time, False, None, id="drain-one-at-a-time"),
        pytest.param(evicting_an_unready_pod, False, None, id="unready-pod-bypasses"),
        pytest.param(evictions_past_the_budget, True, "eviction", id="evictions-past-budget"),
        pytest.param(direct_deletes_past_the_budget, False, "deleted", id="direct-delete"),
        pytest.param(probe_failures_past_the_budget, False, "not ready", id="probe-failure"),
    ],
)
def test_disruption_budget(
    scenario: Callable[[World], None], violated: bool, dip_cause: str | None
) -> None:
    policy = base_policy()
    assert policy.disruption is not None
    world = steady(policy)
    scenario(world)
    states = world.states()
    result = check_disruption_budget(states, policy)
    assert result.ok is not violated, result.summary()
    dips = disruption_dips(states, policy)
    if dip_cause is None:
        assert not dips, dips
    else:
        assert dips and any(c.endswith(f": {dip_cause}") for d in dips for c in d.causes), dips
        assert result.details["dips"] == len(dips)
        assert dips[0].min_ready == policy.disruption.desired_healthy(policy.rollout.replicas) - 1


def test_violation_names_the_budget_and_the_count() -> None:
    policy = base_policy()
    assert policy.disruption is not None
    world = steady(policy)
    evictions_past_the_budget(world)
    first = check_disruption_budget(world.states(), policy).first
    assert first is not None
    desired = policy.disruption.desired_healthy(policy.rollout.replicas)
    assert (first.limit, first.limit_value, first.observed) == (BUDGET_LIMIT, desired, desired - 1)
    assert f"left {desired - 1} Ready pods" in first.message
    assert f"minAvailable {policy.disruption.min_available}" in first.message
    assert f"pdb {policy.disruption.name}: eviction of pod old-" in first.message


def test_percentage_budget_uses_the_deployment_scale() -> None:
    policy = make_policy(4, 1, 1, min_available="50%")
    world = steady(policy)
    for i in range(3):
        _evict(world, f"old-{i}")
    first = check_disruption_budget(world.states(), policy).first
    assert first is not None and first.limit_value == 2 and first.observed == 1


def test_no_budget_in_the_policy_is_skipped() -> None:
    policy = make_policy(min_available=None)
    result = check_disruption_budget(steady(policy).states(), policy)
    assert result.ok and result.details["skipped"]


def test_dip_ends_when_ready_pods_are_back() -> None:
    policy = base_policy()
    world = steady(policy)
    probe_failures_past_the_budget(world)
    world.pod("old-0", ready=True)
    (dip,) = disruption_dips(world.states(), policy)
    assert dip.end is not None and dip.seconds == world.step
