"""Scaling events, paused Deployments and status: upstream's `pkg/controller/deployment/sync.go`
(`scale`, `isScalingEvent`, `checkPausedConditions`, `cleanupDeployment`,
`calculateStatus`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sandbox.kube.controllers.deployment.util import (
    ConditionType,
    KubeObject,
    Reason,
    ScaleAction,
    filter_active_replicasets,
    find_active_or_latest,
    get_actual_replica_count_for_replicasets,
    get_available_replica_count_for_replicasets,
    get_deployment_condition,
    get_desired_replicas_annotation,
    get_proportion,
    get_ready_replica_count_for_replicasets,
    get_replica_count_for_replicasets,
    has_progress_deadline,
    has_revision_history_limit,
    is_rolling_update,
    is_saturated,
    max_surge,
    max_unavailable,
    metadata_of,
    name_of,
    new_deployment_condition,
    replicas_annotations_need_update,
    set_deployment_condition,
    sort_by_revision,
    sort_by_size_newer,
    sort_by_size_older,
    spec_of,
    spec_replicas,
    status_int,
)


def calculate_status(
    all_rss: Sequence[KubeObject | None],
    new_rs: KubeObject | None,
    d: Mapping[str, Any],
    now: datetime,
) -> KubeObject:
    """`calculateStatus`: counts from the ReplicaSets, the Available condition.

    Every counter is `int32 omitempty`: a zero is absent, so the Python client
    reads None, not 0. `unavailableReplicas` is Σ spec - Σ available, at least 0.

    >>> d = {"metadata": {"generation": 2}, "spec": {"replicas": 1, "strategy": {
    ...      "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}, "status": {}}
    >>> rs = {"spec": {"replicas": 1}, "status": {"replicas": 1}}
    >>> from sandbox.kube.clock import parse_time
    >>> s = calculate_status([rs], rs, d, parse_time("2026-01-01T00:00:00Z"))
    >>> {k: v for k, v in s.items() if k != "conditions"}
    {'observedGeneration': 2, 'replicas': 1, 'updatedReplicas': 1, 'unavailableReplicas': 1}
    >>> s["conditions"][0]["reason"]
    'MinimumReplicasUnavailable'
    """
    available = get_available_replica_count_for_replicasets(all_rss)
    total = get_replica_count_for_replicasets(all_rss)
    counters = {
        "observedGeneration": int(metadata_of(d).get("generation", 0) or 0),
        "replicas": get_actual_replica_count_for_replicasets(all_rss),
        "updatedReplicas": get_actual_replica_count_for_replicasets([new_rs]),
        "readyReplicas": get_ready_replica_count_for_replicasets(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    status: KubeObject = {key: value for key, value in counters.items() if value}
    current = d.get("status") or {}
    if current.get("conditions"):
        status["conditions"] = copy.deepcopy(current["conditions"])
    if current.get("collisionCount") is not None:
        status["collisionCount"] = current["collisionCount"]
    if available >= spec_replicas(d) - max_unavailable(d):
        condition = new_deployment_condition(
            ConditionType.AVAILABLE,
            "True",
            Reason.MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        condition = new_deployment_condition(
            ConditionType.AVAILABLE,
            "False",
            Reason.MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    return set_deployment_condition(status, condition)


def check_paused_conditions(d: Mapping[str, Any], now: datetime) -> KubeObject | None:
    """`checkPausedConditions`: the status with DeploymentPaused/Resumed, or None if unchanged.

    A ProgressDeadlineExceeded condition is never overwritten.
    """
    if not has_progress_deadline(d):
        return None
    status = d.get("status") or {}
    current = get_deployment_condition(status, ConditionType.PROGRESSING)
    if current is not None and current.get("reason") == Reason.TIMED_OUT.value:
        return None
    paused_exists = current is not None and current.get("reason") == Reason.PAUSED.value
    paused = bool(spec_of(d).get("paused"))
    if paused and not paused_exists:
        condition = new_deployment_condition(
            ConditionType.PROGRESSING, "Unknown", Reason.PAUSED, "Deployment is paused", now
        )
    elif not paused and paused_exists:
        condition = new_deployment_condition(
            ConditionType.PROGRESSING, "Unknown", Reason.RESUMED, "Deployment is resumed", now
        )
    else:
        return None
    return set_deployment_condition(status, condition)


def scale(
    d: Mapping[str, Any], new_rs: KubeObject | None, old_rss: Sequence[KubeObject]
) -> list[ScaleAction]:
    """`scale` (sync.go): resize on a scaling event or while paused.

    One active RS takes the whole `spec.replicas`; a saturated new RS makes the
    old ones go to 0; otherwise (RollingUpdate) every active RS gets its
    proportion of replicas + maxSurge, largest first, the leftover to the first.
    """
    active_or_latest = find_active_or_latest(new_rs, old_rss)
    replicas = spec_replicas(d)
    if active_or_latest is not None:
        if spec_replicas(active_or_latest) == replicas:
            if replicas_annotations_need_update(active_or_latest, d):
                return [ScaleAction(name_of(active_or_latest), replicas, replicas)]
            return []
        return [ScaleAction(name_of(active_or_latest), replicas, spec_replicas(active_or_latest))]
    if is_saturated(d, new_rs):
        return [
            ScaleAction(name_of(old), 0, spec_replicas(old))
            for old in filter_active_replicasets(old_rss)
        ]
    if not is_rolling_update(d):
        return []
    active = filter_active_replicasets([*old_rss, new_rs])
    allowed = replicas + max_surge(d) if replicas > 0 else 0
    to_add = allowed - get_replica_count_for_replicasets(active)
    if to_add > 0:
        active = sort_by_size_newer(active)
    elif to_add < 0:
        active = sort_by_size_older(active)
    added = 0
    sizes: dict[str, int] = {}
    for rs in active:
        if to_add != 0:
            proportion = get_proportion(rs, d, to_add, added)
            sizes[name_of(rs)] = spec_replicas(rs) + proportion
            added += proportion
        else:
            sizes[name_of(rs)] = spec_replicas(rs)
    actions = []
    for index, rs in enumerate(active):
        if index == 0 and to_add != 0:
            sizes[name_of(rs)] = max(0, sizes[name_of(rs)] + to_add - added)
        actions.append(ScaleAction(name_of(rs), sizes[name_of(rs)], spec_replicas(rs)))
    return actions


def is_scaling_event(d: Mapping[str, Any], all_rss: Sequence[KubeObject | None]) -> bool:
    """`isScalingEvent`: an active RS was annotated for a different `spec.replicas`."""
    for rs in filter_active_replicasets(all_rss):
        desired = get_desired_replicas_annotation(rs)
        if desired is not None and desired != spec_replicas(d):
            return True
    return False


def cleanup_deployment(old_rss: Sequence[KubeObject], d: Mapping[str, Any]) -> list[str]:
    """`cleanupDeployment`: names of old RSs beyond revisionHistoryLimit, lowest revision first.

    Only RSs with nothing left (spec and status 0, generation observed, not deleting) go.

    >>> from sandbox.kube.controllers.deployment.util import REVISION_ANNOTATION
    >>> old = [{"metadata": {"name": f"rs{i}", "generation": 1,
    ...          "annotations": {REVISION_ANNOTATION: str(i)}},
    ...         "spec": {"replicas": 0}, "status": {"replicas": 0, "observedGeneration": 1}}
    ...        for i in (1, 2, 3)]
    >>> cleanup_deployment(old, {"spec": {"revisionHistoryLimit": 1}})
    ['rs1', 'rs2']
    """
    if not has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if metadata_of(rs).get("deletionTimestamp") is None]
    diff = len(alive) - int(spec_of(d)["revisionHistoryLimit"])
    if diff <= 0:
        return []
    doomed = []
    for rs in sort_by_revision(alive)[:diff]:
        generation = int(metadata_of(rs).get("generation", 0) or 0)
        if (
            status_int(rs, "replicas") != 0
            or spec_replicas(rs) != 0
            or generation > status_int(rs, "observedGeneration")
        ):
            continue
        doomed.append(name_of(rs))
    return doomed
