"""Table tests of the HPA arithmetic (kubernetes-semantics.md section 5).

Cases follow upstream's replica_calculator_test.go and horizontal_test.go; the
upstream name is kept in the id where a case comes from there. Pods have one
container `app` requesting 1000m CPU unless a case says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.kube.controllers.hpa.compute import (
    compute_replicas_for_metric,
    compute_replicas_for_metrics,
)
from sandbox.kube.controllers.hpa.horizontal import decide, finish, scale_unavailable, set_condition
from sandbox.kube.controllers.hpa.model import (
    AutoscalerSpec,
    AutoscalerStatus,
    Behavior,
    Condition,
    ContainerRequests,
    CpuReadiness,
    History,
    HpaParams,
    InvalidMetric,
    MetricError,
    MetricSample,
    MetricSpec,
    MetricStatus,
    PodSnapshot,
    PodUsage,
    Recommendation,
    ScaleEvent,
    ScaleView,
    ScalingPolicy,
    ScalingRules,
    Tolerances,
)
from sandbox.kube.controllers.hpa.normalize import (
    normalize_desired_replicas,
    normalize_desired_replicas_with_behaviors,
    scale_down_limit_with_behaviors,
    scale_up_limit_with_rules,
    store_scale_event,
    with_default_down_window,
)
from sandbox.kube.controllers.hpa.replica_calculator import (
    calculate_requests,
    group_pods,
    resource_replicas,
    resource_samples,
)
from sandbox.kube.controllers.hpa.utilization import resource_utilization_ratio

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(minutes=10)
# upstream's test flags: cpuInitializationPeriod 2 min, initialReadinessDelay 10 s
TEST_READINESS = CpuReadiness(initialization_period_seconds=120, initial_readiness_delay_seconds=10)
DEFAULT_TOLERANCES = Tolerances(0.1, 0.1)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def make_pod(
    index: int,
    *,
    ready: str | None = "True",
    phase: str = "Running",
    deleting: bool = False,
    started: datetime | None = LONG_AGO,
    ready_since: datetime | None = LONG_AGO,
    cpu: int | None = 1000,
    memory: int | None = None,
) -> PodSnapshot:
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    return PodSnapshot(
        name=f"p-{index}",
        phase=phase,
        deleting=deleting,
        ready=ready,
        ready_transition=ready_since,
        start_time=started,
        containers=(ContainerRequests("app", requests),),
    )


def make_pods(
    count: int,
    *,
    ready: str | None = "True",
    phase: str = "Running",
    cpu: int | None = 1000,
    memory: int | None = None,
) -> list[PodSnapshot]:
    return [make_pod(i, ready=ready, phase=phase, cpu=cpu, memory=memory) for i in range(count)]


def samples(*values: int | None, at: datetime = NOW, window: float = 30) -> dict[str, MetricSample]:
    """Samples for p-0, p-1, ...; None leaves that pod without a sample."""
    return {
        f"p-{i}": MetricSample(value, at, window)
        for i, value in enumerate(values)
        if value is not None
    }


# ---- utilization ----


@pytest.mark.parametrize(
    ("usage", "requests", "target", "expected"),
    [
        pytest.param([300, 500, 700], [1000] * 3, 30, (50, 500), id="upstream-scale-up"),
        pytest.param([333], [1000], 100, (33, 333), id="truncates-33.3"),
        pytest.param([999], [1000], 100, (99, 999), id="truncates-99.9"),
        pytest.param([700] * 3, [500] * 3, 70, (140, 700), id="seed-140-percent"),
        pytest.param([101, 100], [100, 100], 100, (100, 100), id="truncates-raw-average"),
    ],
)
def test_utilization_is_truncated(
    usage: list[int], requests: list[int], target: int, expected: tuple[int, int]
) -> None:
    values = {f"p-{i}": v for i, v in enumerate(usage)}
    request_map = {f"p-{i}": r for i, r in enumerate(requests)}
    ratio, utilization, raw = resource_utilization_ratio(values, request_map, target)
    assert (utilization, raw) == expected
    assert ratio == utilization / target


def test_utilization_needs_a_known_pod() -> None:
    with pytest.raises(MetricError, match="no metrics returned matched known pods"):
        resource_utilization_ratio({"other": 100}, {"p-0": 1000}, 100)


# ---- requests ----


def test_requests_sum_containers_or_take_the_named_one() -> None:
    pod = PodSnapshot(
        "p",
        containers=(
            ContainerRequests("app", {"cpu": 500}),
            ContainerRequests("side", {"cpu": 100}),
        ),
    )
    assert calculate_requests([pod], "cpu") == {"p": 600}
    assert calculate_requests([pod], "cpu", container="app") == {"p": 500}


def test_a_container_without_a_request_makes_the_metric_invalid() -> None:
    pod = PodSnapshot(
        "p", containers=(ContainerRequests("app", {"cpu": 500}), ContainerRequests("side", {}))
    )
    with pytest.raises(MetricError, match="missing request for cpu in container side of Pod p"):
        calculate_requests([pod], "cpu")


def test_resource_samples_follow_the_metrics_client() -> None:
    usages = {
        "a": PodUsage(NOW, 15, {"app": {"cpu": 300}, "side": {"cpu": 50}}),
        "b": PodUsage(NOW, 15, {"app": {"cpu": 300}, "side": {}}),  # no cpu in one container
        "c": PodUsage(NOW, 15, {}),
    }
    assert {k: v.value_milli for k, v in resource_samples(usages, "cpu").items()} == {"a": 350}
    with pytest.raises(MetricError, match="container app not present in metrics for pod c"):
        resource_samples(usages, "cpu", container="app")
    with pytest.raises(MetricError, match="no metrics returned from resource metrics API"):
        resource_samples({}, "cpu")


# ---- groupPods ----


@pytest.mark.parametrize(
    ("pod", "sample", "resource", "group"),
    [
        pytest.param(make_pod(0), MetricSample(1, NOW, 30), "cpu", "ready", id="ready"),
        pytest.param(make_pod(0, deleting=True), None, "cpu", "ignored", id="deleting-ignored"),
        pytest.param(make_pod(0, phase="Failed"), None, "cpu", "ignored", id="failed-ignored"),
        pytest.param(
            make_pod(0, phase="Succeeded"), None, "cpu", "ignored", id="succeeded-ignored"
        ),
        pytest.param(
            make_pod(0, phase="Pending"),
            MetricSample(1, NOW, 30),
            "memory",
            "unready",
            id="pending-unready-any-resource",
        ),
        pytest.param(make_pod(0), None, "cpu", "missing", id="no-sample-missing"),
        pytest.param(
            make_pod(0, ready=None),
            MetricSample(1, NOW, 30),
            "cpu",
            "unready",
            id="cpu-no-ready-condition",
        ),
        pytest.param(
            make_pod(0, ready=None),
            MetricSample(1, NOW, 30),
            "memory",
            "ready",
            id="memory-ignores-readiness",
        ),
        pytest.param(
            make_pod(0, ready="False"),
            MetricSample(1, NOW, 30),
            "memory",
            "ready",
            id="memory-counts-unready-pod",
        ),
        pytest.param(
            make_pod(0, started=None),
            MetricSample(1, NOW, 30),
            "cpu",
            "unready",
            id="cpu-no-start-time",
        ),
        pytest.param(
            make_pod(0, started=ago(60), ready_since=ago(50)),
            MetricSample(1, NOW, 30),
            "cpu",
            "ready",
            id="initializing-sample-one-window-after-ready",
        ),
        pytest.param(
            make_pod(0, started=ago(60), ready_since=ago(50)),
            MetricSample(1, NOW, 60),
            "cpu",
            "unready",
            id="initializing-sample-within-window-of-ready",
        ),
        pytest.param(
            make_pod(0, started=ago(60), ready="False", ready_since=ago(60)),
            MetricSample(1, NOW, 30),
            "cpu",
            "unready",
            id="initializing-not-ready",
        ),
        pytest.param(
            make_pod(0, ready="False", started=ago(600), ready_since=ago(595)),
            MetricSample(1, NOW, 30),
            "cpu",
            "unready",
            id="never-became-ready",
        ),
        pytest.param(
            make_pod(0, ready="False", started=ago(600), ready_since=ago(300)),
            MetricSample(1, NOW, 30),
            "cpu",
            "ready",
            id="was-ready-once-counts",
        ),
        pytest.param(
            make_pod(0, ready="Unknown"),
            MetricSample(1, NOW, 30),
            "cpu",
            "ready",
            id="unknown-is-not-false",
        ),
    ],
)
def test_group_pods(
    pod: PodSnapshot, sample: MetricSample | None, resource: str, group: str
) -> None:
    metrics = {} if sample is None else {pod.name: sample}
    groups = group_pods([pod], metrics, resource, NOW, CpuReadiness(300, 30))
    found = {
        "ready": groups.ready_count == 1,
        "unready": pod.name in groups.unready,
        "missing": pod.name in groups.missing,
        "ignored": pod.name in groups.ignored,
    }
    assert [name for name, hit in found.items() if hit] == [group]


# ---- GetResourceReplicas ----


def hot(index: int) -> PodSnapshot:
    """A pod started now: its CPU sample is older than readiness + window."""
    return make_pod(index, started=NOW, ready_since=NOW)


RESOURCE_CASES = [
    # (id, current, pods, samples, target, expected (replicas, utilization, raw))
    ("upstream-scale-up", 3, make_pods(3), samples(300, 500, 700), 30, (5, 50, 500)),
    (
        "upstream-scale-up-unready-pod-scales-less",
        3,
        [make_pod(0, ready="False"), make_pod(1), make_pod(2)],
        samples(300, 500, 700),
        30,
        (4, 60, 600),
    ),
    (
        "upstream-scale-up-hot-cpu-pod-scales-less",
        3,
        [hot(0), make_pod(1), make_pod(2)],
        samples(300, 500, 700),
        30,
        (4, 60, 600),
    ),
    (
        "upstream-no-scale-unready-pods-ignored",
        3,
        [make_pod(0), make_pod(1, ready="False"), make_pod(2, ready="False")],
        samples(400, 500, 700),
        30,
        (3, 40, 400),
    ),
    (
        "upstream-scale-up-failed-pods-ignored",
        2,
        [make_pod(0), make_pod(1), make_pod(2, phase="Failed"), make_pod(3, phase="Failed")],
        samples(500, 700),
        30,
        (4, 60, 600),
    ),
    (
        "upstream-scale-up-deleting-pods-ignored",
        2,
        [make_pod(0), make_pod(1), make_pod(2, deleting=True), make_pod(3, deleting=True)],
        samples(500, 700),
        30,
        (4, 60, 600),
    ),
    ("upstream-scale-down", 5, make_pods(5), samples(100, 300, 500, 250, 250), 50, (3, 28, 280)),
    (
        "upstream-scale-down-exclude-unready",
        5,
        [*make_pods(3), make_pod(3, ready="False"), make_pod(4, ready="False")],
        samples(100, 300, 500, 250, 250),
        50,
        (2, 30, 300),
    ),
    (
        "upstream-scale-down-exclude-pending",
        5,
        [make_pod(0), *(make_pod(i, phase="Pending", ready="False") for i in range(1, 5))],
        samples(100),
        50,
        (1, 10, 100),
    ),
    (
        "upstream-scale-down-ignore-hot-cpu",
        5,
        [*make_pods(3), hot(3), hot(4)],
        samples(100, 300, 500, 250, 250),
        50,
        (2, 30, 300),
    ),
    (
        "upstream-within-default-tolerance",
        3,
        [make_pod(0, cpu=900), make_pod(1, cpu=1000), make_pod(2, cpu=1100)],
        samples(1010, 1030, 1020),
        100,
        (3, 102, 1020),
    ),
    (
        "tolerance-upper-edge-inclusive",
        3,
        make_pods(3),
        samples(1100, 1100, 1100),
        100,
        (3, 110, 1100),
    ),
    (
        "tolerance-just-above-upper-edge",
        3,
        make_pods(3),
        samples(1110, 1110, 1110),
        100,
        (4, 111, 1110),
    ),
    ("tolerance-lower-edge-inclusive", 10, make_pods(10), samples(*[900] * 10), 100, (10, 90, 900)),
    ("tolerance-just-below-lower-edge", 10, make_pods(10), samples(*[890] * 10), 100, (9, 89, 890)),
    (
        "upstream-missing-metrics-scale-down-count-as-100-percent",
        4,
        make_pods(4),
        samples(400, 95),
        100,
        (3, 24, 247),
    ),
    (
        "upstream-missing-and-unready-scale-up-count-as-zero",
        3,
        [make_pod(0, ready="False"), make_pod(1), make_pod(2)],
        samples(100, 2000),
        50,
        (4, 200, 2000),
    ),
    (
        "upstream-missing-metric-target-over-100",
        4,
        [make_pod(0, ready="False"), make_pod(1), make_pod(2, cpu=2000), make_pod(3, cpu=2000)],
        samples(200, 100, 100),
        300,
        (2, 6, 100),
    ),
    (
        "upstream-rolling-update-extra-pod-missing-would-flip-count",
        2,
        make_pods(3),
        samples(100, 100),
        50,
        (2, 10, 100),
    ),
    (
        "upstream-no-change-unready-pod-metric-missing",
        3,
        [make_pod(0, ready="False"), make_pod(1), make_pod(2)],
        samples(100, 450),
        50,
        (3, 45, 450),
    ),
    (
        "missing-metrics-scale-up-counts-zero",
        3,
        make_pods(3),
        samples(1000, 1000),
        50,
        (4, 100, 1000),
    ),
    (
        "seed-three-pods-at-140-percent",
        3,
        make_pods(3, cpu=500),
        samples(700, 700, 700),
        70,
        (6, 140, 700),
    ),
]


@pytest.mark.parametrize(
    ("current", "pods", "metrics", "target", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in RESOURCE_CASES],
)
def test_resource_replicas(
    current: int,
    pods: Sequence[PodSnapshot],
    metrics: dict[str, MetricSample],
    target: int,
    expected: tuple[int, int, int],
) -> None:
    result = resource_replicas(
        current, target, "cpu", pods, metrics, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert (result.replicas, result.utilization, result.raw_average_milli) == expected


def test_rebalancing_that_flips_direction_keeps_current() -> None:
    # ratio 80/90 < 1 (scale down); the 3 missing pods at 100 % make it 95/90 > 1
    result = resource_replicas(
        4, 90, "cpu", make_pods(4), samples(800), Tolerances(0, 0), NOW, TEST_READINESS
    )
    assert (result.replicas, result.utilization) == (4, 80)


@pytest.mark.parametrize(
    ("pods", "metrics", "message"),
    [
        pytest.param(
            make_pods(1, cpu=None),
            samples(200),
            "missing request for cpu in container app",
            id="upstream-missing-cpu-request",
        ),
        pytest.param(
            [],
            samples(200),
            "no pods returned by selector",
            id="no-pods",
        ),
        pytest.param(
            make_pods(2, phase="Pending"),
            samples(200, 200),
            "did not receive metrics for targeted pods",
            id="only-pending-pods",
        ),
        pytest.param(
            make_pods(1),
            {"an-older-pod-name": MetricSample(100, NOW, 30)},
            "no metrics returned matched known pods",
            id="upstream-disjoint-names",
        ),
    ],
)
def test_resource_replicas_errors(
    pods: Sequence[PodSnapshot], metrics: dict[str, MetricSample], message: str
) -> None:
    with pytest.raises(MetricError, match=message):
        resource_replicas(1, 100, "cpu", pods, metrics, DEFAULT_TOLERANCES, NOW, TEST_READINESS)


# ---- several metrics ----

CPU_70 = MetricSpec("Resource", "cpu", average_utilization=70)
MEMORY_80 = MetricSpec("Resource", "memory", average_utilization=80)
MIB = 1024 * 1024 * 1000  # one MiB in milli-units


def usage(cpu: int, memory_mib: int = 100) -> PodUsage:
    return PodUsage(NOW, 15, {"app": {"cpu": cpu, "memory": memory_mib * MIB}})


def seed_pods(count: int, memory: int | None = 100 * MIB) -> list[PodSnapshot]:
    return make_pods(count, cpu=500, memory=memory)


def test_two_metrics_pick_the_max() -> None:
    # cpu: 140 % of 70 -> 6; memory: 100 % of 80 -> ceil(1.25 * 3) = 4
    usages = {f"p-{i}": usage(700, 100) for i in range(3)}
    result = compute_replicas_for_metrics(
        (CPU_70, MEMORY_80), 3, seed_pods(3), usages, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert (result.replicas, result.metric_name) == (
        6,
        "cpu resource utilization (percentage of request)",
    )
    assert result.statuses == (
        MetricStatus("Resource", "cpu", average_utilization=140, average_value_milli=700),
        MetricStatus("Resource", "memory", average_utilization=100, average_value_milli=100 * MIB),
    )
    assert result.condition == Condition(
        "ScalingActive",
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from "
        "cpu resource utilization (percentage of request)",
    )


def test_invalid_metric_blocks_scale_down() -> None:
    usages = {f"p-{i}": usage(100) for i in range(3)}  # cpu 20 % of 70 -> scale down
    result = compute_replicas_for_metrics(
        (CPU_70, MEMORY_80),
        3,
        seed_pods(3, memory=None),
        usages,
        DEFAULT_TOLERANCES,
        NOW,
        TEST_READINESS,
    )
    assert result.replicas == -1
    assert result.condition is not None
    assert (result.condition.status, result.condition.reason) == (
        "False",
        "FailedGetResourceMetric",
    )
    assert result.condition.message == (
        "the HPA was unable to compute the replica count: failed to get memory utilization: "
        "missing request for memory in container app of Pod p-0"
    )
    assert result.error == (
        "invalid metrics (1 invalid out of 2), first error is: failed to get memory resource "
        "metric value: failed to get memory utilization: missing request for memory in "
        "container app of Pod p-0"
    )
    assert result.statuses is not None and result.statuses[1] == MetricStatus("")
    assert [e.reason for e in result.events] == ["FailedGetResourceMetric"]


def test_invalid_metric_does_not_block_scale_up() -> None:
    usages = {f"p-{i}": usage(700) for i in range(3)}
    result = compute_replicas_for_metrics(
        (CPU_70, MEMORY_80),
        3,
        seed_pods(3, memory=None),
        usages,
        DEFAULT_TOLERANCES,
        NOW,
        TEST_READINESS,
    )
    assert result.replicas == 6
    assert result.condition is not None and result.condition.reason == "ValidMetricFound"
    assert result.error is not None and result.error.startswith("invalid metrics (1 invalid")


def test_every_metric_invalid_does_not_scale() -> None:
    result = compute_replicas_for_metrics(
        (CPU_70,), 3, seed_pods(3), {}, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert result.replicas == -1
    assert result.condition is not None
    assert result.condition.message == (
        "the HPA was unable to compute the replica count: failed to get cpu utilization: "
        "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    )


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        pytest.param(MetricSpec("Pods", metric_name="qps"), "FailedGetPodsMetric", id="pods"),
        pytest.param(
            MetricSpec("Object", metric_name="qps", described_object="Ingress main"),
            "FailedGetObjectMetric",
            id="object",
        ),
        pytest.param(
            MetricSpec("External", metric_name="queue"), "FailedGetExternalMetric", id="external"
        ),
    ],
)
def test_custom_and_external_metrics_are_not_served(spec: MetricSpec, reason: str) -> None:
    outcome = compute_replicas_for_metric(
        spec, 3, seed_pods(3), {}, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert isinstance(outcome, InvalidMetric)
    assert outcome.reason == reason


def test_average_value_target_uses_plain_metric_math() -> None:
    spec = MetricSpec("Resource", "cpu", target_type="AverageValue", average_value_milli=250)
    usages = {"p-0": usage(300), "p-1": usage(500), "p-2": usage(700)}
    outcome = compute_replicas_for_metric(
        spec, 3, seed_pods(3), usages, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert not isinstance(outcome, InvalidMetric)
    assert (outcome.replicas, outcome.metric_name) == (6, "cpu resource")
    assert outcome.status == MetricStatus("Resource", "cpu", average_value_milli=500)


def test_container_resource_metric_reads_one_container() -> None:
    pod = PodSnapshot(
        "p-0",
        start_time=LONG_AGO,
        ready_transition=LONG_AGO,
        containers=(ContainerRequests("app", {"cpu": 500}), ContainerRequests("side", {})),
    )
    usages = {"p-0": PodUsage(NOW, 15, {"app": {"cpu": 700}, "side": {"cpu": 5}})}
    spec = MetricSpec("ContainerResource", "cpu", container="app", average_utilization=70)
    outcome = compute_replicas_for_metric(
        spec, 1, [pod], usages, DEFAULT_TOLERANCES, NOW, TEST_READINESS
    )
    assert not isinstance(outcome, InvalidMetric)
    assert outcome.replicas == 2
    assert outcome.metric_name == "cpu container resource utilization (percentage of request)"


# ---- legacy normalization (behavior == nil) ----


@pytest.mark.parametrize(
    ("current", "proposal", "minimum", "maximum", "history", "expected"),
    [
        pytest.param(
            3,
            10,
            1,
            20,
            (),
            (6, "ReadyForNewScale", "True", "ScaleUpLimit"),
            id="scale-up-cap-twice-current",
        ),
        pytest.param(
            1,
            10,
            1,
            20,
            (),
            (4, "ReadyForNewScale", "True", "ScaleUpLimit"),
            id="scale-up-cap-at-least-4",
        ),
        pytest.param(
            3, 10, 1, 5, (), (5, "ReadyForNewScale", "True", "TooManyReplicas"), id="clamped-to-max"
        ),
        pytest.param(
            3, 1, 2, 10, (), (2, "ReadyForNewScale", "True", "TooFewReplicas"), id="clamped-to-min"
        ),
        pytest.param(
            3,
            5,
            1,
            10,
            (),
            (5, "ReadyForNewScale", "False", "DesiredWithinRange"),
            id="within-range",
        ),
        pytest.param(
            5,
            2,
            1,
            10,
            ((5, 120),),
            (5, "ScaleDownStabilized", "False", "DesiredWithinRange"),
            id="downscale-stabilized-takes-max-in-window",
        ),
        pytest.param(
            5,
            2,
            1,
            10,
            ((4, 120), (5, 301)),
            (4, "ScaleDownStabilized", "False", "DesiredWithinRange"),
            id="downscale-window-drops-old-recommendations",
        ),
        pytest.param(
            5,
            2,
            1,
            10,
            ((5, 301),),
            (2, "ReadyForNewScale", "False", "DesiredWithinRange"),
            id="downscale-after-window",
        ),
        pytest.param(
            3,
            8,
            1,
            10,
            ((5, 60),),
            (6, "ReadyForNewScale", "True", "ScaleUpLimit"),
            id="no-upscale-stabilization",
        ),
    ],
)
def test_legacy_normalization(
    current: int,
    proposal: int,
    minimum: int,
    maximum: int,
    history: tuple[tuple[int, float], ...],
    expected: tuple[int, str, str, str],
) -> None:
    recommendations = tuple(Recommendation(r, ago(s)) for r, s in history)
    result = normalize_desired_replicas(
        current, proposal, minimum, maximum, recommendations, 300, NOW
    )
    assert (
        result.desired_replicas,
        result.able_to_scale.reason,
        result.scaling_limited.status,
        result.scaling_limited.reason,
    ) == expected
    assert Recommendation(proposal, NOW) in result.recommendations


def test_legacy_stabilization_reuses_an_expired_slot() -> None:
    old = (Recommendation(7, ago(400)), Recommendation(5, ago(100)))
    result = normalize_desired_replicas(5, 3, 1, 10, old, 300, NOW)
    assert result.recommendations == (Recommendation(3, NOW), Recommendation(5, ago(100)))


# ---- behavior ----

DEFAULT_UP = ScalingRules(
    0, "Max", (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))
)
DEFAULT_DOWN = ScalingRules(0, "Max", (ScalingPolicy("Percent", 100, 15),))


def behavior(up: ScalingRules = DEFAULT_UP, down: ScalingRules = DEFAULT_DOWN) -> Behavior:
    return Behavior(up, down)


def rules(*policies: tuple[str, int, int], select: str = "Max", window: int = 0) -> ScalingRules:
    return ScalingRules(window, select, tuple(ScalingPolicy(*p) for p in policies))


@pytest.mark.parametrize(
    ("current", "proposal", "minimum", "maximum", "spec", "history", "expected"),
    [
        pytest.param(
            2,
            20,
            1,
            50,
            behavior(),
            History(),
            (6, "ScaleUpLimit"),
            id="default-up-policies-max-of-pods-and-percent",
        ),
        pytest.param(
            10,
            40,
            1,
            50,
            behavior(),
            History(),
            (20, "ScaleUpLimit"),
            id="default-up-percent-wins-at-10",
        ),
        pytest.param(
            3,
            10,
            1,
            50,
            behavior(up=rules(("Pods", 1, 60))),
            History(),
            (4, "ScaleUpLimit"),
            id="pods-policy",
        ),
        pytest.param(
            3,
            10,
            1,
            50,
            behavior(up=rules(("Percent", 50, 60))),
            History(),
            (5, "ScaleUpLimit"),
            id="percent-policy-rounds-up",
        ),
        pytest.param(
            10,
            40,
            1,
            50,
            behavior(up=rules(("Pods", 4, 60), ("Percent", 100, 60), select="Min")),
            History(),
            (14, "ScaleUpLimit"),
            id="select-min-up",
        ),
        pytest.param(
            3,
            10,
            1,
            50,
            behavior(up=rules(("Pods", 4, 60), select="Disabled")),
            History(),
            (3, "ScaleUpLimit"),
            id="scale-up-disabled",
        ),
        pytest.param(3, 10, 1, 8, behavior(), History(), (7, "ScaleUpLimit"), id="rate-below-max"),
        pytest.param(
            3, 10, 1, 5, behavior(), History(), (5, "TooManyReplicas"), id="max-below-rate"
        ),
        pytest.param(
            7,
            20,
            1,
            50,
            behavior(up=rules(("Pods", 4, 60))),
            History(scale_up_events=(ScaleEvent(3, ago(30)),)),
            (8, "ScaleUpLimit"),
            id="up-events-in-period-count",
        ),
        pytest.param(
            7,
            20,
            1,
            50,
            behavior(up=rules(("Pods", 4, 60))),
            History(scale_up_events=(ScaleEvent(3, ago(60)),)),
            (11, "ScaleUpLimit"),
            id="up-events-at-period-edge-expire",
        ),
        pytest.param(
            10,
            1,
            1,
            50,
            behavior(down=rules(("Percent", 50, 60))),
            History(),
            (5, "ScaleDownLimit"),
            id="percent-down-truncates",
        ),
        pytest.param(
            10,
            1,
            1,
            50,
            behavior(down=rules(("Percent", 10, 60))),
            History(),
            (9, "ScaleDownLimit"),
            id="percent-down-10",
        ),
        pytest.param(
            10,
            1,
            1,
            50,
            behavior(down=rules(("Pods", 2, 60), ("Percent", 50, 60), select="Min")),
            History(),
            (8, "ScaleDownLimit"),
            id="select-min-down",
        ),
        pytest.param(
            7,
            1,
            1,
            50,
            behavior(down=rules(("Pods", 4, 60))),
            History(scale_down_events=(ScaleEvent(3, ago(20)),)),
            (6, "ScaleDownLimit"),
            id="down-events-in-period-count",
        ),
        pytest.param(
            10,
            1,
            1,
            50,
            behavior(down=rules(("Pods", 2, 60), select="Disabled")),
            History(),
            (10, "ScaleDownLimit"),
            id="scale-down-disabled",
        ),
        pytest.param(
            8, 1, 3, 50, behavior(), History(), (3, "TooFewReplicas"), id="clamped-to-min"
        ),
        pytest.param(5, 5, 1, 50, behavior(), History(), (5, "DesiredWithinRange"), id="no-change"),
    ],
)
def test_behavior_rate_limits(
    current: int,
    proposal: int,
    minimum: int,
    maximum: int,
    spec: Behavior,
    history: History,
    expected: tuple[int, str],
) -> None:
    result = normalize_desired_replicas_with_behaviors(
        current, proposal, minimum, maximum, spec, history, NOW
    )
    assert (result.desired_replicas, result.scaling_limited.reason) == expected


@pytest.mark.parametrize(
    ("current", "proposal", "spec", "recommendations", "expected"),
    [
        pytest.param(
            4,
            8,
            behavior(up=rules(("Pods", 10, 15), window=60)),
            ((5, 30),),
            (5, "ScaleUpStabilized"),
            id="up-window-takes-min",
        ),
        pytest.param(
            4,
            8,
            behavior(up=rules(("Pods", 10, 15), window=60)),
            ((5, 61),),
            (8, "ReadyForNewScale"),
            id="up-window-expired",
        ),
        pytest.param(
            9,
            3,
            behavior(down=rules(("Percent", 100, 15), window=300)),
            ((9, 100),),
            (9, "ScaleDownStabilized"),
            id="down-window-takes-max",
        ),
        pytest.param(
            9,
            3,
            behavior(down=rules(("Percent", 100, 15), window=300)),
            ((6, 100), (9, 301)),
            (6, "ScaleDownStabilized"),
            id="down-window-partly-expired",
        ),
        pytest.param(
            5,
            7,
            behavior(up=rules(("Pods", 10, 15), window=60)),
            ((4, 10),),
            (5, "ScaleUpStabilized"),
            id="up-window-never-below-current",
        ),
    ],
)
def test_behavior_stabilization_windows(
    current: int,
    proposal: int,
    spec: Behavior,
    recommendations: tuple[tuple[int, float], ...],
    expected: tuple[int, str],
) -> None:
    history = History(tuple(Recommendation(r, ago(s)) for r, s in recommendations))
    result = normalize_desired_replicas_with_behaviors(current, proposal, 1, 50, spec, history, NOW)
    assert (result.desired_replicas, result.able_to_scale.reason) == expected


def test_scale_down_window_defaults_to_the_flag() -> None:
    spec = Behavior(DEFAULT_UP, ScalingRules(None, "Max", DEFAULT_DOWN.policies))
    resolved = with_default_down_window(spec, 300)
    assert resolved.scale_down.stabilization_window_seconds == 300
    assert with_default_down_window(behavior(), 300) == behavior()


def test_policy_limits_without_policies_fall_back_to_current() -> None:
    empty = ScalingRules(0, "Max", ())
    assert scale_up_limit_with_rules(3, (), (), empty, NOW) < 3
    assert scale_down_limit_with_behaviors(3, (), (), empty, NOW) > 3


def test_store_scale_event_reuses_outdated_slot() -> None:
    spec = behavior(up=rules(("Pods", 4, 15)))
    history = History(scale_up_events=(ScaleEvent(2, ago(60)), ScaleEvent(1, ago(5))))
    stored = store_scale_event(spec, history, 3, 6, NOW)
    assert stored.scale_up_events == (ScaleEvent(3, NOW), ScaleEvent(1, ago(5)))
    down = store_scale_event(spec, stored, 6, 4, NOW)
    assert down.scale_down_events == (ScaleEvent(2, NOW),)
    assert store_scale_event(None, history, 3, 6, NOW) == history


# ---- reconcile decision ----

PARAMS = HpaParams(tolerance=0.1, downscale_stabilization_seconds=300, cpu=TEST_READINESS)


def seed_spec(minimum: int = 1, maximum: int = 10, spec: Behavior | None = None) -> AutoscalerSpec:
    return AutoscalerSpec(minimum, maximum, (CPU_70,), spec)


def seed_usages(count: int, cpu: int = 700) -> dict[str, PodUsage]:
    return {f"p-{i}": usage(cpu) for i in range(count)}


def test_decide_seed_scale_up() -> None:
    decision = decide(
        seed_spec(),
        ScaleView(3),
        seed_pods(3),
        seed_usages(3),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    assert (decision.desired_replicas, decision.rescale) == (6, True)
    assert decision.reason == "cpu resource utilization (percentage of request) above target"
    assert [(c.type, c.status, c.reason) for c in decision.conditions] == [
        ("AbleToScale", "True", "SucceededGetScale"),
        ("ScalingActive", "True", "ValidMetricFound"),
        ("AbleToScale", "True", "ReadyForNewScale"),
        ("ScalingLimited", "False", "DesiredWithinRange"),
    ]
    assert decision.metrics == (
        MetricStatus("Resource", "cpu", average_utilization=140, average_value_milli=700),
    )
    assert decision.recommendations == (Recommendation(3, NOW), Recommendation(6, NOW))


@pytest.mark.parametrize(
    ("current", "minimum", "maximum", "expected"),
    [
        pytest.param(0, 1, 10, (0, False, ""), id="zero-scaling-disabled"),
        pytest.param(
            12,
            1,
            10,
            (10, True, "Current number of replicas above Spec.MaxReplicas"),
            id="above-max",
        ),
        pytest.param(
            1, 2, 10, (2, True, "Current number of replicas below Spec.MinReplicas"), id="below-min"
        ),
    ],
)
def test_decide_without_metrics(
    current: int, minimum: int, maximum: int, expected: tuple[int, bool, str]
) -> None:
    decision = decide(
        seed_spec(minimum, maximum),
        ScaleView(current),
        seed_pods(3),
        seed_usages(3),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    assert (decision.desired_replicas, decision.rescale, decision.reason) == expected
    assert decision.metrics is None


def test_decide_zero_replicas_sets_scaling_disabled() -> None:
    decision = decide(seed_spec(), ScaleView(0), [], {}, History(), AutoscalerStatus(), PARAMS, NOW)
    assert decision.conditions[-1] == Condition(
        "ScalingActive",
        "False",
        "ScalingDisabled",
        "scaling is disabled since the replica count of the target is zero",
    )


def test_decide_first_sync_does_not_scale_down() -> None:
    # the initial recommendation (current) sits in the 5 min window
    decision = decide(
        seed_spec(),
        ScaleView(5),
        seed_pods(5),
        seed_usages(5, cpu=100),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    assert (decision.desired_replicas, decision.rescale) == (5, False)
    assert decision.conditions[2].reason == "ScaleDownStabilized"


def test_decide_metric_failure_keeps_previous_desired() -> None:
    decision = decide(
        seed_spec(),
        ScaleView(3),
        seed_pods(3),
        {},
        History(),
        AutoscalerStatus(desired_replicas=4),
        PARAMS,
        NOW,
    )
    assert (decision.desired_replicas, decision.rescale) == (4, False)
    assert [e.reason for e in decision.events] == [
        "FailedGetResourceMetric",
        "FailedComputeMetricsReplicas",
    ]


def test_decide_without_selector() -> None:
    decision = decide(
        seed_spec(),
        ScaleView(3, has_selector=False),
        [],
        {},
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    assert decision.conditions[-1].reason == "InvalidSelector"
    assert [e.reason for e in decision.events] == [
        "SelectorRequired",
        "FailedComputeMetricsReplicas",
    ]


def test_decide_with_behavior_uses_the_flag_for_the_down_window() -> None:
    spec = seed_spec(spec=Behavior(DEFAULT_UP, ScalingRules(None, "Max", DEFAULT_DOWN.policies)))
    history = History((Recommendation(5, ago(200)),))
    decision = decide(
        spec,
        ScaleView(5),
        seed_pods(5),
        seed_usages(5, cpu=100),
        history,
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    assert (decision.desired_replicas, decision.rescale) == (5, False)


# ---- finish: status and events ----


def test_finish_after_successful_rescale() -> None:
    spec = seed_spec()
    decision = decide(
        spec,
        ScaleView(3),
        seed_pods(3),
        seed_usages(3),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    outcome = finish(decision, AutoscalerStatus(), spec.behavior, History(), NOW)
    status = outcome.status
    assert (status.current_replicas, status.desired_replicas, status.last_scale_time) == (
        3,
        6,
        NOW,
    )
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("AbleToScale", "True", "SucceededRescale"),
        ("ScalingActive", "True", "ValidMetricFound"),
        ("ScalingLimited", "False", "DesiredWithinRange"),
    ]
    assert [(e.reason, e.message) for e in outcome.events] == [
        (
            "SuccessfulRescale",
            "New size: 6; reason: cpu resource utilization (percentage of request) above target",
        ),
    ]
    assert outcome.history.scale_up_events == ()  # legacy path stores no scale events


def test_finish_after_failed_rescale() -> None:
    spec = seed_spec()
    decision = decide(
        spec,
        ScaleView(3),
        seed_pods(3),
        seed_usages(3),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    previous = AutoscalerStatus(current_replicas=3, desired_replicas=3)
    outcome = finish(decision, previous, None, History(), NOW, update_error="boom")
    assert (outcome.status.desired_replicas, outcome.status.last_scale_time) == (3, None)
    assert outcome.status.conditions[0].reason == "FailedUpdateScale"
    assert outcome.events[-1].reason == "FailedRescale"
    assert outcome.events[-1].message.endswith("; error: boom")


def test_finish_records_scale_events_with_behavior() -> None:
    spec = seed_spec(spec=behavior())
    decision = decide(
        spec,
        ScaleView(3),
        seed_pods(3),
        seed_usages(3),
        History(),
        AutoscalerStatus(),
        PARAMS,
        NOW,
    )
    outcome = finish(decision, AutoscalerStatus(), spec.behavior, History(), NOW)
    assert outcome.history.scale_up_events == (ScaleEvent(3, NOW),)


def test_scale_unavailable_keeps_the_rest_of_the_status() -> None:
    previous = AutoscalerStatus(current_replicas=3, desired_replicas=3)
    status, event = scale_unavailable(previous, 'deployments.apps "web" not found', NOW)
    assert (status.current_replicas, status.desired_replicas) == (3, 3)
    assert status.conditions == (
        Condition(
            "AbleToScale",
            "False",
            "FailedGetScale",
            "the HPA controller was unable to get the target's current scale: "
            'deployments.apps "web" not found',
            NOW,
        ),
    )
    assert (event.type, event.reason) == ("Warning", "FailedGetScale")


def test_set_condition_keeps_transition_time_while_status_is_unchanged() -> None:
    earlier = ago(300)
    conditions = (Condition("AbleToScale", "True", "SucceededGetScale", "m", earlier),)
    same = set_condition(conditions, Condition("AbleToScale", "True", "ReadyForNewScale", "n"), NOW)
    assert same == (Condition("AbleToScale", "True", "ReadyForNewScale", "n", earlier),)
    flipped = set_condition(
        conditions, Condition("AbleToScale", "False", "FailedGetScale", "x"), NOW
    )
    assert flipped[0].last_transition_time == NOW
    added = set_condition(
        conditions, Condition("ScalingActive", "True", "ValidMetricFound", "y"), NOW
    )
    assert [c.type for c in added] == ["AbleToScale", "ScalingActive"]
