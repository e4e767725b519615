"""Table tests of the HPA checker: bounds, behaviour rate limits, the legacy cap, step times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from resilience.observe.autoscaling import (
    DOWN_RATE_LIMIT,
    LEGACY_UP_LIMIT,
    MAX_LIMIT,
    MIN_LIMIT,
    UP_RATE_LIMIT,
    check_hpa,
    hpa_steps,
)
from resilience.policy import IntendedPolicy
from tests.observe.builders import World, base_policy, make_policy, steady

DEFAULT_BEHAVIOR: dict[str, Any] = {"behavior": {}}  # every part defaulted
SLOW_DOWN: dict[str, Any] = {
    "behavior": {
        "scaleDown": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    }
}
PODS_UP_MIN: dict[str, Any] = {
    "behavior": {
        "scaleUp": {
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": 30},
                {"type": "Percent", "value": 100, "periodSeconds": 30},
            ],
        }
    }
}


def world_for(hpa: dict[str, Any] | None) -> World:
    policy = base_policy() if hpa is None else make_policy(hpa=hpa)
    return steady(policy)


def legacy_limit(p: IntendedPolicy) -> int:
    return max(2 * p.hpa.min_replicas, 4)


CASES = [
    # (id, behaviour, steps as (seconds later, from, to), violated limit or None)
    ("legacy-double", None, [(5, 3, 6)], None),
    ("legacy-past-double", None, [(5, 3, 7)], LEGACY_UP_LIMIT),
    ("legacy-scale-down-unlimited", None, [(5, 3, 6), (400, 6, 3)], None),
    ("default-behaviour-4-pods", DEFAULT_BEHAVIOR, [(5, 3, 7)], None),
    ("default-behaviour-past", DEFAULT_BEHAVIOR, [(5, 3, 8)], UP_RATE_LIMIT),
    ("two-steps-in-one-period", DEFAULT_BEHAVIOR, [(5, 3, 6), (5, 6, 9)], UP_RATE_LIMIT),
    ("two-steps-in-two-periods", DEFAULT_BEHAVIOR, [(5, 3, 6), (20, 6, 9)], None),
    ("min-select-one-pod", PODS_UP_MIN, [(5, 3, 4)], None),
    ("min-select-two-pods", PODS_UP_MIN, [(5, 3, 5)], UP_RATE_LIMIT),
    ("scale-down-half", SLOW_DOWN, [(5, 3, 7), (20, 7, 10), (400, 10, 5)], None),
    ("scale-down-too-fast", SLOW_DOWN, [(5, 3, 7), (20, 7, 10), (400, 10, 4)], DOWN_RATE_LIMIT),
    ("above-max", None, [(5, 3, 6), (30, 6, 11)], MAX_LIMIT),
]


@pytest.mark.parametrize(
    ("behaviour", "steps", "violated"),
    [pytest.param(b, s, v, id=name) for name, b, s, v in CASES],
)
def test_hpa_steps(
    behaviour: dict[str, Any] | None,
    steps: list[tuple[float, int, int]],
    violated: str | None,
) -> None:
    world = world_for(behaviour)
    world.hpa(3, 3, scaled=False)
    for later, old, new in steps:
        world.after(later).hpa(old, new)
    result = check_hpa(world.states(), world.policy)
    if violated is None:
        assert result.ok, result.summary()
    else:
        assert result.first is not None, "the checker missed a seeded violation"
        assert result.first.limit == violated, result.summary()
        assert f"-> {steps[-1][2]}" in result.first.message or "desired" in result.first.message
    assert result.details["steps"] == len(steps)


def test_bounds_use_the_intended_policy() -> None:
    policy = base_policy()
    world = steady(policy).hpa(3, 3, scaled=False)
    world.after(30).hpa(policy.hpa.max_replicas, policy.hpa.max_replicas + 1)
    first = check_hpa(world.states(), policy).first
    assert first is not None
    assert (first.limit, first.limit_value, first.observed) == (
        MAX_LIMIT,
        policy.hpa.max_replicas,
        policy.hpa.max_replicas + 1,
    )
    assert f"more than maxReplicas {policy.hpa.max_replicas}" in first.message


def test_desired_below_min_while_scaling_active_is_reported() -> None:
    policy = base_policy()
    world = steady(policy).hpa(3, policy.hpa.min_replicas - 1, scaled=False)
    first = check_hpa(world.states(), policy).first
    assert first is not None and first.limit == MIN_LIMIT


def test_stale_desired_without_metrics_is_not_a_decision() -> None:
    policy = base_policy()
    world = steady(policy).hpa(3, 0, scaled=False, active=False)
    assert check_hpa(world.states(), policy).ok


def test_legacy_limit_message_names_the_rule() -> None:
    world = world_for(None).hpa(3, 3, scaled=False)
    policy = world.policy
    world.after(5).hpa(3, legacy_limit(policy) + 1)
    first = check_hpa(world.states(), policy).first
    assert first is not None
    assert first.limit_value == legacy_limit(policy)
    assert f"max(2 x 3, 4) = {legacy_limit(policy)}" in first.message


def test_step_times_are_recorded() -> None:
    world = world_for(DEFAULT_BEHAVIOR).hpa(3, 3, scaled=False)
    world.after(5).hpa(3, 5).after(40).hpa(5, 7)
    steps = hpa_steps(world.states(), world.policy.hpa.name)
    assert [(s.from_replicas, s.to_replicas) for s in steps] == [(3, 5), (5, 7)]
    assert steps[0].seconds_since_previous is None
    assert steps[1].seconds_since_previous == pytest.approx(40)


@pytest.mark.parametrize("make", [pytest.param(lambda w: w.hpa(3, 3, scaled=False), id="no-step")])
def test_no_step_no_violation(make: Callable[[World], World]) -> None:
    world = make(world_for(None))
    result = check_hpa(world.states(), world.policy)
    assert result.ok and result.details["steps"] == 0
