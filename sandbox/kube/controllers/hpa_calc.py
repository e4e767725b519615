"""The HorizontalPodAutoscaler's arithmetic: pure functions over plain data.

Mirrors upstream `pkg/controller/podautoscaler` as read at
`omerap12/kubernetes@a769d588` (kept in sync with master): `replica_calculator.go`
(groupPods, calculateRequests, GetResourceReplicas, calcPlainMetricReplicas),
`metrics/utilization.go` (GetResourceUtilizationRatio, GetMetricUsageRatio) and
`horizontal.go` (computeReplicasForMetrics, reconcileAutoscaler, the legacy
normalizeDesiredReplicas and normalizeDesiredReplicasWithBehaviors, scale events,
setCondition). Reference: kubernetes-semantics.md section 5.

All quantities are milli-units (`500m` CPU is 500, 1 MiB of memory is
1_048_576_000) exactly as upstream's `MilliValue()`. Time is a parameter (`now`);
nothing here reads a clock, touches the store or mutates its inputs.

The controller (`hpa.py`) turns API JSON into these dataclasses, calls `decide`,
writes the target's `spec.replicas`, then calls `finish` for the status to write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

CPU: Final = "cpu"
MEMORY: Final = "memory"

RUNNING, PENDING, SUCCEEDED, FAILED = "Running", "Pending", "Succeeded", "Failed"
TRUE, FALSE = "True", "False"

ABLE_TO_SCALE: Final = "AbleToScale"
SCALING_ACTIVE: Final = "ScalingActive"
SCALING_LIMITED: Final = "ScalingLimited"

SCALE_UP_LIMIT_FACTOR: Final = 2.0
SCALE_UP_LIMIT_MINIMUM: Final = 4.0

# Go's zero time.Time: what a missing lastTransitionTime compares as.
_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)

_INT32_MAX: Final = 2**31 - 1
_INT32_MIN: Final = -(2**31)

_WITHIN_RANGE: Final = "the desired count is within the acceptable range"
_READY_FOR_NEW_SCALE: Final = "recommended size matches current size"


class MetricError(Exception):
    """A metric that cannot be computed this sync (upstream returns an `error`)."""


# ---- inputs ----


@dataclass(frozen=True)
class ContainerRequests:
    """One container's `resources.requests`, only the resources it names."""

    name: str
    requests_milli: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSnapshot:
    """What groupPods and calculateRequests read from a pod.

    `ready` is the Ready condition's status ("True", "False", "Unknown") or None
    when the pod has no Ready condition. `containers` holds the regular containers
    and the restartable (sidecar) init containers, as upstream sums them.
    """

    name: str
    phase: str = RUNNING
    deleting: bool = False
    ready: str | None = TRUE
    ready_transition: datetime | None = None
    start_time: datetime | None = None
    containers: tuple[ContainerRequests, ...] = ()


@dataclass(frozen=True)
class MetricSample:
    """One pod's value for one metric, with the metrics-server timestamp and window."""

    value_milli: int
    timestamp: datetime
    window_seconds: float


@dataclass(frozen=True)
class PodUsage:
    """One pod's `metrics.k8s.io` PodMetrics: container -> resource -> milli-units."""

    timestamp: datetime
    window_seconds: float
    containers: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Tolerances:
    """Usage-ratio tolerances; `within` is inclusive at both edges, as upstream."""

    scale_down: float
    scale_up: float

    def within(self, usage_ratio: float) -> bool:
        """1 - down <= ratio <= 1 + up.

        >>> Tolerances(0.1, 0.1).within(1.1), Tolerances(0.1, 0.1).within(0.89)
        (True, False)
        """
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class CpuReadiness:
    """kube-controller-manager's `--horizontal-pod-autoscaler-cpu-initialization-period`
    and `--horizontal-pod-autoscaler-initial-readiness-delay`, in seconds."""

    initialization_period_seconds: float = 300.0
    initial_readiness_delay_seconds: float = 30.0


@dataclass(frozen=True)
class HpaParams:
    """The controller flags the calculation needs (from ControlPlaneSettings)."""

    tolerance: float = 0.1
    downscale_stabilization_seconds: float = 300.0
    cpu: CpuReadiness = field(default_factory=CpuReadiness)


@dataclass(frozen=True)
class MetricSpec:
    """One `spec.metrics[]` entry.

    `type` is Resource, ContainerResource, Pods, Object or External; `target_type`
    is Utilization, AverageValue or Value. `metric_name` names Pods, Object and
    External metrics; `described_object` is "Kind/name" for Object metrics.
    """

    type: str
    resource: str = ""
    container: str = ""
    target_type: str = "Utilization"
    average_utilization: int | None = None
    average_value_milli: int | None = None
    value_milli: int | None = None
    metric_name: str = ""
    described_object: str = ""


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods or Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """`behavior.scaleUp` / `behavior.scaleDown`; a None window means "the flag"."""

    stabilization_window_seconds: int | None = None
    select_policy: str = "Max"  # Max, Min or Disabled
    policies: tuple[ScalingPolicy, ...] = ()
    tolerance: float | None = None


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True)
class AutoscalerSpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    behavior: Behavior | None = None


@dataclass(frozen=True)
class ScaleView:
    """What the target's `/scale` subresource reports: spec.replicas and whether
    status.selector is set."""

    spec_replicas: int
    has_selector: bool = True


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    timestamp: datetime


@dataclass(frozen=True)
class ScaleEvent:
    """A past rescale: the absolute replica change, when, and whether it has aged
    out of every policy period (so its slot may be reused)."""

    replica_change: int
    timestamp: datetime
    outdated: bool = False


