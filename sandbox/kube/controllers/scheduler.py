"""The scheduler: bind each pending pod to one node, or say why none fits.

Filters run in kube-scheduler's default order and a node reports only the first
one that rejects it: NodeUnschedulable, TaintToleration (a node whose Ready
condition is not True counts as carrying the matching not-ready / unreachable
NoSchedule taint, which is what TaintNodesByCondition gives upstream),
NodeAffinity (nodeSelector and required node affinity), NodeResourcesFit
(cpu, memory, pod count against allocatable), VolumeBinding and VolumeZone (the
pod's PersistentVolumeClaims, volumebinding.py) and PodTopologySpread (hard
constraints). Scoring is least-allocated plus, for ScheduleAnyway constraints,
PodTopologySpread's skew score (weight 2); ties are broken by a seeded
`random.Random`. A pod without topologySpreadConstraints gets the plugin's system
defaults (`defaultingType: System`: hostname maxSkew 3 and zone maxSkew 5, both
ScheduleAnyway) over the selector of the Services that select it and its controlling
ReplicaSet or StatefulSet, so replicas spread over nodes and zones as on a real cluster.

A pod that fits nowhere gets `PodScheduled=False, reason=Unschedulable` and a
FailedScheduling event with upstream's FitError message, and is retried when a
node, a bound pod, a claim, a volume or a class changes. Preemption is not emulated.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.kube.clock import Clock, rfc3339
from sandbox.kube.controllers import volumebinding
from sandbox.kube.controllers.nodeaffinity import node_selector_term_matches
from sandbox.kube.controllers.runtime import emit_event, namespaced_key
from sandbox.kube.errors import ApiError
from sandbox.kube.podutil import (
    HOSTNAME_LABEL,
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    ZONE_LABEL,
    condition_status,
    is_terminal,
    is_terminating,
    is_tolerated,
    with_condition,
)
from sandbox.kube.quantity import milli_value, parse_quantity, whole_value
from sandbox.kube.selectors import (
    LabelSelector,
    Requirement,
    selector_from_match,
    service_selector,
)
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]
PodKey = tuple[str, str]

DEFAULT_SCHEDULER = "default-scheduler"

# pkg/scheduler/util/pod_resources.go: what a container without requests counts as when scoring.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
DEFAULT_MAX_PODS = 110
MAX_NODE_SCORE = 100
SPREAD_SCORE_WEIGHT = 2  # the default profile weighs PodTopologySpread 2, NodeResourcesFit 1
# podtopologyspread.systemDefaultConstraints: (topologyKey, maxSkew), all ScheduleAnyway.
SYSTEM_DEFAULT_SPREAD = ((HOSTNAME_LABEL, 3), (ZONE_LABEL, 5))
# The controllers whose selector helper.DefaultSelector adds (no ReplicationControllers here).
CONTROLLER_RESOURCES = {
    ("apps/v1", "ReplicaSet"): "apps/replicasets",
    ("apps/v1", "StatefulSet"): "apps/statefulsets",
}

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_MISSING_LABEL = (
    "node(s) didn't match pod topology spread constraints (missing required label)"
)
REASON_TOO_MANY_PODS = "Too many pods"
CLAIMS = "persistentvolumeclaims"
VOLUMES = "persistentvolumes"
STORAGE_CLASSES = "storage.k8s.io/storageclasses"
VOLUME_RESOURCES = (CLAIMS, VOLUMES, STORAGE_CLASSES)
NO_NODES_MESSAGE = "no nodes available to schedule pods"


# ---- requests and room ----


@functools.lru_cache(maxsize=4096)
def milli_cpu(value: str | int | float) -> int:
    """CPU in millicores, rounded up as upstream's MilliValue: "0.1" -> 100."""
    return milli_value(parse_quantity(value))


@functools.lru_cache(maxsize=4096)
def memory_bytes(value: str | int | float) -> int:
    """Bytes, rounded up as upstream's Value: "1.5Ki" -> 1536."""
    return whole_value(parse_quantity(value))


@dataclass(frozen=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods
        )


