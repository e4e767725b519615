"""Table tests of the rollout-limit checker: clean rollouts pass, seeded violations fail by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience.observe.rollout import (
    AVAILABILITY_LIMIT,
    SURGE_LIMIT,
    check_rollout_limits,
    rollout_samples,
)
from resilience.observe.timeline import Mark
from resilience.policy import IntendedPolicy
from tests.observe.builders import T0, World, base_policy, make_policy, steady, textbook_rollout


@pytest.mark.parametrize(
    ("replicas", "max_surge", "max_unavailable"),
    [
        pytest.param(3, 1, 1, id="seed-3-1-1"),
        pytest.param(3, 1, 0, id="surge-only"),
        pytest.param(3, 0, 1, id="unavailable-only"),
        pytest.param(4, "25%", "25%", id="defaults-at-4"),
        pytest.param(10, "25%", "25%", id="defaults-at-10"),
        pytest.param(5, 2, 2, id="wide"),
    ],
)
def test_textbook_rollout_is_within_limits(
    replicas: int, max_surge: int | str, max_unavailable: int | str
) -> None:
    policy = make_policy(replicas, max_surge, max_unavailable)
    result = check_rollout_limits(textbook_rollout(steady(policy)).states(), policy)
    posts = policy.rollout.fenceposts
    assert result.ok, result.summary()
    assert result.details["max_pods"] == posts.max_total_pods or posts.max_surge == 0
    assert result.details["min_available"] >= posts.min_available


def test_textbook_rollout_within_the_intended_policy_of_deploy_base() -> None:
    policy = base_policy()
    world = textbook_rollout(steady(policy))
    result = check_rollout_limits(world.states(), policy)
    assert result.ok, result.summary()
    assert result.details["max_pods"] == policy.rollout.fenceposts.max_total_pods


def _surge_one_too_many(world: World) -> None:
    posts = world.policy.rollout.fenceposts
    for i in range(posts.max_surge + 1):
        world.pod(f"new-{i}", rs="new")


def _scale_down_one_too_many(world: World) -> None:
    posts = world.policy.rollout.fenceposts
    world.pod("new-0", rs="new")
    for i in range(posts.replicas - posts.min_available + 1):
        world.pod(f"old-{i}", deleting=True)


def _unready_below_floor(world: World) -> None:
    posts = world.policy.rollout.fenceposts
    world.pod("new-0", rs="new")
    for i in range(posts.replicas - posts.min_available + 1):
        world.pod(f"old-{i}", ready=False)


@pytest.mark.parametrize(
    ("fault", "limit", "limit_value", "observed"),
    [
        pytest.param(
            _surge_one_too_many,
            SURGE_LIMIT,
            lambda p: p.rollout.fenceposts.max_total_pods,
            lambda p: p.rollout.fenceposts.max_total_pods + 1,
            id="surge",
        ),
        pytest.param(
            _scale_down_one_too_many,
            AVAILABILITY_LIMIT,
            lambda p: p.rollout.fenceposts.min_available,
            lambda p: p.rollout.fenceposts.min_available - 1,
            id="scale-down",
        ),
        pytest.param(
            _unready_below_floor,
            AVAILABILITY_LIMIT,
            lambda p: p.rollout.fenceposts.min_available,
            lambda p: p.rollout.fenceposts.min_available - 1,
            id="unready",
        ),
    ],
)
def test_seeded_violation_is_reported_with_limit_and_observed_value(
    fault: Callable[[World], None],
    limit: str,
    limit_value: Callable[[IntendedPolicy], int],
    observed: Callable[[IntendedPolicy], int],
) -> None:
    policy = base_policy()
    world = steady(policy)
    fault(world)
    result = check_rollout_limits(world.states(), policy)
    first = result.first
    assert first is not None, "the checker missed a seeded violation"
    assert (first.limit, first.limit_value, first.observed) == (
        limit,
        limit_value(policy),
        observed(policy),
    )
    assert f"{observed(policy)} " in first.message
    assert f"= {limit_value(policy)}" in first.message
    assert f"(event {first.index})" in first.message
    assert len(result.violations) == 1, "one excursion is one violation"


def test_surge_message_reads_like_the_pager() -> None:
    policy = make_policy(3, 1, 1)
    world = steady(policy)
    _surge_one_too_many(world)
    message = check_rollout_limits(world.states(), policy).violations[0].message
    assert message.startswith("rollout of web: 5 pods at ")
    assert message.endswith(
        "more than replicas 3 + maxSurge 1 = 4 (terminating pods not counted)"
    ), message


def test_terminating_pods_do_not_count_towards_surge() -> None:
    policy = make_policy(3, 1, 1)
    world = steady(policy)
    world.pod("new-0", rs="new").pod("old-0", deleting=True).pod("new-1", rs="new")
    result = check_rollout_limits(world.states(), policy)
    assert result.ok, result.summary()
    assert result.details["max_pods_with_terminating"] == 5


def test_min_ready_seconds_delays_availability() -> None:
    policy = make_policy(3, 1, 1, min_ready_seconds=30)
    world = steady(policy)
    world.after(60).pod("new-0", rs="new").pod("new-0", ready=True)
    world.pod("old-0", deleting=True)  # new-0 has been Ready for 1 s, not 30: only 2 available
    world.pod("old-1", deleting=True)
    first = check_rollout_limits(world.states(), policy).first
    assert first is not None and first.limit == AVAILABILITY_LIMIT
    assert first.observed == policy.rollout.fenceposts.min_available - 1


def test_scaling_down_mid_rollout_is_not_a_surge() -> None:
    policy = make_policy(5, 1, 1)
    world = steady(policy)
    world.pod("new-0", rs="new")
    world.deployment(3)  # the HPA scales down; the controller removes pods afterwards
    for i in range(3):
        world.pod(f"old-{i}", deleting=True)
    result = check_rollout_limits(world.states(), policy)
    assert result.ok, result.summary()


def test_scaling_up_mid_rollout_is_not_a_floor_breach() -> None:
    policy = make_policy(3, 1, 1)
    world = steady(policy)
    world.pod("new-0", rs="new")
    world.deployment(6)
    for i in range(1, 4):
        world.pod(f"new-{i}", rs="new")
    result = check_rollout_limits(world.states(), policy)
    assert result.ok, result.summary()


def test_outside_a_rollout_a_killed_pod_is_not_a_rollout_violation() -> None:
    policy = make_policy(3, 1, 1)
    world = steady(policy)
    world.pod("old-0", deleting=True).pod("old-1", ready=False)
    assert check_rollout_limits(world.states(), policy).ok


def test_exclude_mark_skips_the_floor_during_an_injected_fault() -> None:
    policy = make_policy(3, 1, 1)
    world = steady(policy)
    start = world.wall
    _unready_below_floor(world)
    mark = Mark(0, "kill", start, start - T0, world.wall + 1, None)
    assert not check_rollout_limits(world.states(), policy).ok
    assert check_rollout_limits(world.states(), policy, exclude=[mark]).ok


def test_samples_follow_every_state() -> None:
    policy = make_policy(3, 1, 1)
    world = textbook_rollout(steady(policy))
    samples = rollout_samples(world.states(), policy)
    assert len(samples) == len(world.events) - world.synced_index
    assert samples[-1].active == 3 and not samples[-1].rolling
