"""Rollout progress: upstream's `pkg/controller/deployment/progress.go` (`syncRolloutStatus`,
`getReplicaFailures`, `requeueStuckDeployment`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sandbox.kube.clock import parse_time
from sandbox.kube.controllers.deployment.sync import calculate_status
from sandbox.kube.controllers.deployment.util import (
    ConditionType,
    KubeObject,
    Reason,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    get_deployment_condition,
    has_progress_deadline,
    name_of,
    new_deployment_condition,
    remove_deployment_condition,
    replicaset_to_deployment_condition,
    set_deployment_condition,
    spec_of,
    status_field,
)


def get_replica_failures(
    all_rss: Sequence[KubeObject | None], new_rs: KubeObject | None
) -> list[KubeObject]:
    """`getReplicaFailures`: the new RS's ReplicaFailure conditions first, else any RS's."""

    def failures(rs: KubeObject | None) -> list[KubeObject]:
        if rs is None:
            return []
        return [
            replicaset_to_deployment_condition(c)
            for c in (rs.get("status") or {}).get("conditions") or []
            if c.get("type") == ConditionType.REPLICA_FAILURE.value
        ]

    found = failures(new_rs)
    if found:
        return found
    return [condition for rs in all_rss for condition in failures(rs)]


def sync_rollout_status(
    all_rss: Sequence[KubeObject | None],
    new_rs: KubeObject | None,
    d: Mapping[str, Any],
    now: datetime,
) -> KubeObject:
    """`syncRolloutStatus`: calculateStatus plus the Progressing condition.

    Complete → NewReplicaSetAvailable; progress → ReplicaSetUpdated with a
    fresh lastUpdateTime (lastTransitionTime kept while True); no progress past
    the deadline → False/ProgressDeadlineExceeded. Nothing is estimated once
    complete and still complete.
    """
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        status = remove_deployment_condition(status, ConditionType.PROGRESSING)
    current = get_deployment_condition(d.get("status") or {}, ConditionType.PROGRESSING)
    is_complete = (
        status_field(status, "replicas") == status_field(status, "updatedReplicas")
        and current is not None
        and current.get("reason") == Reason.NEW_RS_AVAILABLE.value
    )
    if has_progress_deadline(d) and not is_complete:
        rs_name = name_of(new_rs) if new_rs is not None else None
        subject = f'ReplicaSet "{rs_name}"' if rs_name else f'Deployment "{name_of(d)}"'
        if deployment_complete(d, status):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
                now,
            )
            status = set_deployment_condition(status, condition)
        elif deployment_progressing(d, status):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.REPLICA_SET_UPDATED,
                f"{subject} is progressing.",
                now,
            )
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current.get("lastTransitionTime")
                status = remove_deployment_condition(status, ConditionType.PROGRESSING)
            status = set_deployment_condition(status, condition)
        elif deployment_timed_out(d, status, now):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "False",
                Reason.TIMED_OUT,
                f"{subject} has timed out progressing.",
                now,
            )
            status = set_deployment_condition(status, condition)
    failures = get_replica_failures(all_rss, new_rs)
    if failures:
        return set_deployment_condition(status, failures[0])
    return remove_deployment_condition(status, ConditionType.REPLICA_FAILURE)


def requeue_stuck_deployment(
    d: Mapping[str, Any], new_status: Mapping[str, Any], now: datetime
) -> float | None:
    """`requeueStuckDeployment`: seconds until the progress deadline would pass, or None.

    Progress last reported at 00:00:00, now 00:03:00, deadline 600 s → look
    again after 7 min plus one second (upstream's guard against skew). Read
    from the status about to be written. Two differences from upstream: an
    overdue check waits one second (upstream: rate-limited "now"), and a
    Paused or NewReplicaSetAvailable condition, which can never time out,
    asks for no check (upstream would requeue such a Deployment repeatedly).

    >>> d = {"metadata": {"generation": 1}, "spec": {"replicas": 1,
    ...      "progressDeadlineSeconds": 600}}
    >>> status = {"conditions": [{"type": "Progressing", "status": "True",
    ...     "reason": "ReplicaSetUpdated", "lastUpdateTime": "2026-01-01T00:00:00Z"}]}
    >>> requeue_stuck_deployment(d, status, parse_time("2026-01-01T00:03:00Z"))
    421.0
    """
    condition = get_deployment_condition(new_status, ConditionType.PROGRESSING)
    if not has_progress_deadline(d) or condition is None:
        return None
    if deployment_complete(d, new_status) or condition.get("reason") == Reason.TIMED_OUT.value:
        return None
    if condition.get("reason") in (Reason.PAUSED.value, Reason.NEW_RS_AVAILABLE.value):
        return None
    last = condition.get("lastUpdateTime")
    if not last:
        return None
    deadline = parse_time(last) + timedelta(seconds=int(spec_of(d)["progressDeadlineSeconds"]))
    after = (deadline - now).total_seconds()
    return max(after, 0.0) + 1.0
