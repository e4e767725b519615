"""The HorizontalPodAutoscaler's data: what `decide` reads and what it returns, as frozen
dataclasses, and the Go integer arithmetic upstream's counts rely on.

All quantities are milli-units (`500m` CPU is 500, 1 MiB of memory is
1_048_576_000) exactly as upstream's `MilliValue()`. `conversion.py` turns API JSON
into these and back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)
INT32_MAX: Final = 2**31 - 1
INT32_MIN: Final = -(2**31)


class MetricError(Exception):
    """A metric that cannot be computed this sync (upstream returns an `error`)."""


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


def go_div(numerator: int, denominator: int) -> int:
    """Go's integer division truncates toward zero (Python's // floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def clamp_int32(value: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, value))


def ceil_int32(value: float) -> int:
    if value > INT32_MAX:
        return INT32_MAX
    return math.ceil(value)