def _container_requests(container: Mapping[str, Any], non_zero: bool) -> Resources:
    resources = container.get("resources") or {}
    # Defaulting copies limits into unset requests upstream; do the same here.
    requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    cpu = milli_cpu(requests["cpu"]) if "cpu" in requests else 0
    memory = memory_bytes(requests["memory"]) if "memory" in requests else 0
    if non_zero:
        cpu = cpu if "cpu" in requests else DEFAULT_MILLI_CPU_REQUEST
        memory = memory if "memory" in requests else DEFAULT_MEMORY_REQUEST
    return Resources(cpu, memory)


def pod_requests(pod: Mapping[str, Any], *, non_zero: bool = False) -> Resources:
    """Effective requests: max(sum of containers, each init container) plus one pod slot.

    `non_zero` counts containers without requests as 100m / 200Mi, as scoring does.

    >>> pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "250m"}}}, {}]}}
    >>> pod_requests(pod)
    Resources(milli_cpu=250, memory=0, pods=1)
    >>> pod_requests(pod, non_zero=True)
    Resources(milli_cpu=350, memory=419430400, pods=1)
    """
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or []:
        total = total + _container_requests(container, non_zero)
    cpu, memory = total.milli_cpu, total.memory
    for container in spec.get("initContainers") or []:
        init = _container_requests(container, non_zero)
        cpu, memory = max(cpu, init.milli_cpu), max(memory, init.memory)
    overhead = spec.get("overhead") or {}
    cpu += milli_cpu(overhead["cpu"]) if "cpu" in overhead else 0
    memory += memory_bytes(overhead["memory"]) if "memory" in overhead else 0
    return Resources(cpu, memory, 1)


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """status.allocatable (else capacity); a node that states nothing has room for 110 pods."""
    status = node.get("status") or {}
    amounts = status.get("allocatable") or status.get("capacity") or {}
    return Resources(
        milli_cpu(amounts["cpu"]) if "cpu" in amounts else 0,
        memory_bytes(amounts["memory"]) if "memory" in amounts else 0,
        whole_value(parse_quantity(amounts["pods"])) if "pods" in amounts else DEFAULT_MAX_PODS,
    )


# ---- taints and tolerations ----