@dataclass(frozen=True)
class History:
    """What the controller keeps per HPA between syncs (in memory, as upstream)."""

    recommendations: tuple[Recommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


# ---- outputs ----


@dataclass(frozen=True)
class Condition:
    """One HPA condition; `last_transition_time` is None on an update not yet applied."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: datetime | None = None


@dataclass(frozen=True)
class MetricStatus:
    """One `status.currentMetrics[]` entry. `type == ""` is upstream's zero
    MetricStatus, left in place for a metric that could not be computed."""

    type: str
    resource: str = ""
    container: str = ""
    average_utilization: int | None = None
    average_value_milli: int | None = None


@dataclass(frozen=True)
class HpaEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class AutoscalerStatus:
    current_replicas: int = 0
    desired_replicas: int = 0
    last_scale_time: datetime | None = None
    current_metrics: tuple[MetricStatus, ...] | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True)
class ResourceReplicas:
    """GetResourceReplicas' answer: proposal, utilization (raw, before any
    rebalancing) and the raw average usage per pod in milli-units."""

    replicas: int
    utilization: int
    raw_average_milli: int


@dataclass(frozen=True)
class PlainReplicas:
    replicas: int
    usage_milli: int


@dataclass(frozen=True)
class MetricProposal:
    replicas: int
    metric_name: str
    status: MetricStatus


@dataclass(frozen=True)
class InvalidMetric:
    """A metric that failed: the condition/event reason, the error the event
    carries, and the error as computeReplicasForMetric wraps it."""

    reason: str
    error: str
    wrapped: str


@dataclass(frozen=True)
class MetricsResult:
    """computeReplicasForMetrics: `replicas == -1` means "do not scale"."""

    replicas: int
    metric_name: str
    statuses: tuple[MetricStatus, ...] | None
    condition: Condition | None
    invalid: tuple[InvalidMetric, ...]
    error: str | None
    events: tuple[HpaEvent, ...] = ()


@dataclass(frozen=True)
class Normalized:
    desired_replicas: int
    able_to_scale: Condition
    scaling_limited: Condition
    recommendations: tuple[Recommendation, ...]


@dataclass(frozen=True)
class Decision:
    """One sync's decision before the scale write.

    `conditions` are updates in the order upstream sets them; `events` are the
    warnings raised while computing. `desired_replicas` is what status reports
    when no rescale happens (the current count, or the previous desired count
    when the metrics failed).
    """

    current_replicas: int
    desired_replicas: int
    rescale: bool
    reason: str
    metrics: tuple[MetricStatus, ...] | None
    conditions: tuple[Condition, ...]
    events: tuple[HpaEvent, ...]
    recommendations: tuple[Recommendation, ...]


@dataclass(frozen=True)
class Outcome:
    status: AutoscalerStatus
    events: tuple[HpaEvent, ...]
    history: History


# ---- metrics/utilization.go ----


def resource_utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """(usage ratio, utilization %, raw average milli) over pods with a request.

    utilization = int(sum(usage) * 100 / sum(request)), truncated; metrics for
    pods without a known request are ignored.

    Example: usage 300m, 500m, 700m over requests of 1000m each with a 30 %
    target: utilization int(1500 * 100 / 3000) = 50, ratio 50 / 30 = 1.67, raw
    average 1500 / 3 = 500.
    """
    metrics_total = requests_total = entries = 0
    for pod_name, value in values.items():
        request = requests.get(pod_name)
        if request is None:
            continue  # "we check for missing requests elsewhere"
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = _clamp_int32(_go_div(metrics_total * 100, requests_total))
    raw_average = _go_div(metrics_total, entries)
    return utilization / target_utilization, utilization, raw_average


def metric_usage_ratio(values: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """(usage ratio, average usage) for plain per-pod values.

    Example: values 20000, 10000, 30000 against a target of 15000: average
    60000 / 3 = 20000, ratio 20000 / 15000 = 1.33.
    """
    usage = _go_div(sum(values.values()), len(values))
    return usage / target_usage, usage


# ---- replica_calculator.go ----


def group_pods(
    pods: Sequence[PodSnapshot],
    samples: Mapping[str, MetricSample],
    resource: str,
    now: datetime,
    readiness: CpuReadiness,
) -> PodGroups:
    """Sort pods into ready (counted), unready, missing and ignored.

    - deleting, Failed or Succeeded pods are ignored;
    - Pending pods are unready;
    - pods without a sample are missing;
    - for CPU only, a pod is also unready when it has no Ready condition or no
      startTime; or, within startTime + initialization period, when it is not
      ready or its sample was taken less than one window after the last
      readiness transition; or, later, when it is not ready and its readiness
      last changed within initialReadinessDelay of its start (never became ready).

    Example (CPU, 5 min initialization): pod a started 10 min ago and Ready
    counts as ready; pod b started 1 min ago, Ready since 50 s, sample window
    60 s taken now: the sample is older than transition + window, so b is
    unready; pod c is Pending: unready; pod d has no sample: missing.
    """
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase in (FAILED, SUCCEEDED):
            ignored.add(pod.name)
            continue
        if pod.phase == PENDING:
            unready.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if resource == CPU and _cpu_unready(pod, sample, now, readiness):
            unready.add(pod.name)
            continue
        ready_count += 1
    return PodGroups(ready_count, frozenset(unready), frozenset(missing), frozenset(ignored))


def _cpu_unready(
    pod: PodSnapshot, sample: MetricSample, now: datetime, readiness: CpuReadiness
) -> bool:
    if pod.ready is None or pod.start_time is None:
        return True
    transition = pod.ready_transition or _ZERO_TIME
    initializing_until = pod.start_time + timedelta(seconds=readiness.initialization_period_seconds)
    if initializing_until > now:
        fresh_after = transition + timedelta(seconds=sample.window_seconds)
        return pod.ready == FALSE or sample.timestamp < fresh_after
    never_ready_until = pod.start_time + timedelta(
        seconds=readiness.initial_readiness_delay_seconds
    )
    return pod.ready == FALSE and never_ready_until > transition


def calculate_requests(
    pods: Sequence[PodSnapshot], resource: str, container: str = ""
) -> dict[str, int]:
    """Each pod's request for `resource` in milli-units: the sum over its
    containers, or one container's request when `container` is named.

    A container without a request for the resource makes the metric invalid.

    Example: a pod with containers app (cpu 500m) and sidecar (cpu 100m)
    requests 600; with container="app", 500. If sidecar had no cpu request:
    MetricError("missing request for cpu in container sidecar of Pod p").
    """
    requests: dict[str, int] = {}
    for pod in pods:
        total = 0
        found = False
        for spec in pod.containers:
            if container and spec.name != container:
                continue
            request = spec.requests_milli.get(resource)
            if request is None:
                raise MetricError(
                    f"missing request for {resource} in container {spec.name} of Pod {pod.name}"
                )
            total += request
            if container:
                found = True
                break
        if container and not found:
            raise MetricError(f"container {container} not found in Pod {pod.name}")
        requests[pod.name] = total
    return requests


def resource_samples(
    usages: Mapping[str, PodUsage], resource: str, container: str = ""
) -> dict[str, MetricSample]:
    """The metrics client's per-pod values for one resource (getPodMetrics /
    getContainerMetrics): a pod missing the resource in any container, or with no
    containers, has no sample; a named container absent from a pod's metrics is
    an error.

    Example: {"p": containers {"app": {cpu: 300}, "side": {cpu: 50}}} gives
    {"p": 350} for cpu and {"p": 300} for cpu in container "app". No usage at
    all: MetricError("no metrics returned from resource metrics API").
    """
    if not usages:
        raise MetricError("no metrics returned from resource metrics API")
    samples: dict[str, MetricSample] = {}
    for pod_name, usage in usages.items():
        if container:
            if container not in usage.containers:
                raise MetricError(
                    f"container {container} not present in metrics for pod {pod_name}"
                )
            value = usage.containers[container].get(resource)
            if value is not None:
                samples[pod_name] = MetricSample(value, usage.timestamp, usage.window_seconds)
            continue
        if not usage.containers or any(resource not in c for c in usage.containers.values()):
            continue
        total = sum(c[resource] for c in usage.containers.values())
        samples[pod_name] = MetricSample(total, usage.timestamp, usage.window_seconds)
    return samples


def resource_replicas(
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[PodSnapshot],
    samples: Mapping[str, MetricSample],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
    container: str = "",
) -> ResourceReplicas:
    """GetResourceReplicas: the proposal for a Utilization target.

    Simple case (no unready pods on a scale-up, no missing pods): keep the
    current count within tolerance, else ceil(ratio * readyPodCount). Otherwise
    missing pods count as max(100 %, target) of their request on a scale-down
    and 0 on a scale-up, unready pods as 0 on a scale-up; the ratio is
    recomputed, and the current count is kept when the new ratio is within
    tolerance, flips direction, or the new count would move the wrong way.

    Examples (requests 1000m, target 50 %):
    - 3 ready pods using 700, 700, 700: utilization 70, ratio 1.4,
      ceil(1.4 * 3) = 5.
    - 4 pods, 3 with 100 each, 1 unready: utilization 10, ratio 0.2 (scale
      down, unready pods do not matter), ceil(0.2 * 3) = 1.
    - 3 pods, one without a sample, others at 1000 and 1000: utilization 100,
      ratio 2 (scale up), the missing pod counts 0: (2000 + 0) * 100 / 3000 = 66,
      ratio 1.32, ceil(1.32 * 3) = 4.
    """
    groups, values = _counted_values(pods, samples, resource, now, readiness)
    requests = calculate_requests(pods, resource, container)
    ratio, utilization, raw = resource_utilization_ratio(values, requests, target_utilization)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(ratio):
            return ResourceReplicas(current_replicas, utilization, raw)
        return ResourceReplicas(_ceil_int32(ratio * groups.ready_count), utilization, raw)

    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in groups.missing:
                values[name] = _go_div(requests[name] * fallback, 100)
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0

    new_ratio, _, _ = resource_utilization_ratio(values, requests, target_utilization)
    new_replicas = _keep_or_rebalance(current_replicas, ratio, new_ratio, len(values), tolerances)
    return ResourceReplicas(new_replicas, utilization, raw)


def plain_metric_replicas(
    current_replicas: int,
    target_usage: int,
    resource: str,
    pods: Sequence[PodSnapshot],
    samples: Mapping[str, MetricSample],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
) -> PlainReplicas:
    """calcPlainMetricReplicas: the proposal for an AverageValue target.

    Same grouping and rebalancing as `resource_replicas`, on average values;
    a missing pod counts as exactly the target on a scale-down.

    Example: 3 pods using 300m, 500m, 700m of CPU with a 250m average target:
    average 500, ratio 2, ceil(2 * 3) = 6.
    """
    groups, values = _counted_values(pods, samples, resource, now, readiness)
    ratio, usage = metric_usage_ratio(values, target_usage)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(ratio):
            return PlainReplicas(current_replicas, usage)
        return PlainReplicas(_ceil_int32(ratio * groups.ready_count), usage)

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                values[name] = target_usage
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0

    new_ratio, _ = metric_usage_ratio(values, target_usage)
    new_replicas = _keep_or_rebalance(current_replicas, ratio, new_ratio, len(values), tolerances)
    return PlainReplicas(new_replicas, usage)


def _counted_values(
    pods: Sequence[PodSnapshot],
    samples: Mapping[str, MetricSample],
    resource: str,
    now: datetime,
    readiness: CpuReadiness,
) -> tuple[PodGroups, dict[str, int]]:
    """The pod groups and the values left after dropping ignored and unready pods."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, readiness)
    values = {
        name: sample.value_milli
        for name, sample in samples.items()
        if name not in groups.ignored and name not in groups.unready
    }
    if not values:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    return groups, values


