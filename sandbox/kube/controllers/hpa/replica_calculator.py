"""Replica counts from pod metrics: upstream's `pkg/controller/podautoscaler/replica_calculator.go`
(groupPods, calculateRequests, GetResourceReplicas, calcPlainMetricReplicas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sandbox.kube.controllers.hpa.model import (
    CPU,
    FAILED,
    FALSE,
    PENDING,
    SUCCEEDED,
    ZERO_TIME,
    CpuReadiness,
    MetricError,
    MetricSample,
    PlainReplicas,
    PodGroups,
    PodSnapshot,
    PodUsage,
    ResourceReplicas,
    Tolerances,
    ceil_int32,
    go_div,
)
from sandbox.kube.controllers.hpa.utilization import metric_usage_ratio, resource_utilization_ratio


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
    transition = pod.ready_transition or ZERO_TIME
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
        return ResourceReplicas(ceil_int32(ratio * groups.ready_count), utilization, raw)

    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in groups.missing:
                values[name] = go_div(requests[name] * fallback, 100)
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
        return PlainReplicas(ceil_int32(ratio * groups.ready_count), usage)

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
    proposal = ceil_int32(new_ratio * counted)
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal
