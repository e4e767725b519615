"""Raw API JSON -> typed observations. Pure: one dict in, one frozen record out.

Everything here reads JSON as the API server sends it (camelCase, counters
omitted when zero, times as RFC 3339), so the same functions serve watch events,
list items and test fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from resilience.observe.records import (
    Condition,
    ContainerObservation,
    DeploymentObservation,
    EndpointObservation,
    EndpointsObservation,
    EventObservation,
    HpaObservation,
    MetricObservation,
    NodeObservation,
    Observation,
    PdbObservation,
    PodObservation,
    ResourceKind,
    RsObservation,
    TaintObservation,
)

ZONE_LABEL = "topology.kubernetes.io/zone"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

Json = Mapping[str, Any]


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (`2026-11-26T14:04:41Z`, fractions allowed) -> epoch seconds.

    >>> parse_time("1970-01-01T00:00:01.5Z")
    1.5
    """
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def reduce_pod(pod: Json) -> PodObservation:
    metadata, spec, status = _parts(pod)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    target = conditions.get("DisruptionTarget") or {}
    containers = spec.get("containers") or [{}]
    return PodObservation(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        phase=str(status.get("phase") or "Pending"),
        ready=ready.get("status") == "True",
        ready_since=parse_time(ready.get("lastTransitionTime"))
        if ready.get("status") == "True"
        else None,
        deleting=metadata.get("deletionTimestamp") is not None,
        node=spec.get("nodeName") or None,
        owner_rs=_controller(metadata, "ReplicaSet"),
        image=str(containers[0].get("image", "")),
        pod_ip=status.get("podIP") or None,
        labels=dict(metadata.get("labels") or {}),
        containers=tuple(_container(s) for s in status.get("containerStatuses") or []),
        disruption_target=str(target.get("reason") or "DisruptionTarget")
        if target.get("status") == "True"
        else None,
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_replicaset(rs: Json) -> RsObservation:
    metadata, spec, status = _parts(rs)
    return RsObservation(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        owner_deployment=_controller(metadata, "Deployment"),
        revision=_revision(metadata),
        spec_replicas=_int(spec.get("replicas"), default=1),
        replicas=_int(status.get("replicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        image=_template_image(spec),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_deployment(deployment: Json) -> DeploymentObservation:
    metadata, spec, status = _parts(deployment)
    return DeploymentObservation(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=_int(metadata.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        spec_replicas=_int(spec.get("replicas"), default=1),
        replicas=_int(status.get("replicas")),
        updated=_int(status.get("updatedReplicas")),
        ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")),
        unavailable=_int(status.get("unavailableReplicas")),
        revision=_revision(metadata),
        image=_template_image(spec),
        selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        conditions=_conditions(status),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_endpoint_slice(endpoint_slice: Json) -> EndpointsObservation:
    metadata = endpoint_slice.get("metadata") or {}
    endpoints = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        conditions = endpoint.get("conditions") or {}
        target = endpoint.get("targetRef") or {}
        endpoints.append(
            EndpointObservation(
                addresses=tuple(str(a) for a in endpoint.get("addresses") or []),
                # EndpointConditions: a nil `ready` means ready (discovery/v1 doc).
                ready=conditions.get("ready") is not False,
                serving=conditions.get("serving", conditions.get("ready")) is not False,
                terminating=bool(conditions.get("terminating")),
                node=endpoint.get("nodeName") or None,
                zone=endpoint.get("zone") or None,
                pod=target.get("name") if target.get("kind") == "Pod" else None,
            )
        )
    return EndpointsObservation(
        name=str(metadata.get("name", "")),
        service=str((metadata.get("labels") or {}).get(SERVICE_NAME_LABEL, "")),
        endpoints=tuple(endpoints),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_hpa(hpa: Json) -> HpaObservation:
    metadata, spec, status = _parts(hpa)
    metrics = []
    for metric in status.get("currentMetrics") or []:
        kind = str(metric.get("type") or "")
        body = (metric.get(_lower_first(kind)) or {}) if kind else {}
        current = body.get("current") or {}
        metrics.append(
            MetricObservation(
                type=kind,
                name=str(body.get("name") or (body.get("metric") or {}).get("name") or ""),
                average_utilization=current.get("averageUtilization"),
                average_value=current.get("averageValue"),
            )
        )
    return HpaObservation(
        name=str(metadata.get("name", "")),
        target=str((spec.get("scaleTargetRef") or {}).get("name", "")),
        min_replicas=_int(spec.get("minReplicas"), default=1),
        max_replicas=_int(spec.get("maxReplicas")),
        current_replicas=_int(status.get("currentReplicas")),
        desired_replicas=_int(status.get("desiredReplicas")),
        last_scale_time=parse_time(status.get("lastScaleTime")),
        metrics=tuple(metrics),
        conditions=_conditions(status),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_node(node: Json) -> NodeObservation:
    metadata, spec, status = _parts(node)
    ready: Json = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return NodeObservation(
        name=str(metadata.get("name", "")),
        zone=(metadata.get("labels") or {}).get(ZONE_LABEL),
        ready=str(ready.get("status") or "Unknown"),
        unschedulable=bool(spec.get("unschedulable")),
        taints=tuple(
            TaintObservation(
                str(t.get("key", "")), str(t.get("effect", "")), str(t.get("value", ""))
            )
            for t in spec.get("taints") or []
        ),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_pdb(pdb: Json) -> PdbObservation:
    metadata, spec, status = _parts(pdb)

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return PdbObservation(
        name=str(metadata.get("name", "")),
        min_available=text(spec.get("minAvailable")),
        max_unavailable=text(spec.get("maxUnavailable")),
        current_healthy=_int(status.get("currentHealthy")),
        desired_healthy=_int(status.get("desiredHealthy")),
        disruptions_allowed=_int(status.get("disruptionsAllowed")),
        expected_pods=_int(status.get("expectedPods")),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


def reduce_event(event: Json) -> EventObservation:
    metadata = event.get("metadata") or {}
    involved = event.get("involvedObject") or {}
    return EventObservation(
        name=str(metadata.get("name", "")),
        reason=str(event.get("reason") or ""),
        message=str(event.get("message") or ""),
        type=str(event.get("type") or ""),
        involved_kind=str(involved.get("kind") or ""),
        involved_name=str(involved.get("name") or ""),
        count=_int(event.get("count")),
        last_time=parse_time(event.get("lastTimestamp") or event.get("eventTime")),
        resource_version=str(metadata.get("resourceVersion", "")),
    )


REDUCERS: Mapping[ResourceKind, Callable[[Json], Observation]] = {
    ResourceKind.POD: reduce_pod,
    ResourceKind.REPLICASET: reduce_replicaset,
    ResourceKind.DEPLOYMENT: reduce_deployment,
    ResourceKind.ENDPOINTSLICE: reduce_endpoint_slice,
    ResourceKind.HPA: reduce_hpa,
    ResourceKind.NODE: reduce_node,
    ResourceKind.PDB: reduce_pdb,
    ResourceKind.EVENT: reduce_event,
}


def _parts(obj: Json) -> tuple[Json, Json, Json]:
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def _controller(metadata: Json, kind: str) -> str | None:
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == kind:
            return str(owner.get("name"))
    return None


def _revision(metadata: Json) -> int | None:
    value = (metadata.get("annotations") or {}).get(REVISION_ANNOTATION)
    return int(value) if value and str(value).isdigit() else None


def _template_image(spec: Json) -> str:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def _conditions(status: Json) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in status.get("conditions") or []
    )


def _container(status: Json) -> ContainerObservation:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    current = next((key for key in ("running", "waiting", "terminated") if key in state), "unknown")
    return ContainerObservation(
        name=str(status.get("name", "")),
        ready=bool(status.get("ready")),
        restart_count=_int(status.get("restartCount")),
        state=current,
        waiting_reason=str((state.get("waiting") or {}).get("reason") or ""),
        last_exit_code=last.get("exitCode"),
        last_reason=str(last.get("reason") or ""),
        last_started_at=parse_time(last.get("startedAt")),
        last_finished_at=parse_time(last.get("finishedAt")),
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