def _keep_or_rebalance(
    current: int, ratio: float, new_ratio: float, counted: int, tolerances: Tolerances
) -> int:
    flipped = (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)
    if tolerances.within(new_ratio) or flipped:
        return current
    proposal = _ceil_int32(new_ratio * counted)
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


# ---- horizontal.go: metrics ----


def tolerances_for(behavior: Behavior | None, default: float) -> Tolerances:
    """tolerancesForHpa: the flag, overridden per direction by behavior.*.tolerance.

    Example: default 0.1 with behavior.scaleUp.tolerance 0.05 gives
    Tolerances(scale_down=0.1, scale_up=0.05).
    """
    if behavior is None:
        return Tolerances(default, default)
    down = behavior.scale_down.tolerance
    up = behavior.scale_up.tolerance
    return Tolerances(default if down is None else down, default if up is None else up)


def compute_replicas_for_metric(
    spec: MetricSpec,
    spec_replicas: int,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
) -> MetricProposal | InvalidMetric:
    """computeReplicasForMetric for one spec entry.

    Resource and ContainerResource metrics come from the kubelets' usage; the
    sandbox serves no custom or external metrics API, so Pods, Object and
    External metrics are invalid, as on a cluster without an adapter.

    Example: Resource cpu Utilization 70 over 3 pods using 700m of 500m:
    MetricProposal(6, "cpu resource utilization (percentage of request)",
    MetricStatus("Resource", "cpu", average_utilization=140,
    average_value_milli=700)).
    """
    if spec.type in ("Resource", "ContainerResource"):
        return _resource_metric(spec, spec_replicas, pods, usages, tolerances, now, readiness)
    return _unserved_metric(spec)


