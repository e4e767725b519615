"""Pure decisions of the ReplicaSet controller, after `pkg/controller/replicaset`.

Mirrors `replica_set.go` (`manageReplicas`, `slowStartBatch`, `getPodsToDelete`),
`replica_set_utils.go` (`calculateStatus`), `controller_utils.go`
(`IsPodActive`, `ActivePodsWithRanks.Less`, `GetPodFromTemplate`, the
ControllerRef manager's claim rules); readiness (`IsPodReady`, `IsPodAvailable`) is
`sandbox.kube.podutil`'s. Objects are plain API JSON as the store
returns them; nothing here reads a clock, draws a random number or writes.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.kube.clock import parse_time, rfc3339
from sandbox.kube.podutil import is_pod_available, is_pod_ready, pod_ready_time
from sandbox.kube.selectors import LabelSelector

KubeObject = dict[str, Any]

POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
BURST_REPLICAS = 500  # kube-controller-manager's burstReplicas for ReplicaSets
SLOW_START_INITIAL_BATCH_SIZE = 1
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}  # a Go map: missing reads as 0
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


# ---- pods: active, ready, available ----


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """`controller.IsPodActive`: not Succeeded/Failed and not being deleted.

    A pod stops counting the moment its deletionTimestamp is set, so its
    replacement is created while it is still shutting down.

    >>> is_pod_active({"metadata": {}, "status": {"phase": "Running"}})
    True
    >>> is_pod_active({"metadata": {"deletionTimestamp": "2026-01-01T00:00:30Z"},
    ...                "status": {"phase": "Running"}})
    False
    """
    phase = (pod.get("status") or {}).get("phase")
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp") is not None
    return phase not in ("Succeeded", "Failed") and not deleting


def filter_active_pods(pods: Iterable[KubeObject]) -> list[KubeObject]:
    """`controller.FilterActivePods`, order kept."""
    return [pod for pod in pods if is_pod_active(pod)]


def seconds_until_available(
    pods: Iterable[Mapping[str, Any]], min_ready_seconds: int, now: datetime
) -> float | None:
    """How long until the first ready-but-not-yet-available pod turns available.

    The ReplicaSet controller requeues itself for that moment (upstream: after
    minReadySeconds), because nothing else would make it look again.

    >>> pod = {"status": {"conditions": [{"type": "Ready", "status": "True",
    ...     "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    >>> seconds_until_available([pod], 10, parse_time("2026-01-01T00:00:04Z"))
    6.0
    """
    if min_ready_seconds <= 0:
        return None
    waits = []
    for pod in pods:
        ready_since = pod_ready_time(pod)
        if ready_since is None or is_pod_available(pod, min_ready_seconds, now):
            continue
        waits.append(max(0.0, min_ready_seconds - (now - ready_since).total_seconds()))
    return min(waits) if waits else None


# ---- owner references and claiming ----


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """`metav1.GetControllerOf`: the ownerReference with controller: true."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def new_controller_ref(owner: Mapping[str, Any]) -> KubeObject:
    """`metav1.NewControllerRef`, in upstream's JSON key order.

    >>> new_controller_ref({"apiVersion": "apps/v1", "kind": "ReplicaSet",
    ...                     "metadata": {"name": "web-5d59d67564", "uid": "u1"}})["kind"]
    'ReplicaSet'
    """
    metadata = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass(frozen=True)
class Claim:
    """What `ControllerRefManager.ClaimObject` decides for a list of candidates."""

    owned: tuple[KubeObject, ...]  # already ours and matching, plus the adopted ones
    adopt: tuple[KubeObject, ...]  # orphans that match: add our controller reference
    release: tuple[KubeObject, ...]  # ours but no longer matching: drop our reference


def claim_objects(
    owner: Mapping[str, Any], candidates: Iterable[KubeObject], selector: LabelSelector
) -> Claim:
    """Adopt matching orphans, release non-matching children, ignore others' children.

    An owner being deleted neither adopts nor releases; an orphan being deleted
    is not adopted.

    >>> from sandbox.kube.selectors import parse_label_selector
    >>> rs = {"metadata": {"uid": "rs1", "namespace": "d"}}
    >>> orphan = {"metadata": {"name": "p", "namespace": "d", "labels": {"app": "web"}}}
    >>> [p["metadata"]["name"] for p in claim_objects(rs, [orphan],
    ...     parse_label_selector("app=web")).adopt]
    ['p']
    """
    owner_meta = owner.get("metadata") or {}
    owner_deleting = owner_meta.get("deletionTimestamp") is not None
    owned: list[KubeObject] = []
    adopt: list[KubeObject] = []
    release: list[KubeObject] = []
    for obj in candidates:
        metadata = obj.get("metadata") or {}
        matches = selector.matches(metadata.get("labels"))
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_meta.get("uid"):
                continue
            if matches:
                owned.append(obj)
            elif not owner_deleting:
                release.append(obj)
            continue
        if owner_deleting or not matches or metadata.get("deletionTimestamp") is not None:
            continue
        if owner_meta.get("namespace") and owner_meta.get("namespace") != metadata.get("namespace"):
            continue
        adopt.append(obj)
        owned.append(obj)
    return Claim(tuple(owned), tuple(adopt), tuple(release))


def with_controller_ref(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> KubeObject:
    """A copy of `obj` adopted by `owner` (its controller reference appended)."""
    adopted = copy.deepcopy(dict(obj))
    refs = adopted.setdefault("metadata", {}).setdefault("ownerReferences", [])
    refs.append(new_controller_ref(owner))
    return adopted


def without_owner_ref(obj: Mapping[str, Any], owner_uid: str) -> KubeObject:
    """A copy of `obj` released by the owner with `owner_uid`."""
    released = copy.deepcopy(dict(obj))
    metadata = released.setdefault("metadata", {})
    refs = [ref for ref in metadata.get("ownerReferences") or [] if ref.get("uid") != owner_uid]
    if refs:
        metadata["ownerReferences"] = refs
    else:
        metadata.pop("ownerReferences", None)
    return released


def indirectly_related_pods(
    rs: Mapping[str, Any],
    replicasets: Iterable[Mapping[str, Any]],
    pods: Iterable[KubeObject],
    selector_of: Mapping[str, LabelSelector],
) -> list[KubeObject]:
    """`getIndirectlyRelatedPods`: pods of every ReplicaSet under the same controller.

    `selector_of` maps a ReplicaSet name to its parsed selector. A ReplicaSet
    with no controller has no related pods (every pod then ranks 0 below).
    """
    ref = controller_ref(rs)
    if ref is None:
        return []
    pods = list(pods)
    seen: set[str] = set()
    related: list[KubeObject] = []
    for sibling in replicasets:
        sibling_ref = controller_ref(sibling)
        if sibling_ref is None or sibling_ref.get("uid") != ref.get("uid"):
            continue
        selector = selector_of.get((sibling.get("metadata") or {}).get("name", ""))
        if selector is None:
            continue
        for pod in pods:
            uid = (pod.get("metadata") or {}).get("uid", "")
            if uid in seen or not selector.matches((pod.get("metadata") or {}).get("labels")):
                continue
            seen.add(uid)
            related.append(pod)
    return related


# ---- which pods go first on scale-down ----


def pod_deletion_cost(pod: Mapping[str, Any]) -> int:
    """`controller.kubernetes.io/pod-deletion-cost` as an int32; absent or invalid is 0.

    >>> pod_deletion_cost({"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: "-5"}}})
    -5
    >>> pod_deletion_cost({"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: "x"}}})
    0
    """
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(POD_DELETION_COST_ANNOTATION)
    if value is None:
        return 0
    try:
        cost = int(str(value), 10)
    except ValueError:
        return 0
    return cost if _INT32_MIN <= cost <= _INT32_MAX else 0


def max_container_restarts(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(regular, sidecar) maximum restart counts, compared in that order."""
    status = pod.get("status") or {}
    regular = max(
        (int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or []), default=0
    )
    sidecars = {
        c.get("name")
        for c in (pod.get("spec") or {}).get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    sidecar = max(
        (
            int(c.get("restartCount", 0))
            for c in status.get("initContainerStatuses") or []
            if c.get("name") in sidecars
        ),
        default=0,
    )
    return regular, sidecar


def _created(pod: Mapping[str, Any]) -> datetime | None:
    stamp = (pod.get("metadata") or {}).get("creationTimestamp")
    return parse_time(stamp) if stamp else None


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """Upstream `afterOrZero`: a zero time counts as after any other."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank(moment: datetime, now: datetime) -> int:
    delta = now - moment
    nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    return int(math.log2(nanos)) if nanos > 0 else -1


def _newer_first(
    t1: datetime | None, t2: datetime | None, uid1: str, uid2: str, now: datetime | None
) -> bool:
    """LogarithmicScaleDown: compare log2-nanosecond age buckets, ties by uid."""
    if now is None or t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return uid1 < uid2
    return diff < 0


@dataclass(frozen=True)
class RankedPod:
    pod: KubeObject
    rank: int  # active related pods on the same node


def active_pods_with_ranks_less(a: RankedPod, b: RankedPod, now: datetime | None) -> bool:
    """`ActivePodsWithRanks.Less`: True when `a` should be deleted before `b`.

    1. unassigned < assigned; 2. Pending < Unknown < Running; 3. not ready <
    ready; 4. lower pod-deletion-cost; 5. more co-located pods (higher rank);
    6. more recently ready; 7. more restarts; 8. newer. Times 6 and 8 compare
    in log2 buckets of their age (LogarithmicScaleDown, on since 1.22), ties
    broken by uid.

    >>> unassigned = RankedPod({"spec": {}, "status": {"phase": "Pending"}}, 0)
    >>> running = RankedPod({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}, 0)
    >>> active_pods_with_ranks_less(unassigned, running, None)
    True
    """
    pa, pb = a.pod, b.pod
    node_a = (pa.get("spec") or {}).get("nodeName") or ""
    node_b = (pb.get("spec") or {}).get("nodeName") or ""
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    phase_a = _PHASE_ORDINAL.get((pa.get("status") or {}).get("phase", ""), 0)
    phase_b = _PHASE_ORDINAL.get((pb.get("status") or {}).get("phase", ""), 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    ready_a, ready_b = is_pod_ready(pa), is_pod_ready(pb)
    if ready_a != ready_b:
        return not ready_a
    cost_a, cost_b = pod_deletion_cost(pa), pod_deletion_cost(pb)
    if cost_a != cost_b:
        return cost_a < cost_b
    if a.rank != b.rank:
        return a.rank > b.rank
    uid_a = (pa.get("metadata") or {}).get("uid", "")
    uid_b = (pb.get("metadata") or {}).get("uid", "")
    if ready_a and ready_b:
        ready_time_a, ready_time_b = pod_ready_time(pa), pod_ready_time(pb)
        if ready_time_a != ready_time_b:
            return _newer_first(ready_time_a, ready_time_b, uid_a, uid_b, now)
    restarts_a, restarts_b = max_container_restarts(pa), max_container_restarts(pb)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    created_a, created_b = _created(pa), _created(pb)
    if created_a != created_b:
        return _newer_first(created_a, created_b, uid_a, uid_b, now)
    return False


def rank_pods_for_deletion(
    pods: Sequence[KubeObject], related_pods: Iterable[KubeObject], now: datetime | None
) -> list[KubeObject]:
    """`pods` sorted so that the first ones are the first to delete.

    The rank of a pod is the number of active related pods on its node
    (`getPodsRankedByRelatedPodsOnSameNode`), so a doubled-up node loses a pod first.
    """
    on_node: dict[str, int] = {}
    for pod in related_pods:
        if is_pod_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [
        RankedPod(pod, on_node.get((pod.get("spec") or {}).get("nodeName") or "", 0))
        for pod in pods
    ]

    def compare(a: RankedPod, b: RankedPod) -> int:
        if active_pods_with_ranks_less(a, b, now):
            return -1
        if active_pods_with_ranks_less(b, a, now):
            return 1
        return 0

    return [item.pod for item in sorted(ranked, key=functools.cmp_to_key(compare))]


def get_pods_to_delete(
    filtered_pods: Sequence[KubeObject],
    related_pods: Iterable[KubeObject],
    diff: int,
    now: datetime | None,
) -> list[KubeObject]:
    """`getPodsToDelete`: the `diff` lowest-ranked pods; no sorting when all go.

    >>> ready = [{"type": "Ready", "status": "True"}]
    >>> pods = [{"metadata": {"name": "ready"}, "spec": {"nodeName": "n"},
    ...          "status": {"phase": "Running", "conditions": ready}},
    ...         {"metadata": {"name": "starting"}, "spec": {"nodeName": "n"},
    ...          "status": {"phase": "Running"}}]
    >>> [p["metadata"]["name"] for p in get_pods_to_delete(pods, pods, 1, None)]
    ['starting']
    """
    if diff < len(filtered_pods):
        return rank_pods_for_deletion(filtered_pods, related_pods, now)[:diff]
    return list(filtered_pods[:diff])


# ---- creating pods ----


def slow_start_batches(
    count: int, initial_batch_size: int = SLOW_START_INITIAL_BATCH_SIZE
) -> list[int]:
    """`slowStartBatch` sizes: 1, 2, 4, … until `count` pods are asked for.

    A failure in one batch stops the later ones, so a broken template costs
    one failed create, not `count`.

    >>> slow_start_batches(10)
    [1, 2, 4, 3]
    >>> slow_start_batches(0)
    []
    """
    batches = []
    remaining = count
    size = min(remaining, initial_batch_size)
    while size > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


def pod_from_template(rs: Mapping[str, Any]) -> KubeObject:
    """`GetPodFromTemplate`: labels, annotations, finalizers and spec of the template,
    `generateName: <rs>-`, and a controller reference to the ReplicaSet.

    >>> pod = pod_from_template({"apiVersion": "apps/v1", "kind": "ReplicaSet",
    ...     "metadata": {"name": "web-5d59d67564", "namespace": "default", "uid": "u1"},
    ...     "spec": {"template": {"metadata": {"labels": {"app": "web"}},
    ...                           "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    >>> pod["metadata"]["generateName"], pod["metadata"]["labels"]
    ('web-5d59d67564-', {'app': 'web'})
    """
    metadata = rs.get("metadata") or {}
    template = (rs.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    pod_meta: KubeObject = {
        "generateName": f"{metadata.get('name', '')}-",
        "namespace": metadata.get("namespace", "default"),
    }
    for key in ("labels", "annotations", "finalizers"):
        if template_meta.get(key):
            pod_meta[key] = copy.deepcopy(template_meta[key])
    pod_meta["ownerReferences"] = [new_controller_ref(rs)]
    return {"metadata": pod_meta, "spec": copy.deepcopy(template.get("spec") or {})}


@dataclass(frozen=True)
class ReplicaDiff:
    """What `manageReplicas` does: create this many pods, or delete these."""

    create: int = 0
    delete: tuple[KubeObject, ...] = ()


def manage_replicas(
    rs: Mapping[str, Any],
    filtered_pods: Sequence[KubeObject],
    related_pods: Iterable[KubeObject],
    now: datetime | None,
) -> ReplicaDiff:
    """Create or delete to reach `spec.replicas`, at most `BURST_REPLICAS` at a time.

    >>> rs = {"spec": {"replicas": 3}}
    >>> manage_replicas(rs, [], [], None)
    ReplicaDiff(create=3, delete=())
    """
    wanted = int((rs.get("spec") or {}).get("replicas", 1))
    diff = len(filtered_pods) - wanted
    if diff < 0:
        return ReplicaDiff(create=min(-diff, BURST_REPLICAS))
    if diff > 0:
        doomed = get_pods_to_delete(filtered_pods, related_pods, min(diff, BURST_REPLICAS), now)
        return ReplicaDiff(delete=tuple(doomed))
    return ReplicaDiff()


# ---- status ----


def _labels_superset(labels: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    labels = labels or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def calculate_status(
    rs: Mapping[str, Any],
    filtered_pods: Iterable[Mapping[str, Any]],
    now: datetime,
    manage_replicas_error: str | None = None,
) -> KubeObject:
    """`calculateStatus` plus the observedGeneration `updateReplicaSetStatus` sets.

    `replicas` is always present (it is not omitempty in apps/v1); the other
    counters are left out when zero. A create/delete error raises a
    ReplicaFailure condition (FailedCreate / FailedDelete); success clears it.

    >>> rs = {"metadata": {"generation": 2}, "spec": {"replicas": 2, "template":
    ...       {"metadata": {"labels": {"app": "web"}}}}, "status": {}}
    >>> pending = {"metadata": {"labels": {"app": "web"}}, "status": {"phase": "Pending"}}
    >>> calculate_status(rs, [pending], parse_time("2026-01-01T00:00:00Z"))
    {'replicas': 1, 'fullyLabeledReplicas': 1, 'observedGeneration': 2}
    """
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds", 0) or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    pods = list(filtered_pods)
    fully_labeled = ready = available = 0
    for pod in pods:
        if _labels_superset((pod.get("metadata") or {}).get("labels"), template_labels):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    conditions = [dict(c) for c in (rs.get("status") or {}).get("conditions") or []]
    failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if manage_replicas_error is not None and failure is None:
        diff = len(pods) - int(spec.get("replicas", 1))
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "lastTransitionTime": rfc3339(now),
                "reason": reason,
                "message": manage_replicas_error,
            }
        )
    elif manage_replicas_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    status: KubeObject = {"replicas": len(pods)}
    counters = {
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int((rs.get("metadata") or {}).get("generation", 0) or 0),
    }
    status.update({key: value for key, value in counters.items() if value})
    if conditions:
        status["conditions"] = conditions
    return status
