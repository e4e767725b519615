"""Typed, frozen observations: what one watch event said about one object.

The raw API JSON is reduced to the fields the invariant checkers and reports
need, so that a timeline of a game day stays small, exports as JSON lines and
can be reasoned about without the Kubernetes client's models. Zero-valued
status counters are omitted by the API server (`omitempty`); they are read
back as 0 here, once, so that no checker has to remember it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


class ResourceKind(enum.StrEnum):
    POD = "Pod"
    REPLICASET = "ReplicaSet"
    DEPLOYMENT = "Deployment"
    ENDPOINTSLICE = "EndpointSlice"
    HPA = "HorizontalPodAutoscaler"
    NODE = "Node"
    PDB = "PodDisruptionBudget"
    EVENT = "Event"


class EventType(enum.StrEnum):
    """A watch event type, plus LISTED for objects read by a (re)list."""

    LISTED = "LISTED"
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ContainerObservation:
    """One container status: enough to see restarts and why the last run ended."""

    name: str
    ready: bool
    restart_count: int
    state: str  # running | waiting | terminated | unknown
    waiting_reason: str = ""
    last_exit_code: int | None = None
    last_reason: str = ""
    last_started_at: float | None = None
    last_finished_at: float | None = None


@dataclass(frozen=True)
class PodObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.POD

    name: str
    uid: str = ""
    phase: str = "Pending"
    ready: bool = False
    # lastTransitionTime of the Ready condition (server clock, whole seconds):
    # availability under minReadySeconds counts from it.
    ready_since: float | None = None
    deleting: bool = False
    node: str | None = None
    # Filled from the Node watch when the timeline records the pod; State.zone_of
    # falls back to the node map for pods seen before their node.
    zone: str | None = None
    owner_rs: str | None = None
    image: str = ""
    pod_ip: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerObservation, ...] = ()
    # Reason of a DisruptionTarget=True condition: EvictionByEvictionAPI for an
    # eviction, DeletionByTaintManager for a NoExecute taint, ...
    disruption_target: str | None = None
    resource_version: str = ""

    @property
    def active(self) -> bool:
        """controller.IsPodActive: not terminal and not terminating."""
        return not self.deleting and self.phase not in ("Succeeded", "Failed")

    @property
    def restart_count(self) -> int:
        return sum(c.restart_count for c in self.containers)

    def available(self, min_ready_seconds: int, now: float) -> bool:
        """IsPodAvailable: active, Ready, and Ready for at least minReadySeconds."""
        if not (self.active and self.ready):
            return False
        if min_ready_seconds <= 0 or self.ready_since is None:
            return True
        return self.ready_since + min_ready_seconds <= now


@dataclass(frozen=True)
class RsObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.REPLICASET

    name: str
    uid: str = ""
    owner_deployment: str | None = None
    revision: int | None = None
    spec_replicas: int = 0
    replicas: int = 0
    ready: int = 0
    available: int = 0
    image: str = ""
    resource_version: str = ""


@dataclass(frozen=True)
class DeploymentObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.DEPLOYMENT

    name: str
    uid: str = ""
    generation: int = 0
    observed_generation: int = 0
    spec_replicas: int = 0
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    unavailable: int = 0
    revision: int | None = None
    image: str = ""
    selector: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    resource_version: str = ""

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def complete(self) -> bool:
        """DeploymentComplete (progress.go), as `kubectl rollout status` sees it."""
        return (
            self.updated == self.spec_replicas
            and self.replicas == self.spec_replicas
            and self.available == self.spec_replicas
            and self.observed_generation >= self.generation
        )


@dataclass(frozen=True)
class EndpointObservation:
    addresses: tuple[str, ...]
    ready: bool
    serving: bool
    terminating: bool
    node: str | None = None
    zone: str | None = None
    pod: str | None = None


@dataclass(frozen=True)
class EndpointsObservation:
    """One EndpointSlice; `service` is its kubernetes.io/service-name label."""

    KIND: ClassVar[ResourceKind] = ResourceKind.ENDPOINTSLICE

    name: str
    service: str = ""
    endpoints: tuple[EndpointObservation, ...] = ()
    resource_version: str = ""

    @property
    def ready_addresses(self) -> tuple[str, ...]:
        return tuple(a for e in self.endpoints if e.ready for a in e.addresses)


@dataclass(frozen=True)
class MetricObservation:
    """One entry of status.currentMetrics (Resource metrics only carry values)."""

    type: str
    name: str = ""
    average_utilization: int | None = None
    average_value: str | None = None


@dataclass(frozen=True)
class HpaObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.HPA

    name: str
    target: str = ""
    min_replicas: int = 1
    max_replicas: int = 0
    current_replicas: int = 0
    desired_replicas: int = 0
    last_scale_time: float | None = None
    metrics: tuple[MetricObservation, ...] = ()
    conditions: tuple[Condition, ...] = ()
    resource_version: str = ""

    @property
    def scaling_active(self) -> bool:
        """ScalingActive=True: desiredReplicas is a fresh decision, not a stale default."""
        return any(c.type == "ScalingActive" and c.status == "True" for c in self.conditions)


@dataclass(frozen=True)
class TaintObservation:
    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True)
class NodeObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.NODE

    name: str
    zone: str | None = None
    ready: str = "Unknown"  # the Ready condition's status: True | False | Unknown
    unschedulable: bool = False
    taints: tuple[TaintObservation, ...] = ()
    resource_version: str = ""


@dataclass(frozen=True)
class PdbObservation:
    KIND: ClassVar[ResourceKind] = ResourceKind.PDB

    name: str
    min_available: str | None = None
    max_unavailable: str | None = None
    current_healthy: int = 0
    desired_healthy: int = 0
    disruptions_allowed: int = 0
    expected_pods: int = 0
    resource_version: str = ""


@dataclass(frozen=True)
class EventObservation:
    """A core/v1 Event: kept in the timeline for reports, not in the world state."""

    KIND: ClassVar[ResourceKind] = ResourceKind.EVENT

    name: str
    reason: str = ""
    message: str = ""
    type: str = ""
    involved_kind: str = ""
    involved_name: str = ""
    count: int = 0
    last_time: float | None = None
    resource_version: str = ""


Observation = (
    PodObservation
    | RsObservation
    | DeploymentObservation
    | EndpointsObservation
    | HpaObservation
    | NodeObservation
    | PdbObservation
    | EventObservation
)

OBSERVATION_TYPES: Mapping[ResourceKind, type[Observation]] = {
    cls.KIND: cls
    for cls in (
        PodObservation,
        RsObservation,
        DeploymentObservation,
        EndpointsObservation,
        HpaObservation,
        NodeObservation,
        PdbObservation,
        EventObservation,
    )
}