def _resource_metric(
    spec: MetricSpec,
    spec_replicas: int,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
) -> MetricProposal | InvalidMetric:
    container = spec.container if spec.type == "ContainerResource" else ""
    if container:
        reason = "FailedGetContainerResourceMetric"
        wrap = f"failed to get {container} container metric value"
    else:
        reason = "FailedGetResourceMetric"
        wrap = f"failed to get {spec.resource} resource metric value"
    try:
        return _resource_proposal(
            spec, container, spec_replicas, pods, usages, tolerances, now, readiness
        )
    except MetricError as error:
        return InvalidMetric(reason, str(error), f"{wrap}: {error}")


def _resource_proposal(
    spec: MetricSpec,
    container: str,
    spec_replicas: int,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
) -> MetricProposal:
    """computeStatusForResourceMetricGeneric; errors carry upstream's wrapping."""
    resource = spec.resource
    if spec.average_value_milli is not None:
        try:
            samples = _fetch_samples(usages, resource, container)
            plain = plain_metric_replicas(
                spec_replicas,
                spec.average_value_milli,
                resource,
                pods,
                samples,
                tolerances,
                now,
                readiness,
            )
        except MetricError as error:
            raise MetricError(f"failed to get {resource} usage: {error}") from None
        status = MetricStatus(spec.type, resource, container, average_value_milli=plain.usage_milli)
        return MetricProposal(plain.replicas, f"{resource} resource", status)
    if spec.average_utilization is None:
        raise MetricError(
            "invalid resource metric source: neither an average utilization target "
            "nor an average value (usage) target was set"
        )
    try:
        samples = _fetch_samples(usages, resource, container)
        result = resource_replicas(
            spec_replicas,
            spec.average_utilization,
            resource,
            pods,
            samples,
            tolerances,
            now,
            readiness,
            container,
        )
    except MetricError as error:
        raise MetricError(f"failed to get {resource} utilization: {error}") from None
    status = MetricStatus(
        spec.type,
        resource,
        container,
        average_utilization=result.utilization,
        average_value_milli=result.raw_average_milli,
    )
    kind = "container resource" if container else "resource"
    return MetricProposal(
        result.replicas, f"{resource} {kind} utilization (percentage of request)", status
    )


def _fetch_samples(
    usages: Mapping[str, PodUsage], resource: str, container: str
) -> dict[str, MetricSample]:
    try:
        return resource_samples(usages, resource, container)
    except MetricError as error:
        raise MetricError(f"unable to get metrics for resource {resource}: {error}") from None


def _unserved_metric(spec: MetricSpec) -> InvalidMetric:
    name = spec.metric_name
    if spec.type == "Pods":
        error = (
            f"unable to get metric {name}: unable to fetch metrics from custom metrics API: "
            "the server could not find the requested resource (get pods.custom.metrics.k8s.io *)"
        )
        wrapped = f"failed to get pods metric value: {error}"
        return InvalidMetric("FailedGetPodsMetric", error, wrapped)
    if spec.type == "Object":
        error = (
            f"unable to get metric {name} on {spec.described_object}: unable to fetch metrics "
            "from custom metrics API: the server could not find the requested resource"
        )
        return InvalidMetric(
            "FailedGetObjectMetric", error, f"failed to get object metric value: {error}"
        )
    if spec.type == "External":
        error = (
            f"unable to get external metric {name}: unable to fetch metrics from external "
            "metrics API: the server could not find the requested resource"
        )
        return InvalidMetric(
            "FailedGetExternalMetric", error, f"failed to get {name} external metric value: {error}"
        )
    error = f'unknown metric source type "{spec.type}"'
    return InvalidMetric("InvalidMetricSourceType", error, error)


