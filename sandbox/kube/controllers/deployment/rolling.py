"""The RollingUpdate strategy's decisions: upstream's `pkg/controller/deployment/rolling.go`
(`reconcileNewReplicaSet`, `reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`,
`scaleDownOldReplicaSetsForRollingUpdate`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sandbox.kube.controllers.deployment.util import (
    KubeObject,
    ScaleAction,
    get_available_replica_count_for_replicasets,
    get_replica_count_for_replicasets,
    max_unavailable,
    name_of,
    new_rs_new_replicas,
    sort_by_creation,
    spec_replicas,
    status_int,
)


def _apply(rss: Sequence[KubeObject], actions: Iterable[ScaleAction]) -> list[KubeObject]:
    sizes = {action.rs_name: action.replicas for action in actions}
    out = []
    for rs in rss:
        resized = rs
        if name_of(rs) in sizes:
            resized = copy.deepcopy(rs)
            resized.setdefault("spec", {})["replicas"] = sizes[name_of(rs)]
        out.append(resized)
    return out


def reconcile_new_replicaset(
    all_rss: Sequence[KubeObject], new_rs: KubeObject, d: Mapping[str, Any]
) -> ScaleAction | None:
    """`reconcileNewReplicaSet`: scale the new RS down to, or up towards, `spec.replicas`.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 2}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 1}}
    >>> reconcile_new_replicaset([old, new], new, d)
    ScaleAction(rs_name='new', replicas=2, previous=1)
    """
    current, wanted = spec_replicas(new_rs), spec_replicas(d)
    if current == wanted:
        return None
    if current > wanted:
        return ScaleAction(name_of(new_rs), wanted, current)
    target = new_rs_new_replicas(d, all_rss, new_rs)
    return ScaleAction(name_of(new_rs), target, current) if target != current else None


def cleanup_unhealthy_replicas(
    old_rss: Sequence[KubeObject], d: Mapping[str, Any], max_cleanup_count: int
) -> list[ScaleAction] | None:
    """`cleanupUnhealthyReplicas`: drop old RSs' unavailable replicas, oldest RS first.

    None when an RS reports more available than it wants (a stale status):
    upstream errors out of the whole scale-down pass then, and so do we.

    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 3},
    ...        "status": {"availableReplicas": 1}}
    >>> cleanup_unhealthy_replicas([old], {}, 1)
    [ScaleAction(rs_name='old', replicas=2, previous=3)]
    """
    actions = []
    total = 0
    for rs in sort_by_creation(old_rss):
        if total >= max_cleanup_count:
            break
        replicas, available = spec_replicas(rs), status_int(rs, "availableReplicas")
        if replicas in (0, available):
            continue
        if available > replicas:
            return None
        count = min(max_cleanup_count - total, replicas - available)
        actions.append(ScaleAction(name_of(rs), replicas - count, replicas))
        total += count
    return actions


def scale_down_old_replicasets_for_rolling_update(
    all_rss: Sequence[KubeObject], old_rss: Sequence[KubeObject], d: Mapping[str, Any]
) -> list[ScaleAction]:
    """`scaleDownOldReplicaSetsForRollingUpdate`: keep Σ available ≥ minAvailable.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 3},
    ...        "status": {"availableReplicas": 3}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 1}, "status": {}}
    >>> scale_down_old_replicasets_for_rolling_update([old, new], [old], d)
    [ScaleAction(rs_name='old', replicas=2, previous=3)]
    """
    minimum = spec_replicas(d) - max_unavailable(d)
    available = get_available_replica_count_for_replicasets(all_rss)
    if available <= minimum:
        return []
    wanted = available - minimum
    actions = []
    total = 0
    for rs in sort_by_creation(old_rss):
        if total >= wanted:
            break
        replicas = spec_replicas(rs)
        if replicas == 0:
            continue
        count = min(replicas, wanted - total)
        actions.append(ScaleAction(name_of(rs), replicas - count, replicas))
        total += count
    return actions


def reconcile_old_replicasets(
    all_rss: Sequence[KubeObject],
    old_rss: Sequence[KubeObject],
    new_rs: KubeObject,
    d: Mapping[str, Any],
) -> list[ScaleAction]:
    """`reconcileOldReplicaSets`: unhealthy old replicas first, then by minAvailable.

    maxScaledDown = Σ spec - minAvailable - (new spec - new available); nothing
    happens unless it is positive, so unavailable new pods never let old ones go.

    >>> d = {"spec": {"replicas": 3, "strategy": {"type": "RollingUpdate",
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}
    >>> old = {"metadata": {"name": "old"}, "spec": {"replicas": 2},
    ...        "status": {"availableReplicas": 2}}
    >>> new = {"metadata": {"name": "new"}, "spec": {"replicas": 2}, "status": {}}
    >>> reconcile_old_replicasets([old, new], [old], new, d)
    []
    """
    if get_replica_count_for_replicasets(old_rss) == 0:
        return []
    all_pods = get_replica_count_for_replicasets(all_rss)
    minimum = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas")
    max_scaled_down = all_pods - minimum - new_unavailable
    if max_scaled_down <= 0:
        return []
    cleanup = cleanup_unhealthy_replicas(old_rss, d, max_scaled_down)
    if cleanup is None:
        return []
    cleaned = _apply(old_rss, cleanup)
    scale_down = scale_down_old_replicasets_for_rolling_update([*cleaned, new_rs], cleaned, d)
    return [*cleanup, *scale_down]
