from __future__ import annotations

from typing import Any

import pytest

from resilience.errors import PolicyError
from resilience.policy import (
    DisruptionPolicy,
    IntendedPolicy,
    ProbeKind,
    ScalingPolicy,
    load_policy,
    probe_policy,
    scaling_behavior,
)
from tests.builders import REPO_ROOT


@pytest.fixture(scope="module")
def base_policy() -> IntendedPolicy:
    return load_policy(REPO_ROOT / "deploy" / "base")


def test_base_policy_resolves_the_seed(base_policy: IntendedPolicy) -> None:
    posts = base_policy.rollout.fenceposts
    assert (posts.max_total_pods, posts.min_available) == (4, 2)
    assert base_policy.hpa.behavior is None
    assert base_policy.hpa.scale_down_stabilization_seconds == 300
    assert base_policy.zones.zones == ("us-west-2a", "us-west-2b", "us-west-2c")
    assert base_policy.label_selector == "app=session-state-service"
    assert base_policy.probes[ProbeKind.LIVENESS].port == 8080  # named port "http"


def test_probe_defaults_are_upstream_defaults() -> None:
    probe = probe_policy(ProbeKind.LIVENESS, {"httpGet": {"path": "/x", "port": 8080}}, {})
    assert (
        probe.initial_delay_seconds,
        probe.period_seconds,
        probe.timeout_seconds,
        probe.success_threshold,
        probe.failure_threshold,
    ) == (0, 10, 1, 1, 3)
    assert probe.worst_detection_seconds == 31


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        pytest.param({"exec": {"command": ["true"]}}, "only httpGet", id="exec"),
        pytest.param({"httpGet": {"port": "admin"}}, "no container port named admin", id="port"),
    ],
)
def test_probe_policy_rejects(probe: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        probe_policy(ProbeKind.READINESS, probe, {"http": 8080})


def test_behavior_defaults_fill_what_is_left_out() -> None:
    behavior = scaling_behavior(
        {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    )
    assert behavior.scale_up.policies == (ScalingPolicy("Pods", 2, 60),)
    assert behavior.scale_up.stabilization_window_seconds == 0
    assert behavior.scale_down.stabilization_window_seconds == 300
    assert behavior.scale_down.policies == (ScalingPolicy("Percent", 100, 15),)


@pytest.mark.parametrize(
    ("budget", "expected_pods", "desired_healthy"),
    [
        pytest.param(DisruptionPolicy("p", 2, None), 3, 2, id="min-available-int"),
        pytest.param(DisruptionPolicy("p", "50%", None), 3, 2, id="min-available-percent-ceil"),
        pytest.param(DisruptionPolicy("p", None, 1), 3, 2, id="max-unavailable-int"),
        pytest.param(DisruptionPolicy("p", None, "50%"), 3, 1, id="max-unavailable-percent"),
        pytest.param(DisruptionPolicy("p", None, 5), 3, 0, id="max-unavailable-clamped"),
    ],
)
def test_disruption_desired_healthy(
    budget: DisruptionPolicy, expected_pods: int, desired_healthy: int
) -> None:
    assert budget.desired_healthy(expected_pods) == desired_healthy