def compute_replicas_for_metrics(
    specs: Sequence[MetricSpec],
    spec_replicas: int,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    tolerances: Tolerances,
    now: datetime,
    readiness: CpuReadiness,
) -> MetricsResult:
    """computeReplicasForMetrics: the max proposal over the valid metrics.

    If every metric is invalid, or some are and the max would scale down, no
    scaling happens (replicas -1) and ScalingActive goes False with the first
    invalid metric's reason. Otherwise ScalingActive is True, ValidMetricFound.
    Each invalid metric raises a Warning event with its reason.

    Example: current 4; cpu proposes 6, memory proposes 3: replicas 6 from
    cpu. Current 4; cpu proposes 2, memory invalid (missing request): replicas
    -1, ScalingActive False FailedGetResourceMetric, error "invalid metrics (1
    invalid out of 2), first error is: failed to get memory resource metric
    value: ...".
    """
    replicas = 0
    metric_name = ""
    statuses: list[MetricStatus] = []
    invalid: list[InvalidMetric] = []
    for spec in specs:
        outcome = compute_replicas_for_metric(
            spec, spec_replicas, pods, usages, tolerances, now, readiness
        )
        if isinstance(outcome, InvalidMetric):
            invalid.append(outcome)
            statuses.append(MetricStatus(""))
            continue
        statuses.append(outcome.status)
        if replicas == 0 or outcome.replicas > replicas:
            replicas, metric_name = outcome.replicas, outcome.metric_name
    events = tuple(HpaEvent("Warning", bad.reason, bad.error) for bad in invalid)
    error = None
    if invalid:
        error = (
            f"invalid metrics ({len(invalid)} invalid out of {len(specs)}), "
            f"first error is: {invalid[0].wrapped}"
        )
    if len(invalid) >= len(specs) or (invalid and replicas < spec_replicas):
        first = invalid[0] if invalid else None
        condition = None
        if first is not None:
            condition = Condition(
                SCALING_ACTIVE,
                FALSE,
                first.reason,
                f"the HPA was unable to compute the replica count: {first.error}",
            )
        return MetricsResult(-1, "", tuple(statuses), condition, tuple(invalid), error, events)
    condition = Condition(
        SCALING_ACTIVE,
        TRUE,
        "ValidMetricFound",
        f"the HPA was able to successfully calculate a replica count from {metric_name}",
    )
    return MetricsResult(
        replicas, metric_name, tuple(statuses), condition, tuple(invalid), error, events
    )


# ---- horizontal.go: normalization without behavior (legacy) ----


def stabilize_recommendation(
    recommendations: Sequence[Recommendation], proposal: int, window_seconds: float, now: datetime
) -> tuple[int, tuple[Recommendation, ...]]:
    """stabilizeRecommendation: the max of the proposal and every recommendation
    inside the window; the proposal is recorded (reusing an expired slot).

    Example (window 300 s): recommendations 5 at now-100 s and 7 at now-400 s,
    proposal 3: result 5; the 7 (expired) is replaced by 3 at now.
    """
    cutoff = now - timedelta(seconds=window_seconds)
    best = proposal
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp < cutoff:
            old_index = index
        elif rec.replicas > best:
            best = rec.replicas
    return best, _record(recommendations, Recommendation(proposal, now), old_index)


def scale_up_limit(current_replicas: int) -> int:
    """calculateScaleUpLimit: max(2 * current, 4).

    Example: current 1 -> 4; current 3 -> 6; current 10 -> 20.
    """
    return int(max(SCALE_UP_LIMIT_FACTOR * current_replicas, SCALE_UP_LIMIT_MINIMUM))