def effective_taints(node: Mapping[str, Any]) -> list[KubeObject]:
    """spec.taints, plus the taints the node lifecycle controller keeps in step with the node
    (the not-ready / unreachable NoSchedule taint of a node whose Ready condition is not
    True, the unschedulable taint of a cordoned node), even before it has written them.

    >>> [t["key"] for t in effective_taints({"spec": {"unschedulable": True},
    ...     "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})]
    ['node.kubernetes.io/unreachable', 'node.kubernetes.io/unschedulable']
    """
    spec = node.get("spec") or {}
    taints = [dict(taint) for taint in spec.get("taints") or []]
    wanted = []
    ready = condition_status(node, "Ready")
    if ready != "True":
        wanted.append(UNREACHABLE_TAINT if ready == "Unknown" else NOT_READY_TAINT)
    if spec.get("unschedulable"):
        wanted.append(UNSCHEDULABLE_TAINT)
    for key in wanted:
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def untolerated_taint(
    pod: Mapping[str, Any], taints: Iterable[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The first NoSchedule/NoExecute taint the pod does not tolerate (PreferNoSchedule is soft)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not is_tolerated(
            tolerations, taint
        ):
            return taint
    return None


# ---- node affinity ----


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution (terms ORed)."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


# ---- resources ----


def resource_fit_reasons(
    pod: Mapping[str, Any], node: Mapping[str, Any], pods_on_node: Iterable[Mapping[str, Any]]
) -> list[str]:
    """NodeResourcesFit: every shortage, as "Too many pods", "Insufficient cpu", ...

    >>> node = {"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}
    >>> pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "600m"}}}]}}
    >>> resource_fit_reasons(pod, node, [pod])
    ['Insufficient cpu']
    """
    wanted = pod_requests(pod)
    used = Resources()
    for other in pods_on_node:
        used = used + pod_requests(other)
    room = node_allocatable(node)
    reasons = []
    if used.pods + 1 > room.pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if wanted.milli_cpu and used.milli_cpu + wanted.milli_cpu > room.milli_cpu:
        reasons.append("Insufficient cpu")
    if wanted.memory and used.memory + wanted.memory > room.memory:
        reasons.append("Insufficient memory")
    return reasons


def least_allocated_score(
    pod: Mapping[str, Any], node: Mapping[str, Any], pods_on_node: Iterable[Mapping[str, Any]]
) -> int:
    """NodeResourcesFit LeastAllocated: mean over cpu and memory of free share after placing.

    >>> node = {"status": {"allocatable": {"cpu": "1", "memory": "1000"}}}
    >>> pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "500m",
    ...                                                            "memory": "250"}}}]}}
    >>> least_allocated_score(pod, node, [])  # (50 + 75) // 2
    62
    """
    requested = pod_requests(pod, non_zero=True)
    for other in pods_on_node:
        requested = requested + pod_requests(other, non_zero=True)
    room = node_allocatable(node)

    def free_share(want: int, have: int) -> int:
        if have == 0 or want > have:
            return 0
        return (have - want) * MAX_NODE_SCORE // have

    return (
        free_share(requested.milli_cpu, room.milli_cpu) + free_share(requested.memory, room.memory)
    ) // 2


# ---- topology spread ----


@dataclass(frozen=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool
    selector: LabelSelector | None  # None (a null labelSelector) matches nothing
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_node_taints: bool = False
    self_match: bool = True
    system_default: bool = False  # from SYSTEM_DEFAULT_SPREAD, not the pod's spec


def default_spread_selector(
    pod: Mapping[str, Any],
    services: Iterable[Mapping[str, Any]],
    controller: Mapping[str, Any] | None,
) -> LabelSelector:
    """helper.DefaultSelector: what the system default spread constraints count.

    The selectors of the pod's namespace's Services that select it, merged, plus the
    requirements of its controlling ReplicaSet or StatefulSet (`controller`, already
    looked up by the caller from the pod's controller ownerReference).

    >>> pod = {"metadata": {"namespace": "ns", "labels": {"app": "web", "tier": "a"}}}
    >>> service = {"metadata": {"namespace": "ns"}, "spec": {"selector": {"app": "web"}}}
    >>> default_spread_selector(pod, [service], None).matches({"app": "web"})
    True
    >>> default_spread_selector(pod, [], None).empty
    True
    """
    metadata = pod.get("metadata") or {}
    namespace, labels = metadata.get("namespace"), metadata.get("labels") or {}
    requirements: list[Requirement] = []
    for service in services:
        selector = service_selector(service)
        if (service.get("metadata") or {}).get("namespace") == namespace and (
            selector is not None and selector.matches(labels)
        ):
            requirements.extend(selector.requirements)
    if controller is not None:
        owned = selector_from_match((controller.get("spec") or {}).get("selector"))
        if owned is not None:
            requirements.extend(owned.requirements)
    return LabelSelector(tuple(requirements))


def spread_constraints(
    pod: Mapping[str, Any], default_selector: LabelSelector | None = None
) -> list[SpreadConstraint]:
    """The pod's topologySpreadConstraints, with matchLabelKeys folded into the selector.

    A pod that declares none gets the system defaults over `default_selector` (see
    `default_spread_selector`); an empty default selector means no spreading at all.
    """
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    labels = metadata.get("labels") or {}
    declared = spec.get("topologySpreadConstraints") or []
    if not declared:
        if default_selector is None or default_selector.empty:
            return []
        return [
            SpreadConstraint(
                max_skew=max_skew,
                topology_key=key,
                hard=False,
                selector=default_selector,
                self_match=default_selector.matches(labels),
                system_default=True,
            )
            for key, max_skew in SYSTEM_DEFAULT_SPREAD
        ]
    result = []
    for raw in declared:
        base = selector_from_match(raw.get("labelSelector"))
        requirements = list(base.requirements) if base is not None else []
        for key in raw.get("matchLabelKeys") or []:
            if key in labels:
                requirements.append(Requirement(key, "in", (str(labels[key]),)))
        selector = LabelSelector(tuple(requirements))
        matches_self = base is not None and selector.matches(labels)
        result.append(
            SpreadConstraint(
                max_skew=int(raw.get("maxSkew", 1)),
                topology_key=str(raw.get("topologyKey", "")),
                hard=raw.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule",
                selector=selector if base is not None else None,
                min_domains=int(raw.get("minDomains") or 1),
                honor_node_affinity=raw.get("nodeAffinityPolicy", "Honor") == "Honor",
                honor_node_taints=raw.get("nodeTaintsPolicy", "Ignore") == "Honor",
                self_match=matches_self,
            )
        )
    return result


def spread_domain_counts(
    constraint: SpreadConstraint,
    pod: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    required_keys: Iterable[str] = (),
) -> dict[str, int]:
    """Matching pods per domain over the eligible nodes.

    A node is eligible when it carries every required topology key, passes the pod's node
    affinity (nodeAffinityPolicy Honor, the default) and, only with nodeTaintsPolicy Honor,
    its taints. With the default Ignore a cordoned node still makes its zone a domain.
    Terminating and terminal pods are not counted.
    """
    namespace = (pod.get("metadata") or {}).get("namespace")
    keys = {constraint.topology_key, *required_keys}
    counts: dict[str, int] = {}
    node_domain: dict[str, str] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if not all(key in labels for key in keys):
            continue
        if constraint.honor_node_affinity and not matches_node_affinity(pod, node):
            continue
        if constraint.honor_node_taints and untolerated_taint(pod, effective_taints(node)):
            continue
        domain = str(labels[constraint.topology_key])
        counts.setdefault(domain, 0)
        node_domain[(node.get("metadata") or {}).get("name", "")] = domain
    for other in pods:
        metadata = other.get("metadata") or {}
        node_name = (other.get("spec") or {}).get("nodeName")
        if node_name not in node_domain or metadata.get("namespace") != namespace:
            continue
        if is_terminating(other) or is_terminal(other):
            continue
        if constraint.selector is not None and constraint.selector.matches(metadata.get("labels")):
            counts[node_domain[node_name]] += 1
    return counts


def spread_skew_reason(
    constraint: SpreadConstraint, counts: Mapping[str, int], node: Mapping[str, Any]
) -> str | None:
    """PodTopologySpread Filter for one DoNotSchedule constraint and one candidate node.

    skew = matching pods in the node's domain + 1 (the pod itself, if it matches)
           - the global minimum over eligible domains (0 while fewer than minDomains exist).

    >>> c = SpreadConstraint(1, ZONE_LABEL, True, LabelSelector())
    >>> node = {"metadata": {"labels": {ZONE_LABEL: "a"}}}
    >>> spread_skew_reason(c, {"a": 1, "b": 1, "c": 0}, node)  # 1 + 1 - 0 > 1
    "node(s) didn't match pod topology spread constraints"
    """
    labels = (node.get("metadata") or {}).get("labels") or {}
    if constraint.topology_key not in labels:
        return REASON_SPREAD_MISSING_LABEL
    minimum = min(counts.values()) if counts else 0
    if len(counts) < constraint.min_domains:
        minimum = 0
    in_domain = counts.get(str(labels[constraint.topology_key]), 0)
    skew = in_domain + (1 if constraint.self_match else 0) - minimum
    return REASON_SPREAD if skew > constraint.max_skew else None


def spread_scores(
    constraints: Sequence[SpreadConstraint],
    pod: Mapping[str, Any],
    candidates: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> dict[str, int]:
    """PodTopologySpread Score for ScheduleAnyway constraints, normalised to 0..100.

    raw = sum over constraints of (matching pods in the node's domain * log(domains + 2)
    + maxSkew - 1); the fewest matching pods scores highest. A candidate without one of
    the topology keys scores 0, except under the system defaults, where that constraint
    is skipped for it (upstream's requireAllTopologies is false then).
    """
    soft = [c for c in constraints if not c.hard]
    names = [(n.get("metadata") or {}).get("name", "") for n in candidates]
    if not soft:
        return dict.fromkeys(names, 0)
    raw: dict[str, float | None] = {}
    per_constraint = [spread_domain_counts(c, pod, nodes, pods) for c in soft]
    for name, node in zip(names, candidates, strict=True):
        labels = (node.get("metadata") or {}).get("labels") or {}
        if not all(c.topology_key in labels or c.system_default for c in soft):
            raw[name] = None
            continue
        total = 0.0
        for constraint, counts in zip(soft, per_constraint, strict=True):
            if constraint.topology_key not in labels:
                continue
            weight = math.log(len(counts) + 2)
            count = counts.get(str(labels[constraint.topology_key]), 0)
            total += count * weight + (constraint.max_skew - 1)
        raw[name] = float(round(total))
    valid = [value for value in raw.values() if value is not None]
    highest, lowest = (max(valid), min(valid)) if valid else (0.0, 0.0)
    scores = {}
    for name, value in raw.items():
        if value is None:
            scores[name] = 0
        elif highest == 0:
            scores[name] = MAX_NODE_SCORE
        else:
            scores[name] = int(MAX_NODE_SCORE * (highest + lowest - value) // highest)
    return scores


# ---- the decision ----


def needs_scheduling(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not spec.get("schedulingGates")
        and not is_terminating(pod)
        and not is_terminal(pod)
    )


def filter_node(
    pod: Mapping[str, Any],
    node: Mapping[str, Any],
    pods_on_node: Sequence[Mapping[str, Any]],
    hard_spread: Sequence[tuple[SpreadConstraint, Mapping[str, int]]],
    claims: volumebinding.PodClaims | None = None,
) -> list[str]:
    """Why `node` cannot take `pod` (empty when it can); only the first failing filter speaks."""
    spec = node.get("spec") or {}
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if spec.get("unschedulable") and not is_tolerated(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return [REASON_UNSCHEDULABLE]
    taint = untolerated_taint(pod, effective_taints(node))
    if taint is not None:
        return [
            f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
        ]
    if not matches_node_affinity(pod, node):
        return [REASON_NODE_AFFINITY]
    shortages = resource_fit_reasons(pod, node, pods_on_node)
    if shortages:
        return shortages
    volume_reasons = volumebinding.filter_node(node, claims) if claims is not None else []
    if volume_reasons:
        return volume_reasons
    for constraint, counts in hard_spread:
        reason = spread_skew_reason(constraint, counts, node)
        if reason is not None:
            return [reason]
    return []


def fit_error_message(node_count: int, reasons_by_node: Mapping[str, Sequence[str]]) -> str:
    """FitError.Error(): reasons counted over nodes, "count reason" strings sorted.

    >>> fit_error_message(3, {"a": [REASON_UNSCHEDULABLE], "b": [REASON_SPREAD],
    ...                       "c": [REASON_SPREAD]})
    "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints."
    """  # noqa: E501
    if node_count == 0:
        return NO_NODES_MESSAGE
    histogram = Counter(reason for reasons in reasons_by_node.values() for reason in reasons)
    parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
    return f"0/{node_count} nodes are available: {', '.join(parts)}."


@dataclass(frozen=True)
class ScheduleDecision:
    node_name: str | None
    message: str = ""
    scores: dict[str, int] = field(default_factory=dict)
    # claims waiting for their first consumer: selected-node first, the pod bound after
    waiting_claims: tuple[Mapping[str, Any], ...] = ()


def schedule(
    pod: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    rng: random.Random,
    default_selector: LabelSelector | None = None,
    volumes: volumebinding.VolumeFacts | None = None,
) -> ScheduleDecision:
    """Pick a node for `pod` among `nodes`, given every pod in the cluster.

    `default_selector` is what the system default spread constraints count when the pod
    declares none (`default_spread_selector`); `volumes` the claims, volumes and classes
    the volume plugins read (volumebinding.py; None: the pod has no claims).

    Worked example (reference 4.5): zones a, b, c with two nodes each, zone c cordoned,
    pods of app=web one in a and one in b, a third evicted from c and pending again with
    `maxSkew: 1, topologyKey: zone, DoNotSchedule`. With the default nodeTaintsPolicy
    Ignore zone c is still a domain holding 0 pods, so placing in a or b gives skew
    1 + 1 - 0 = 2 > 1, and c's nodes are unschedulable:
    "0/6 nodes are available: 2 node(s) were unschedulable, 4 node(s) didn't match pod
    topology spread constraints."
    """
    claims: volumebinding.PodClaims | None = None
    if volumes is not None and nodes:
        rejection, claims = volumebinding.pre_filter(pod, volumes)
        if rejection:  # PreFilter: UnschedulableAndUnresolvable on every node
            return ScheduleDecision(None, f"0/{len(nodes)} nodes are available: {rejection}.")
    bound = [p for p in pods if (p.get("spec") or {}).get("nodeName") and not is_terminal(p)]
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for other in bound:
        by_node.setdefault(other["spec"]["nodeName"], []).append(other)
    constraints = spread_constraints(pod, default_selector)
    hard = [c for c in constraints if c.hard]
    hard_keys = [c.topology_key for c in hard]
    hard_spread = [(c, spread_domain_counts(c, pod, nodes, bound, hard_keys)) for c in hard]
    feasible: list[Mapping[str, Any]] = []
    reasons: dict[str, list[str]] = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        failed = filter_node(pod, node, by_node.get(name, []), hard_spread, claims)
        if failed:
            reasons[name] = failed
        else:
            feasible.append(node)
    if not feasible:
        return ScheduleDecision(None, fit_error_message(len(nodes), reasons))
    spread = spread_scores(constraints, pod, feasible, nodes, bound)
    scores = {}
    for node in feasible:
        name = node["metadata"]["name"]
        scores[name] = (
            least_allocated_score(pod, node, by_node.get(name, []))
            + SPREAD_SCORE_WEIGHT * spread[name]
        )
    best = max(scores.values())
    winners = sorted(name for name, score in scores.items() if score == best)
    waiting = claims.waiting if claims is not None else ()
    return ScheduleDecision(rng.choice(winners), "", scores, waiting)


def node_change_matters(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a node change can make a pending pod schedulable (heartbeats alone cannot)."""
    if old is None:
        return True

    def shape(node: Mapping[str, Any]) -> tuple[Any, ...]:
        status = node.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        return (
            node.get("spec"),
            (node.get("metadata") or {}).get("labels"),
            status.get("allocatable"),
            status.get("capacity"),
            conditions,
        )

    return shape(old) != shape(new)


def bound_pod_change_matters(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a change to a bound pod can free room or change spreading counts."""
    if old is None:
        return True

    def shape(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        metadata = pod.get("metadata") or {}
        return (
            (pod.get("spec") or {}).get("nodeName"),
            metadata.get("labels"),
            metadata.get("deletionTimestamp"),
            (pod.get("status") or {}).get("phase"),
        )

    return shape(old) != shape(new)


# ---- the controller ----


class Scheduler:
    """Binds pending pods (schedulerName default-scheduler) to nodes."""

    name = "scheduler"

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ControlPlaneSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.rng = rng or random.Random()
        self._pending: set[PodKey] = set()

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == "nodes":
            if change.type == DELETED or node_change_matters(change.old, change.object):
                return sorted(self._pending)
            return []
        if change.resource in VOLUME_RESOURCES:  # a claim bound, a volume or class appeared
            return sorted(self._pending)
        if change.resource != "pods":
            return []
        metadata = change.object.get("metadata") or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        if change.type != DELETED and needs_scheduling(change.object):
            return [key]
        self._pending.discard(key)
        if not (change.object.get("spec") or {}).get("nodeName") and (
            change.old is None or not (change.old.get("spec") or {}).get("nodeName")
        ):
            return []
        if change.type == DELETED or bound_pod_change_matters(change.old, change.object):
            return sorted(self._pending)
        return []

    def all_keys(self) -> Iterable[Hashable]:
        keys = [
            (p["metadata"]["namespace"], p["metadata"]["name"])
            for p in self.store.snapshot("pods")
            if needs_scheduling(p)
        ]
        self._pending = set(keys)
        return keys

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        pod = self.store.find("pods", namespace, name)
        if pod is None or not needs_scheduling(pod):
            self._pending.discard((namespace, name))
            return None
        decision = schedule(
            pod,
            self.store.snapshot("nodes"),
            self.store.snapshot("pods"),
            self.rng,
            default_spread_selector(pod, self.store.snapshot("services"), self._controller(pod)),
            self._volume_facts(pod),
        )
        if decision.node_name is None:
            self._pending.add((namespace, name))
            self._mark_unschedulable(pod, decision.message)
            return None
        if decision.waiting_claims:  # PreBind: provision in the node's zone, bind after
            self._pending.add((namespace, name))
            self._select_node(namespace, decision.waiting_claims, decision.node_name)
            return None
        self._pending.discard((namespace, name))
        self._bind(pod, decision.node_name)
        return None

    def _volume_facts(self, pod: KubeObject) -> volumebinding.VolumeFacts | None:
        if not volumebinding.claim_names(pod):
            return None
        namespace = pod["metadata"]["namespace"]
        return volumebinding.VolumeFacts(
            {c["metadata"]["name"]: c for c in self.store.snapshot(CLAIMS, namespace)},
            {v["metadata"]["name"]: v for v in self.store.snapshot(VOLUMES)},
            {c["metadata"]["name"]: c for c in self.store.snapshot(STORAGE_CLASSES)},
        )

    def _select_node(
        self, namespace: str, claims: Sequence[Mapping[str, Any]], node_name: str
    ) -> None:
        """`volume.kubernetes.io/selected-node` on each waiting claim (BindPodVolumes)."""

        def annotate(obj: KubeObject) -> None:
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[volumebinding.SELECTED_NODE_ANNOTATION] = node_name

        for claim in volumebinding.needs_selected_node(claims, node_name):
            self.store.mutate(CLAIMS, namespace, claim, annotate)

    def _controller(self, pod: KubeObject) -> KubeObject | None:
        """The pod's controlling ReplicaSet or StatefulSet, looked up by name as upstream."""
        metadata = pod["metadata"]
        for owner in metadata.get("ownerReferences") or []:
            if owner.get("controller"):
                key = (str(owner.get("apiVersion", "")), str(owner.get("kind", "")))
                resource = CONTROLLER_RESOURCES.get(key)
                if resource is None:
                    return None
                return self.store.find(resource, metadata.get("namespace", ""), owner["name"])
        return None

    def _bind(self, pod: KubeObject, node_name: str) -> None:
        metadata = pod["metadata"]
        uid = metadata["uid"]

        def set_node(obj: KubeObject) -> None:
            if obj["metadata"]["uid"] != uid or obj["spec"].get("nodeName"):
                raise ApiError(409, "Conflict", f"pod {metadata['name']} changed while binding")
            obj["spec"]["nodeName"] = node_name

        self.store.mutate("pods", metadata["namespace"], metadata["name"], set_node)
        now = rfc3339(self.clock.now())
        scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None}
        self._set_condition(pod, scheduled, now)
        emit_event(
            self.store,
            pod,
            "Scheduled",
            f"Successfully assigned {metadata['namespace']}/{metadata['name']} to {node_name}",
            component=DEFAULT_SCHEDULER,
        )

    def _mark_unschedulable(self, pod: KubeObject, message: str) -> None:
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "reason": "Unschedulable",
            "message": message,
        }
        self._set_condition(pod, condition, rfc3339(self.clock.now()))
        emit_event(
            self.store,
            pod,
            "FailedScheduling",
            message,
            event_type="Warning",
            component=DEFAULT_SCHEDULER,
        )

    def _set_condition(self, pod: KubeObject, condition: KubeObject, now: str) -> None:
        def change(obj: KubeObject) -> None:
            status = obj.setdefault("status", {})
            status["conditions"] = with_condition(status.get("conditions") or [], condition, now)

        metadata = pod["metadata"]
        self.store.mutate(
            "pods", metadata["namespace"], metadata["name"], change, subresource="status"
        )
