"""The intended policy: what deploy/ says the service must guarantee, as one typed object.

Suites compare what they observe on a cluster with this object, never with
numbers typed into a test. Upstream defaults are applied here (probe timings,
rollout defaults, HPA behaviour), so that an omitted field means what it means
on a real cluster.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience.errors import PolicyError
from resilience.fenceposts import Fenceposts, IntOrPercent, resolve_fenceposts, scaled_value
from resilience.manifests import ManifestObject, RenderedManifests, render

DEPLOYMENT_NAME = "session-state-service"
ZONE_LABEL = "topology.kubernetes.io/zone"

# pkg/apis/core/v1/defaults.go, SetDefaults_Probe
PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
# k8s.io/api/apps/v1 types.go doc comments
DEPLOYMENT_DEFAULTS: Mapping[str, Any] = {
    "maxSurge": "25%",
    "maxUnavailable": "25%",
    "minReadySeconds": 0,
    "progressDeadlineSeconds": 600,
    "revisionHistoryLimit": 10,
}
DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30
# kube-controller-manager --horizontal-pod-autoscaler-downscale-stabilization
HPA_DOWNSCALE_STABILIZATION_SECONDS = 300


class ProbeKind(enum.StrEnum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"


@dataclass(frozen=True)
class ProbePolicy:
    """One probe with upstream defaults applied."""

    kind: ProbeKind
    path: str
    port: int
    scheme: str
    initial_delay_seconds: int
    period_seconds: int
    timeout_seconds: int
    success_threshold: int
    failure_threshold: int

    @property
    def worst_detection_seconds(self) -> int:
        """Longest time from a failure to the kubelet acting on it.

        `failureThreshold` consecutive failures, each probe one period apart
        and each allowed to run `timeoutSeconds`: period x threshold + timeout.
        """
        return self.period_seconds * self.failure_threshold + self.timeout_seconds


@dataclass(frozen=True)
class RolloutPolicy:
    replicas: int
    max_surge: IntOrPercent
    max_unavailable: IntOrPercent
    min_ready_seconds: int
    progress_deadline_seconds: int
    revision_history_limit: int

    @property
    def fenceposts(self) -> Fenceposts:
        return self.fenceposts_at(self.replicas)

    def fenceposts_at(self, replicas: int) -> Fenceposts:
        """The limits at another desired count (the HPA moves `spec.replicas`)."""
        return resolve_fenceposts(self.max_surge, self.max_unavailable, replicas)


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: str  # Max | Min | Disabled
    policies: tuple[ScalingPolicy, ...]


@dataclass(frozen=True)
class ScalingBehavior:
    """`spec.behavior` with the autoscaling/v2 defaults filled in."""

    scale_up: ScalingRules
    scale_down: ScalingRules


@dataclass(frozen=True)
class MetricTarget:
    resource: str
    average_utilization: int


@dataclass(frozen=True)
class HpaPolicy:
    name: str
    min_replicas: int
    max_replicas: int
    targets: tuple[MetricTarget, ...]
    # None: the legacy path (scale-up capped at max(2 x current, 4) per sync,
    # downscale stabilised over the controller's 300 s window).
    behavior: ScalingBehavior | None

    def target(self, resource: str) -> MetricTarget | None:
        return next((t for t in self.targets if t.resource == resource), None)

    @property
    def scale_down_stabilization_seconds(self) -> int:
        if self.behavior is None:
            return HPA_DOWNSCALE_STABILIZATION_SECONDS
        return self.behavior.scale_down.stabilization_window_seconds


@dataclass(frozen=True)
class DisruptionPolicy:
    name: str
    min_available: IntOrPercent | None
    max_unavailable: IntOrPercent | None

    def desired_healthy(self, expected_pods: int) -> int:
        """desiredHealthy as the disruption controller computes it (pkg/controller/disruption)."""
        if self.max_unavailable is not None:
            unavailable = scaled_value(self.max_unavailable, expected_pods, round_up=True)
            return max(0, expected_pods - unavailable)
        if self.min_available is None:
            return 0
        return scaled_value(self.min_available, expected_pods, round_up=True)


@dataclass(frozen=True)
class ZonePolicy:
    topology_key: str
    max_skew: int
    when_unsatisfiable: str
    zones: tuple[str, ...]


@dataclass(frozen=True)
class IntendedPolicy:
    namespace: str
    deployment: str
    selector: Mapping[str, str]
    image: str
    termination_grace_period_seconds: int
    rollout: RolloutPolicy
    probes: Mapping[ProbeKind, ProbePolicy]
    hpa: HpaPolicy
    disruption: DisruptionPolicy | None
    zones: ZonePolicy

    @property
    def label_selector(self) -> str:
        """The Deployment's selector in `labelSelector=` form."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.selector.items()))


def load_policy(directory: Path | str) -> IntendedPolicy:
    """Render a kustomization and read the intended policy out of it."""
    return policy_from_manifests(render(directory))


def policy_from_manifests(
    manifests: RenderedManifests, deployment_name: str = DEPLOYMENT_NAME
) -> IntendedPolicy:
    deployment = manifests.get("Deployment", deployment_name)
    spec = deployment.body["spec"]
    pod_spec = spec["template"]["spec"]
    container = _main_container(deployment)
    hpa = _hpa_for(manifests, deployment)
    return IntendedPolicy(
        namespace=deployment.namespace or "default",
        deployment=deployment.name,
        selector=dict(spec["selector"].get("matchLabels") or {}),
        image=str(container["image"]),
        termination_grace_period_seconds=int(
            pod_spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
        ),
        rollout=rollout_policy(spec),
        probes=probe_policies(container),
        hpa=hpa_policy(hpa),
        disruption=_disruption_for(manifests, deployment),
        zones=zone_policy(deployment),
    )


def rollout_policy(deployment_spec: Mapping[str, Any]) -> RolloutPolicy:
    strategy = deployment_spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise PolicyError(f"spec.strategy.type: expected RollingUpdate, got {strategy['type']}")
    rolling = strategy.get("rollingUpdate") or {}

    def setting(key: str, source: Mapping[str, Any]) -> Any:
        return source.get(key, DEPLOYMENT_DEFAULTS[key])

    return RolloutPolicy(
        replicas=int(deployment_spec.get("replicas", 1)),
        max_surge=setting("maxSurge", rolling),
        max_unavailable=setting("maxUnavailable", rolling),
        min_ready_seconds=int(setting("minReadySeconds", deployment_spec)),
        progress_deadline_seconds=int(setting("progressDeadlineSeconds", deployment_spec)),
        revision_history_limit=int(setting("revisionHistoryLimit", deployment_spec)),
    )


def probe_policies(container: Mapping[str, Any]) -> dict[ProbeKind, ProbePolicy]:
    ports = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
    probes: dict[ProbeKind, ProbePolicy] = {}
    for kind in ProbeKind:
        probe = container.get(f"{kind.value}Probe")
        if probe is not None:
            probes[kind] = probe_policy(kind, probe, ports)
    return probes


def probe_policy(
    kind: ProbeKind, probe: Mapping[str, Any], named_ports: Mapping[str | None, int]
) -> ProbePolicy:
    http = probe.get("httpGet")
    if http is None:
        raise PolicyError(f"{kind.value}Probe: only httpGet probes are supported")
    port = http["port"]
    if isinstance(port, str):
        if port not in named_ports:
            raise PolicyError(f"{kind.value}Probe.httpGet.port: no container port named {port}")
        port = named_ports[port]
    settings = {key: int(probe.get(key, default)) for key, default in PROBE_DEFAULTS.items()}
    return ProbePolicy(
        kind=kind,
        path=str(http.get("path", "/")),
        port=int(port),
        scheme=str(http.get("scheme", "HTTP")),
        initial_delay_seconds=settings["initialDelaySeconds"],
        period_seconds=settings["periodSeconds"],
        timeout_seconds=settings["timeoutSeconds"],
        success_threshold=settings["successThreshold"],
        failure_threshold=settings["failureThreshold"],
    )


