"""The HPA's API JSON and its model: an HPA, its target's pods and their metrics read into
`model` dataclasses, a decision's status written back as `autoscaling/v2` JSON. Pure: the
controller reads and writes, this only translates.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.kube.clock import parse_time, rfc3339
from sandbox.kube.controllers.hpa.model import (
    MEMORY,
    AutoscalerSpec,
    AutoscalerStatus,
    Behavior,
    Condition,
    ContainerRequests,
    CpuReadiness,
    HpaParams,
    MetricSpec,
    MetricStatus,
    PodSnapshot,
    PodUsage,
    ScalingPolicy,
    ScalingRules,
)
from sandbox.kube.metrics import PodSample
from sandbox.kube.quantity import (
    QuantityError,
    format_milli_quantity,
    milli_value,
    parse_quantity,
)
from sandbox.kube.settings import ControlPlaneSettings

KubeObject = dict[str, Any]

_DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)

_DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=None,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


def quantity_or_none(value: object) -> Decimal | None:
    """A quantity of the HPA's spec, or None where it is no quantity: the controller
    skips such a request or target (the API server would have refused it upstream)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def pod_snapshot(pod: KubeObject) -> PodSnapshot:
    """What the calculation reads from a pod.

    Requests fall back to limits per resource, as the API server's pod
    defaulting copies them; restartable init containers count as containers.

    Example: a Running pod, Ready since 10:00, one container requesting cpu
    500m -> PodSnapshot(name, "Running", ready="True", ready_transition=10:00,
    containers=(ContainerRequests("app", {"cpu": 500}),)).
    """
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    containers = list(spec.get("containers") or [])
    containers += [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
    ]
    return PodSnapshot(
        name=metadata.get("name", ""),
        phase=status.get("phase", ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        ready=None if ready is None else str(ready.get("status", "")),
        ready_transition=_time(ready.get("lastTransitionTime")) if ready else None,
        start_time=_time(status.get("startTime")),
        containers=tuple(_container_requests(c) for c in containers),
    )


def _container_requests(container: KubeObject) -> ContainerRequests:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    requests: dict[str, int] = {}
    for resource, raw in merged.items():
        quantity = quantity_or_none(raw)
        if quantity is not None:
            requests[resource] = milli_value(quantity)
    return ContainerRequests(container.get("name", ""), requests)


def pod_usage(sample: PodSample) -> PodUsage:
    """A MetricsStore sample as metrics.k8s.io reports it, in milli-units.

    Example: container app at 300 millicores and 64 MiB -> {"app": {"cpu": 300,
    "memory": 67108864000}}.
    """
    return PodUsage(
        timestamp=sample.timestamp,
        window_seconds=sample.window_seconds,
        containers={
            c.name: {"cpu": c.cpu_millicores, MEMORY: c.memory_bytes * 1000}
            for c in sample.containers
        },
    )


def autoscaler_spec(hpa: KubeObject) -> AutoscalerSpec:
    """`spec` of an autoscaling/v2 HPA (admission has defaulted it).

    Example: {minReplicas: 3, maxReplicas: 10, metrics: [cpu 70 %]} ->
    AutoscalerSpec(3, 10, (MetricSpec("Resource", "cpu", average_utilization=70),)).
    """
    spec = hpa.get("spec") or {}
    return AutoscalerSpec(
        min_replicas=int(spec.get("minReplicas", 1)),
        max_replicas=int(spec.get("maxReplicas", 0)),
        metrics=tuple(metric_spec(entry) for entry in spec.get("metrics") or []),
        behavior=behavior_from(spec.get("behavior")),
    )


def metric_spec(entry: KubeObject) -> MetricSpec:
    """One `spec.metrics[]` entry.

    Example: {type: Resource, resource: {name: memory, target: {type:
    AverageValue, averageValue: 256Mi}}} -> MetricSpec("Resource", "memory",
    target_type="AverageValue", average_value_milli=268435456000).
    """
    kind = str(entry.get("type", ""))
    if kind == "Resource":
        source = entry.get("resource") or {}
        return _with_target(
            MetricSpec(kind, resource=str(source.get("name", ""))), source.get("target")
        )
    if kind == "ContainerResource":
        source = entry.get("containerResource") or {}
        base = MetricSpec(
            kind, resource=str(source.get("name", "")), container=str(source.get("container", ""))
        )
        return _with_target(base, source.get("target"))
    source = entry.get(kind[:1].lower() + kind[1:]) or {}
    described = source.get("describedObject") or {}
    base = MetricSpec(
        kind,
        metric_name=str((source.get("metric") or {}).get("name", "")),
        described_object=f"{described.get('kind', '')} {described.get('name', '')}".strip(),
    )
    return _with_target(base, source.get("target"))


def _with_target(base: MetricSpec, target: KubeObject | None) -> MetricSpec:
    target = target or {}
    utilization = target.get("averageUtilization")
    return MetricSpec(
        type=base.type,
        resource=base.resource,
        container=base.container,
        target_type=str(target.get("type", "")),
        average_utilization=int(utilization) if utilization is not None else None,
        average_value_milli=_milli_or_none(target.get("averageValue")),
        value_milli=_milli_or_none(target.get("value")),
        metric_name=base.metric_name,
        described_object=base.described_object,
    )


def behavior_from(behavior: KubeObject | None) -> Behavior | None:
    """`spec.behavior`, with upstream's defaults for any part left out.

    Example: {scaleDown: {policies: [{type: Pods, value: 1, periodSeconds: 60}]}}
    -> scale-up defaults, scale-down window None (the controller's flag), one
    Pods policy.
    """
    if behavior is None:
        return None
    return Behavior(
        scale_up=_rules(behavior.get("scaleUp"), _DEFAULT_SCALE_UP),
        scale_down=_rules(behavior.get("scaleDown"), _DEFAULT_SCALE_DOWN),
    )


def _rules(rules: KubeObject | None, default: ScalingRules) -> ScalingRules:
    if rules is None:
        return default
    window = rules.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
    policies = rules.get("policies")
    tolerance = quantity_or_none(rules.get("tolerance")) if "tolerance" in rules else None
    return ScalingRules(
        stabilization_window_seconds=None if window is None else int(window),
        select_policy=str(rules.get("selectPolicy") or default.select_policy),
        policies=default.policies
        if policies is None
        else tuple(
            ScalingPolicy(
                str(p.get("type", "")), int(p.get("value", 0)), int(p.get("periodSeconds", 0))
            )
            for p in policies
        ),
        tolerance=None if tolerance is None else float(tolerance),
    )


def autoscaler_status(hpa: KubeObject) -> AutoscalerStatus:
    """The parts of the stored status a sync carries over: desired count, last
    scale time and conditions (with their transition times)."""
    status = hpa.get("status") or {}
    return AutoscalerStatus(
        current_replicas=int(status.get("currentReplicas") or 0),
        desired_replicas=int(status.get("desiredReplicas") or 0),
        last_scale_time=_time(status.get("lastScaleTime")),
        conditions=tuple(
            Condition(
                type=str(c.get("type", "")),
                status=str(c.get("status", "")),
                reason=str(c.get("reason", "")),
                message=str(c.get("message", "")),
                last_transition_time=_time(c.get("lastTransitionTime")),
            )
            for c in status.get("conditions") or []
        ),
    )


def status_json(status: AutoscalerStatus) -> KubeObject:
    """HorizontalPodAutoscalerStatus as the API server serializes it:
    currentReplicas and lastScaleTime are omitempty, desiredReplicas always
    present, currentMetrics present and possibly null.

    Example: AutoscalerStatus(3, 6, now, (cpu 140 % / 700m,), conditions) ->
    {lastScaleTime, currentReplicas: 3, desiredReplicas: 6, currentMetrics:
    [{type: Resource, resource: {name: cpu, current: {averageUtilization: 140,
    averageValue: "700m"}}}], conditions: [...]}.
    """
    body: KubeObject = {}
    if status.last_scale_time is not None:
        body["lastScaleTime"] = rfc3339(status.last_scale_time)
    if status.current_replicas:
        body["currentReplicas"] = status.current_replicas
    body["desiredReplicas"] = status.desired_replicas
    body["currentMetrics"] = (
        None
        if status.current_metrics is None
        else [metric_status_json(m) for m in status.current_metrics]
    )
    if status.conditions:
        body["conditions"] = [condition_json(c) for c in status.conditions]
    return body


def metric_status_json(metric: MetricStatus) -> KubeObject:
    """Example: MetricStatus("Resource", "memory", average_utilization=50,
    average_value_milli=268435456000) -> {type: Resource, resource: {name:
    memory, current: {averageUtilization: 50, averageValue: "256Mi"}}}."""
    if metric.type not in ("Resource", "ContainerResource"):
        return {"type": metric.type}
    current: KubeObject = {}
    if metric.average_utilization is not None:
        current["averageUtilization"] = metric.average_utilization
    if metric.average_value_milli is not None:
        current["averageValue"] = format_milli_quantity(
            metric.average_value_milli, binary=metric.resource == MEMORY
        )
    if metric.type == "ContainerResource":
        source = {"name": metric.resource, "container": metric.container, "current": current}
        return {"type": metric.type, "containerResource": source}
    return {"type": metric.type, "resource": {"name": metric.resource, "current": current}}


def condition_json(condition: Condition) -> KubeObject:
    body: KubeObject = {"type": condition.type, "status": condition.status}
    if condition.last_transition_time is not None:
        body["lastTransitionTime"] = rfc3339(condition.last_transition_time)
    body["reason"] = condition.reason
    body["message"] = condition.message
    return body


def params_from_settings(settings: ControlPlaneSettings) -> HpaParams:
    return HpaParams(
        tolerance=settings.hpa_tolerance,
        downscale_stabilization_seconds=settings.hpa_downscale_stabilization_seconds,
        cpu=CpuReadiness(
            initialization_period_seconds=settings.hpa_cpu_initialization_period_seconds,
            initial_readiness_delay_seconds=settings.hpa_initial_readiness_delay_seconds,
        ),
    )


def _time(text: object) -> datetime | None:
    return parse_time(text) if isinstance(text, str) and text else None


def _milli_or_none(value: object) -> int | None:
    quantity = quantity_or_none(value)
    return None if quantity is None else milli_value(quantity)