def convert_desired_replicas_with_rules(
    current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int
) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules: clamp to [min, min(max, scale-up limit)].

    Examples: current 3, desired 10, max 20: limit 6 -> (6, ScaleUpLimit);
    current 3, desired 10, max 5 -> (5, TooManyReplicas); desired 0, min 2 ->
    (2, TooFewReplicas); desired 4 within range -> (4, DesiredWithinRange).
    """
    limit = scale_up_limit(current_replicas)
    if max_replicas > limit:
        maximum, reason, message = (
            limit,
            "ScaleUpLimit",
            ("the desired replica count is increasing faster than the maximum scale rate"),
        )
    else:
        maximum, reason, message = (
            max_replicas,
            "TooManyReplicas",
            ("the desired replica count is more than the maximum replica count"),
        )
    if desired_replicas < min_replicas:
        return (
            min_replicas,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired_replicas > maximum:
        return maximum, reason, message
    return desired_replicas, "DesiredWithinRange", _WITHIN_RANGE


def normalize_desired_replicas(
    current_replicas: int,
    proposal: int,
    min_replicas: int,
    max_replicas: int,
    recommendations: Sequence[Recommendation],
    window_seconds: float,
    now: datetime,
) -> Normalized:
    """normalizeDesiredReplicas (`spec.behavior` is nil): downscale stabilization
    over the flag's window, then the [min, max] clamp and the scale-up cap.

    Example: current 5, proposal 2, a recommendation of 5 two minutes ago:
    stabilized 5 (AbleToScale ScaleDownStabilized), within range, desired 5.
    """
    stabilized, recorded = stabilize_recommendation(recommendations, proposal, window_seconds, now)
    if stabilized != proposal:
        able = Condition(
            ABLE_TO_SCALE,
            TRUE,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, "
            "applying the highest recent recommendation",
        )
    else:
        able = Condition(ABLE_TO_SCALE, TRUE, "ReadyForNewScale", _READY_FOR_NEW_SCALE)
    desired, reason, message = convert_desired_replicas_with_rules(
        current_replicas, stabilized, min_replicas, max_replicas
    )
    limited = Condition(SCALING_LIMITED, FALSE if desired == stabilized else TRUE, reason, message)
    return Normalized(desired, able, limited, recorded)


# ---- horizontal.go: normalization with behavior ----


def with_default_down_window(behavior: Behavior, window_seconds: float) -> Behavior:
    """maybeInitScaleDownStabilizationWindow: a nil scaleDown window takes the flag.

    Example: scaleDown window None with the 300 s flag -> 300.
    """
    if behavior.scale_down.stabilization_window_seconds is not None:
        return behavior
    down = replace(behavior.scale_down, stabilization_window_seconds=int(window_seconds))
    return replace(behavior, scale_down=down)


def stabilize_recommendation_with_behaviors(
    recommendations: Sequence[Recommendation],
    current_replicas: int,
    proposal: int,
    behavior: Behavior,
    now: datetime,
) -> tuple[int, str, str, tuple[Recommendation, ...]]:
    """The up recommendation is the min over the up window, the down
    recommendation the max over the down window (both including the proposal);
    the result starts from current and is clamped between them.

    Example: current 4, up window 60 s with a recommendation of 5 at now-30 s,
    proposal 8: up = min(8, 5) = 5, down = max(8, 5) = 8 -> 5, reason
    ScaleUpStabilized. The proposal 8 is recorded at now.
    """
    up_window = behavior.scale_up.stabilization_window_seconds or 0
    down_window = behavior.scale_down.stabilization_window_seconds or 0
    up_cutoff = now - timedelta(seconds=up_window)
    down_cutoff = now - timedelta(seconds=down_window)
    up_recommendation = down_recommendation = proposal
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp > up_cutoff:
            up_recommendation = min(rec.replicas, up_recommendation)
        if rec.timestamp > down_cutoff:
            down_recommendation = max(rec.replicas, down_recommendation)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old_index = index
    recommendation = current_replicas
    recommendation = max(recommendation, up_recommendation)
    recommendation = min(recommendation, down_recommendation)
    recorded = _record(recommendations, Recommendation(proposal, now), old_index)
    if proposal >= current_replicas:
        reason, message = (
            "ScaleUpStabilized",
            (
                "recent recommendations were lower than current one, "
                "applying the lowest recent recommendation"
            ),
        )
    else:
        reason, message = (
            "ScaleDownStabilized",
            (
                "recent recommendations were higher than current one, "
                "applying the highest recent recommendation"
            ),
        )
    return recommendation, reason, message, recorded


def replicas_change_per_period(
    period_seconds: int, events: Sequence[ScaleEvent], now: datetime
) -> int:
    """getReplicasChangePerPeriod: the sum of changes strictly inside the period.

    Example: changes 2 at now-10 s and 3 at now-20 s, period 15 s -> 2.
    """
    cutoff = now - timedelta(seconds=period_seconds)
    return sum(event.replica_change for event in events if event.timestamp > cutoff)


def scale_up_limit_with_rules(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> int:
    """calculateScaleUpLimitWithScalingRules: each policy proposes from the
    replica count at the start of its period; Max picks the largest, Min the
    smallest; Disabled allows no change. Percent rounds up.

    Example: current 4, no events, policies Pods 4 / 15 s and Percent 100 /
    15 s: proposals 8 and 8 -> 8. After a +3 event 5 s ago at current 7: period
    start 4, proposals 8 and 8 -> 8. Percent 50 from 3: ceil(4.5) = 5.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick_min = rules.select_policy == "Min"
    result: int | None = None
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = start + policy.value
        elif policy.type == "Percent":
            proposed = math.ceil(start * (1 + policy.value / 100))
        else:
            continue
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if pick_min else max(result, proposed)
    return result if result is not None else (_INT32_MAX if pick_min else _INT32_MIN)


def scale_down_limit_with_behaviors(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> int:
    """calculateScaleDownLimitWithBehaviors: the lowest count the policies allow;
    Max (the default) picks the largest change, i.e. the smallest count; Min the
    smallest change. Percent truncates.

    Example: current 10, Percent 100 / 15 s -> 0; Pods 2 / 60 s -> 8; with
    both and Min: max(0, 8) = 8. Percent 10 from 10: int(10 * 0.9) = 9.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick_fewest_removed = rules.select_policy == "Min"
    result: int | None = None
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = start - policy.value
        elif policy.type == "Percent":
            proposed = int(start * (1 - policy.value / 100))
        else:
            continue
        if result is None:
            result = proposed
        else:
            result = max(result, proposed) if pick_fewest_removed else min(result, proposed)
    return result if result is not None else (_INT32_MIN if pick_fewest_removed else _INT32_MAX)


def convert_desired_replicas_with_behavior_rate(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    history: History,
    now: datetime,
) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate: the rate limits and [min, max].

    Examples: current 2, desired 10, max 20, default scale-up policies: limit
    max(2 + 4, 2 * 2) = 6 -> (6, ScaleUpLimit). Current 8, desired 1, min 3,
    default scale-down (100 %): limit 0 -> (3, TooFewReplicas).
    """
    if desired_replicas > current_replicas:
        limit = scale_up_limit_with_rules(
            current_replicas,
            history.scale_up_events,
            history.scale_down_events,
            behavior.scale_up,
            now,
        )
        limit = max(limit, current_replicas)
        if max_replicas > limit:
            maximum, reason, message = (
                limit,
                "ScaleUpLimit",
                ("the desired replica count is increasing faster than the maximum scale rate"),
            )
        else:
            maximum, reason, message = (
                max_replicas,
                "TooManyReplicas",
                ("the desired replica count is more than the maximum replica count"),
            )
        if desired_replicas > maximum:
            return maximum, reason, message
    elif desired_replicas < current_replicas:
        limit = scale_down_limit_with_behaviors(
            current_replicas,
            history.scale_up_events,
            history.scale_down_events,
            behavior.scale_down,
            now,
        )
        limit = min(limit, current_replicas)
        if min_replicas < limit:
            minimum, reason, message = (
                limit,
                "ScaleDownLimit",
                ("the desired replica count is decreasing faster than the maximum scale rate"),
            )
        else:
            minimum, reason, message = (
                min_replicas,
                "TooFewReplicas",
                ("the desired replica count is less than the minimum replica count"),
            )
        if desired_replicas < minimum:
            return minimum, reason, message
    return desired_replicas, "DesiredWithinRange", _WITHIN_RANGE


def normalize_desired_replicas_with_behaviors(
    current_replicas: int,
    proposal: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    history: History,
    now: datetime,
) -> Normalized:
    """normalizeDesiredReplicasWithBehaviors: stabilization windows, then rate
    limits and [min, max]. `behavior` must have its scaleDown window resolved
    (see `with_default_down_window`).

    Example: current 3, proposal 6, default behavior, no history: up window 0,
    down window 300 s holds only the proposal -> 6; scale-up limit max(3 + 4,
    3 * 2) = 7 -> desired 6, ScalingLimited False DesiredWithinRange.
    """
    stabilized, reason, message, recorded = stabilize_recommendation_with_behaviors(
        history.recommendations, current_replicas, proposal, behavior, now
    )
    if stabilized != proposal:
        able = Condition(ABLE_TO_SCALE, TRUE, reason, message)
    else:
        able = Condition(ABLE_TO_SCALE, TRUE, "ReadyForNewScale", _READY_FOR_NEW_SCALE)
    desired, reason, message = convert_desired_replicas_with_behavior_rate(
        current_replicas, stabilized, min_replicas, max_replicas, behavior, history, now
    )
    limited = Condition(SCALING_LIMITED, FALSE if desired == stabilized else TRUE, reason, message)
    return Normalized(desired, able, limited, recorded)


def store_scale_event(
    behavior: Behavior | None, history: History, previous: int, new: int, now: datetime
) -> History:
    """storeScaleEvent: remember a rescale for the rate limits (only with a
    behavior). Events older than the direction's longest policy period are
    marked outdated and the last of them is reused for the new one.

    Example: behavior with up period 15 s, events (+2 at now-60 s): previous 3,
    new 6 -> up events (+3 at now); the old one was outdated and reused.
    """
    if behavior is None:
        return history
    up = new > previous
    rules = behavior.scale_up if up else behavior.scale_down
    events = history.scale_up_events if up else history.scale_down_events
    longest = max((policy.period_seconds for policy in rules.policies), default=0)
    cutoff = now - timedelta(seconds=longest)
    marked = [
        replace(event, outdated=True) if event.timestamp < cutoff else event for event in events
    ]
    old_index: int | None = None
    for index, event in enumerate(marked):
        if event.outdated:
            old_index = index
    fresh = ScaleEvent(abs(new - previous), now)
    if old_index is None:
        marked.append(fresh)
    else:
        marked[old_index] = fresh
    if up:
        return replace(history, scale_up_events=tuple(marked))
    return replace(history, scale_down_events=tuple(marked))


# ---- horizontal.go: reconcileAutoscaler ----


def decide(
    spec: AutoscalerSpec,
    scale: ScaleView,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    history: History,
    previous: AutoscalerStatus,
    params: HpaParams,
    now: datetime,
) -> Decision:
    """One sync of reconcileAutoscaler up to the scale write.

    current = the target's spec.replicas. 0 disables scaling (ScalingActive
    False, ScalingDisabled); above max or below min it is clamped without
    reading metrics; otherwise the metrics' max proposal is normalized (legacy
    path when `behavior` is None, behavior path otherwise).

    Example: min 1, max 10, cpu target 70 %, 3 ready pods using 700m of 500m:
    utilization 140, ratio 2, proposal 6; legacy cap max(6, 4) = 6 -> rescale
    to 6, reason "cpu resource utilization (percentage of request) above
    target", conditions AbleToScale True ReadyForNewScale, ScalingActive True
    ValidMetricFound, ScalingLimited False DesiredWithinRange.
    """
    current = scale.spec_replicas
    recommendations = history.recommendations or (Recommendation(current, now),)
    conditions: list[Condition] = [
        Condition(
            ABLE_TO_SCALE,
            TRUE,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
    ]
    if current == 0:
        conditions.append(
            Condition(
                SCALING_ACTIVE,
                FALSE,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        )
        return Decision(current, 0, False, "", None, tuple(conditions), (), recommendations)
    if current > spec.max_replicas:
        reason = "Current number of replicas above Spec.MaxReplicas"
        return Decision(
            current, spec.max_replicas, True, reason, None, tuple(conditions), (), recommendations
        )
    if current < spec.min_replicas:
        reason = "Current number of replicas below Spec.MinReplicas"
        return Decision(
            current, spec.min_replicas, True, reason, None, tuple(conditions), (), recommendations
        )

    if not scale.has_selector:
        message = "selector is required"
        conditions.append(
            Condition(
                SCALING_ACTIVE,
                FALSE,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            )
        )
        selector_events = (
            HpaEvent("Warning", "SelectorRequired", message),
            HpaEvent("Warning", "FailedComputeMetricsReplicas", message),
        )
        return Decision(
            current,
            previous.desired_replicas,
            False,
            "",
            None,
            tuple(conditions),
            selector_events,
            recommendations,
        )

    tolerances = tolerances_for(spec.behavior, params.tolerance)
    result = compute_replicas_for_metrics(
        spec.metrics, current, pods, usages, tolerances, now, params.cpu
    )
    if result.condition is not None:
        conditions.append(result.condition)
    if result.replicas == -1:
        events = (
            *result.events,
            HpaEvent("Warning", "FailedComputeMetricsReplicas", result.error or ""),
        )
        return Decision(
            current,
            previous.desired_replicas,
            False,
            "",
            result.statuses,
            tuple(conditions),
            events,
            recommendations,
        )

    desired = max(result.replicas, 0)
    reason = ""
    if desired > current:
        reason = f"{result.metric_name} above target"
    if desired < current:
        reason = "All metrics below target"
    if spec.behavior is None:
        normalized = normalize_desired_replicas(
            current,
            desired,
            spec.min_replicas,
            spec.max_replicas,
            recommendations,
            params.downscale_stabilization_seconds,
            now,
        )
    else:
        behavior = with_default_down_window(spec.behavior, params.downscale_stabilization_seconds)
        normalized = normalize_desired_replicas_with_behaviors(
            current,
            desired,
            spec.min_replicas,
            spec.max_replicas,
            behavior,
            replace(history, recommendations=recommendations),
            now,
        )
    conditions += [normalized.able_to_scale, normalized.scaling_limited]
    rescale = normalized.desired_replicas != current
    return Decision(
        current,
        normalized.desired_replicas if rescale else current,
        rescale,
        reason,
        result.statuses,
        tuple(conditions),
        result.events,
        normalized.recommendations,
    )


def scale_unavailable(
    previous: AutoscalerStatus, error: str, now: datetime
) -> tuple[AutoscalerStatus, HpaEvent]:
    """Reading the target's scale failed: AbleToScale False FailedGetScale, the
    rest of the status as it was, and a FailedGetScale Warning.

    Example: error 'deployments.apps "web" not found' -> condition message "the
    HPA controller was unable to get the target's current scale:
    deployments.apps "web" not found".
    """
    condition = Condition(
        ABLE_TO_SCALE,
        FALSE,
        "FailedGetScale",
        f"the HPA controller was unable to get the target's current scale: {error}",
    )
    status = replace(previous, conditions=set_condition(previous.conditions, condition, now))
    return status, HpaEvent("Warning", "FailedGetScale", error)


def finish(
    decision: Decision,
    previous: AutoscalerStatus,
    behavior: Behavior | None,
    history: History,
    now: datetime,
    update_error: str | None = None,
) -> Outcome:
    """The status to write after the scale write (or its absence), the events to
    record, and the history to keep.

    A successful rescale adds AbleToScale True SucceededRescale, a
    SuccessfulRescale event "New size: N; reason: R", lastScaleTime = now and
    (with a behavior) a scale event. A failed one adds AbleToScale False
    FailedUpdateScale, a FailedRescale event, and keeps the previous desired
    count. currentMetrics is replaced by this sync's statuses.

    Example: decision 3 -> 6 that succeeded: status current 3, desired 6,
    lastScaleTime now, event SuccessfulRescale "New size: 6; reason: cpu
    resource utilization (percentage of request) above target".
    """
    conditions = list(decision.conditions)
    events = list(decision.events)
    desired = decision.desired_replicas
    last_scale_time = previous.last_scale_time
    history = replace(history, recommendations=decision.recommendations)
    if decision.rescale and update_error is not None:
        events.append(
            HpaEvent(
                "Warning",
                "FailedRescale",
                f"New size: {desired}; reason: {decision.reason}; error: {update_error}",
            )
        )
        conditions.append(
            Condition(
                ABLE_TO_SCALE,
                FALSE,
                "FailedUpdateScale",
                f"the HPA controller was unable to update the target scale: {update_error}",
            )
        )
        desired = previous.desired_replicas
    elif decision.rescale:
        conditions.append(
            Condition(
                ABLE_TO_SCALE,
                TRUE,
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
        )
        events.append(
            HpaEvent(
                "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {decision.reason}"
            )
        )
        history = store_scale_event(behavior, history, decision.current_replicas, desired, now)
        last_scale_time = now
    merged = previous.conditions
    for condition in conditions:
        merged = set_condition(merged, condition, now)
    status = AutoscalerStatus(
        current_replicas=decision.current_replicas,
        desired_replicas=desired,
        last_scale_time=last_scale_time,
        current_metrics=decision.metrics,
        conditions=merged,
    )
    return Outcome(status, tuple(events), history)


def set_condition(
    conditions: Sequence[Condition], update: Condition, now: datetime
) -> tuple[Condition, ...]:
    """setConditionInList: replace the condition of the same type (appending a
    new one), stamping lastTransitionTime only when the status changes.

    Example: AbleToScale True since 10:00 updated to True/SucceededRescale at
    10:05 keeps 10:00; updated to False at 10:05 gets 10:05.
    """
    result = list(conditions)
    for index, existing in enumerate(result):
        if existing.type == update.type:
            changed = existing.status != update.status
            stamp = now if changed else existing.last_transition_time
            result[index] = replace(update, last_transition_time=stamp)
            return tuple(result)
    result.append(replace(update, last_transition_time=now))
    return tuple(result)


# ---- helpers ----


def _record(
    recommendations: Sequence[Recommendation], fresh: Recommendation, old_index: int | None
) -> tuple[Recommendation, ...]:
    recorded = list(recommendations)
    if old_index is None:
        recorded.append(fresh)
    else:
        recorded[old_index] = fresh
    return tuple(recorded)


def _go_div(numerator: int, denominator: int) -> int:
    """Go's integer division truncates toward zero (Python's // floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def _clamp_int32(value: int) -> int:
    return max(_INT32_MIN, min(_INT32_MAX, value))


def _ceil_int32(value: float) -> int:
    if value > _INT32_MAX:
        return _INT32_MAX
    return math.ceil(value)
