"""The metrics' proposals: upstream's `horizontal.go` computeReplicasForMetrics and
computeReplicasForMetric, with the status of each metric and the events of a failed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sandbox.kube.controllers.hpa.model import (
    FALSE,
    SCALING_ACTIVE,
    TRUE,
    Behavior,
    Condition,
    CpuReadiness,
    HpaEvent,
    InvalidMetric,
    MetricError,
    MetricProposal,
    MetricSample,
    MetricSpec,
    MetricsResult,
    MetricStatus,
    PodSnapshot,
    PodUsage,
    Tolerances,
)
from sandbox.kube.controllers.hpa.replica_calculator import (
    plain_metric_replicas,
    resource_replicas,
    resource_samples,
)


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
