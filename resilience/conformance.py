"""The seed as a table, and the rules an overlay must keep.

`SEED_VALUES` is every value of shared/seed/k8s-deployment.diagram.md that
deploy/base must carry (plus the PodDisruptionBudget the seed lacks). Overlays
may change only addresses, the sandbox's secrets and HPA behaviour windows:
`ALLOWED_OVERLAY_CHANGES`. Both checks return findings instead of raising, so
a suite can report every one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from resilience import objectpath
from resilience.manifests import RenderedManifests

DEPLOY = "session-state-service"
CONTAINER = f"spec.template.spec.containers[name={DEPLOY}]"
ZONE_SPREAD = (
    "spec.template.spec.topologySpreadConstraints[topologyKey=topology.kubernetes.io/zone]"
)
ZONE_AFFINITY = (
    "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    ".nodeSelectorTerms[0].matchExpressions[key=topology.kubernetes.io/zone]"
)
HPA = "session-state-service-hpa"
SEED_HOSTS = ("api.harmonyflow.io", "ws.api.harmonyflow.io")
SEED_ROUTES = (("/api", 8080), ("/ws", 8443), ("/health", 8080))


@dataclass(frozen=True)
class SeedValue:
    kind: str
    name: str
    path: str
    expected: Any

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}:{self.path}"


@dataclass(frozen=True)
class Finding:
    """One way a manifest differs from what it must be; `str()` is the message."""

    source: str
    ref: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: {self.ref}: {self.path}: {self.problem}"


def _deployment() -> list[SeedValue]:
    def d(path: str, expected: Any) -> SeedValue:
        return SeedValue("Deployment", DEPLOY, path, expected)

    return [
        d("metadata.namespace", "harmonyflow"),
        d("spec.replicas", 3),
        d("spec.strategy.type", "RollingUpdate"),
        d("spec.strategy.rollingUpdate.maxUnavailable", 1),
        d("spec.strategy.rollingUpdate.maxSurge", 1),
        d("spec.selector.matchLabels.app", DEPLOY),
        d('spec.template.metadata.annotations["linkerd.io/inject"]', "enabled"),
        d(f"{CONTAINER}.image", "ghcr.io/harmonyflow/session-state:1.0.0"),
        d(f"{CONTAINER}.ports[name=http].containerPort", 8080),
        d(f"{CONTAINER}.ports[name=ws].containerPort", 8443),
        d(f"{CONTAINER}.resources.requests.cpu", "500m"),
        d(f"{CONTAINER}.resources.requests.memory", "512Mi"),
        d(f"{CONTAINER}.resources.limits.cpu", "2"),
        d(f"{CONTAINER}.resources.limits.memory", "2Gi"),
        d(f"{CONTAINER}.livenessProbe.httpGet.path", "/health/live"),
        d(f"{CONTAINER}.readinessProbe.httpGet.path", "/health/ready"),
        d(f"{CONTAINER}.startupProbe.httpGet.path", "/health/ready"),
        d(f"{CONTAINER}.envFrom[0].secretRef.name", "session-state-secrets"),
        d(f"{CONTAINER}.env[name=DB_URL].name", "DB_URL"),
        d(f"{CONTAINER}.env[name=REDIS_URL].name", "REDIS_URL"),
        d(f"{CONTAINER}.env[name=LOG_LEVEL].name", "LOG_LEVEL"),
        d(f"{CONTAINER}.env[name=POD_IP].valueFrom.fieldRef.fieldPath", "status.podIP"),
        d(f"{ZONE_SPREAD}.maxSkew", 1),
        d(f"{ZONE_SPREAD}.whenUnsatisfiable", "DoNotSchedule"),
        d(f"{ZONE_SPREAD}.labelSelector.matchLabels.app", DEPLOY),
        d(f"{ZONE_AFFINITY}.values", ["us-west-2a", "us-west-2b", "us-west-2c"]),
    ]


def _services() -> list[SeedValue]:
    rows = []
    for name in (DEPLOY, f"{DEPLOY}-headless"):
        rows += [
            SeedValue("Service", name, "spec.type", "ClusterIP"),
            SeedValue("Service", name, "spec.selector.app", DEPLOY),
            SeedValue("Service", name, "spec.ports[port=8080].targetPort", 8080),
            SeedValue("Service", name, "spec.ports[port=8443].targetPort", 8443),
        ]
    rows += [
        SeedValue("Service", DEPLOY, "spec.sessionAffinity", "None"),
        SeedValue("Service", f"{DEPLOY}-headless", "spec.clusterIP", "None"),
    ]
    return rows


def _ingress() -> list[SeedValue]:
    rows = [SeedValue("Ingress", DEPLOY, "spec.ingressClassName", "nginx")]
    for host in SEED_HOSTS:
        for route, port in SEED_ROUTES:
            backend = f"spec.rules[host={host}].http.paths[path={route}].backend.service"
            rows += [
                SeedValue("Ingress", DEPLOY, f"{backend}.name", DEPLOY),
                SeedValue("Ingress", DEPLOY, f"{backend}.port.number", port),
            ]
    return rows


def _autoscaling_and_policies() -> list[SeedValue]:
    def hpa(path: str, expected: Any) -> SeedValue:
        return SeedValue("HorizontalPodAutoscaler", HPA, path, expected)

    metric = "spec.metrics[resource.name={}].resource.target"
    return [
        hpa("spec.scaleTargetRef.kind", "Deployment"),
        hpa("spec.scaleTargetRef.name", DEPLOY),
        hpa("spec.minReplicas", 3),
        hpa("spec.maxReplicas", 10),
        hpa(f"{metric.format('cpu')}.type", "Utilization"),
        hpa(f"{metric.format('cpu')}.averageUtilization", 70),
        hpa(f"{metric.format('memory')}.type", "Utilization"),
        hpa(f"{metric.format('memory')}.averageUtilization", 80),
        SeedValue("PodDisruptionBudget", DEPLOY, "spec.minAvailable", 2),
        SeedValue("PodDisruptionBudget", DEPLOY, "spec.selector.matchLabels.app", DEPLOY),
        SeedValue("NetworkPolicy", "default-deny", "spec.podSelector", {}),
        SeedValue("NetworkPolicy", "default-deny", "spec.policyTypes", ["Ingress", "Egress"]),
        SeedValue("NetworkPolicy", "allow-linkerd", "spec.podSelector", {}),
        SeedValue(
            "NetworkPolicy",
            "allow-linkerd",
            "spec.ingress[0].from[0].namespaceSelector.matchLabels.name",
            "linkerd",
        ),
        SeedValue("NetworkPolicy", "allow-linkerd", "spec.ingress[0].ports[0].port", 4143),
        SeedValue(
            "NetworkPolicy",
            "allow-linkerd",
            "spec.egress[0].to[0].namespaceSelector.matchLabels.name",
            "linkerd",
        ),
        SeedValue("NetworkPolicy", "allow-linkerd", "spec.egress[0].ports[0].port", 4140),
        SeedValue("Namespace", "harmonyflow", "metadata.name", "harmonyflow"),
    ]


SEED_VALUES: tuple[SeedValue, ...] = tuple(
    _deployment() + _services() + _ingress() + _autoscaling_and_policies()
)

# Paths an overlay may change, as globs: `*` stays within one step, `**` spans any.
ALLOWED_OVERLAY_CHANGES: dict[str, tuple[str, ...]] = {
    "Deployment": (
        f"{CONTAINER}.env[name=DB_URL].value",
        f"{CONTAINER}.env[name=REDIS_URL].value",
        f"{CONTAINER}.env[name=AMQP_URLS].value",
        f"{CONTAINER}.env[name=LOG_LEVEL].value",
    ),
    "HorizontalPodAutoscaler": ("spec.behavior", "spec.behavior.**"),
    "Ingress": ("spec.rules[*].host", "spec.tls", "spec.tls**"),
    "NetworkPolicy": ("spec.egress[*].to[*].ipBlock.cidr",),
}
# Kinds an overlay may add: generated secrets and configuration only.
ADDABLE_KINDS = frozenset({"Secret", "ConfigMap"})


def check_seed_values(
    manifests: RenderedManifests, table: Iterable[SeedValue] = SEED_VALUES
) -> list[Finding]:
    findings = []
    for row in table:
        obj = manifests.find(row.kind, row.name)
        if obj is None:
            where = str(manifests.directory)
            findings.append(Finding(where, f"{row.kind}/{row.name}", "(object)", "missing"))
            continue
        actual = objectpath.lookup(obj.body, row.path)
        if actual != row.expected:
            shown = "nothing" if actual is objectpath.MISSING else repr(actual)
            problem = f"seed says {row.expected!r}, manifest has {shown}"
            findings.append(Finding(obj.source, obj.ref, row.path, problem))
    return findings


def check_overlay(base: RenderedManifests, overlay: RenderedManifests) -> list[Finding]:
    """Everything an overlay changed, added or dropped beyond what it may."""
    findings = []
    where = str(overlay.directory)
    for obj in base.objects:
        if overlay.find(obj.kind, obj.name) is None:
            findings.append(Finding(where, obj.ref, "(object)", "dropped by the overlay"))
    for obj in overlay.objects:
        original = base.find(obj.kind, obj.name)
        if original is None:
            if obj.kind not in ADDABLE_KINDS:
                findings.append(Finding(obj.source, obj.ref, "(object)", "added by the overlay"))
            continue
        for path, before, after in _differences(original.body, obj.body):
            if not overlay_may_change(obj.kind, path):
                problem = (
                    f"base has {_show(before)}, overlay has {_show(after)}; overlays may change "
                    "only addresses, secrets and HPA behaviour windows"
                )
                findings.append(Finding(where, obj.ref, path, problem))
    return findings


def _differences(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    old = dict(objectpath.flatten(before))
    new = dict(objectpath.flatten(after))
    changed = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, objectpath.MISSING), new.get(path, objectpath.MISSING)
        if a != b:
            changed.append((path, a, b))
    return changed


def overlay_may_change(kind: str, path: str) -> bool:
    """Whether an overlay may change the field at `path` (a flattened path) of `kind`."""
    return any(_glob_matches(pattern, path) for pattern in ALLOWED_OVERLAY_CHANGES.get(kind, ()))


def _glob_matches(pattern: str, path: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", r"[^.\]]*")
    return re.fullmatch(regex, path) is not None


def _show(value: Any) -> str:
    return "nothing" if value is objectpath.MISSING else repr(value)