def hpa_policy(hpa: ManifestObject) -> HpaPolicy:
    spec = hpa.body["spec"]
    targets = []
    for metric in spec.get("metrics") or []:
        if metric.get("type") != "Resource":
            raise PolicyError(f"{hpa.ref}: only Resource metrics are supported")
        resource = metric["resource"]
        target = resource["target"]
        if target.get("type") != "Utilization":
            raise PolicyError(f"{hpa.ref}: only Utilization targets are supported")
        targets.append(MetricTarget(str(resource["name"]), int(target["averageUtilization"])))
    behavior = spec.get("behavior")
    return HpaPolicy(
        name=hpa.name,
        min_replicas=int(spec.get("minReplicas", 1)),
        max_replicas=int(spec["maxReplicas"]),
        targets=tuple(targets) or (MetricTarget("cpu", 80),),
        behavior=None if behavior is None else scaling_behavior(behavior),
    )


def scaling_behavior(behavior: Mapping[str, Any]) -> ScalingBehavior:
    """Fill in what autoscaling/v2 defaulting fills in once `behavior` is set.

    >>> scaling_behavior({"scaleDown": {"stabilizationWindowSeconds": 30}}).scale_up.policies
    (ScalingPolicy(type='Pods', value=4, period_seconds=15), \
ScalingPolicy(type='Percent', value=100, period_seconds=15))
    """
    up = behavior.get("scaleUp") or {}
    down = behavior.get("scaleDown") or {}
    return ScalingBehavior(
        scale_up=_rules(up, 0, (ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15))),
        scale_down=_rules(
            down, HPA_DOWNSCALE_STABILIZATION_SECONDS, (ScalingPolicy("Percent", 100, 15),)
        ),
    )


def zone_policy(deployment: ManifestObject) -> ZonePolicy:
    pod_spec = deployment.body["spec"]["template"]["spec"]
    constraint = next(
        (
            c
            for c in pod_spec.get("topologySpreadConstraints") or []
            if c.get("topologyKey") == ZONE_LABEL
        ),
        None,
    )
    if constraint is None:
        raise PolicyError(f"{deployment.ref}: no topologySpreadConstraint on {ZONE_LABEL}")
    return ZonePolicy(
        topology_key=ZONE_LABEL,
        max_skew=int(constraint["maxSkew"]),
        when_unsatisfiable=str(constraint.get("whenUnsatisfiable", "DoNotSchedule")),
        zones=_required_zones(pod_spec),
    )


def _rules(
    rules: Mapping[str, Any], default_window: int, default_policies: tuple[ScalingPolicy, ...]
) -> ScalingRules:
    policies = tuple(
        ScalingPolicy(str(p["type"]), int(p["value"]), int(p["periodSeconds"]))
        for p in rules.get("policies") or []
    )
    return ScalingRules(
        stabilization_window_seconds=int(rules.get("stabilizationWindowSeconds", default_window)),
        select_policy=str(rules.get("selectPolicy", "Max")),
        policies=policies or default_policies,
    )


def _required_zones(pod_spec: Mapping[str, Any]) -> tuple[str, ...]:
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    zones: list[str] = []
    for term in required.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == ZONE_LABEL and expression.get("operator") == "In":
                zones.extend(str(v) for v in expression.get("values") or [])
    return tuple(sorted(set(zones)))


def _main_container(deployment: ManifestObject) -> Mapping[str, Any]:
    containers = deployment.body["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if container.get("name") == deployment.name:
            found: Mapping[str, Any] = container
            return found
    raise PolicyError(f"{deployment.ref}: no container named {deployment.name}")


def _hpa_for(manifests: RenderedManifests, deployment: ManifestObject) -> ManifestObject:
    for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
        target = hpa.body["spec"]["scaleTargetRef"]
        if target.get("kind") == "Deployment" and target.get("name") == deployment.name:
            return hpa
    raise PolicyError(f"{manifests.directory}: no HorizontalPodAutoscaler targets {deployment.ref}")


def _disruption_for(
    manifests: RenderedManifests, deployment: ManifestObject
) -> DisruptionPolicy | None:
    pod_labels = deployment.body["spec"]["template"]["metadata"].get("labels") or {}
    for pdb in manifests.of_kind("PodDisruptionBudget"):
        match = (pdb.body["spec"].get("selector") or {}).get("matchLabels") or {}
        if all(pod_labels.get(key) == value for key, value in match.items()):
            spec = pdb.body["spec"]
            return DisruptionPolicy(
                name=pdb.name,
                min_available=spec.get("minAvailable"),
                max_unavailable=spec.get("maxUnavailable"),
            )
    return None
