"""Small facts about pods, nodes and their conditions, shared by the controllers and the
API server.

After upstream's `pkg/api/v1/pod/util.go` (`IsPodReady`, `IsPodAvailable`,
`GetPodCondition`, `UpdatePodCondition`), `k8s.io/api/core/v1` (`Toleration.ToleratesTaint`,
`well_known_taints.go`, `well_known_labels.go`) and `pkg/controller` (`IsPodTerminal`).
Pure functions over API JSON: no input is mutated, nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sandbox.kube.clock import parse_time

KubeObject = dict[str, Any]

ZONE_LABEL: Final = "topology.kubernetes.io/zone"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
UNSCHEDULABLE_TAINT: Final = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"


# ---- lifecycle ----


def is_terminal(pod: Mapping[str, Any]) -> bool:
    """Succeeded or Failed: the pod's containers will not run again."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


# ---- conditions ----


def find_condition(obj: Mapping[str, Any], kind: str) -> KubeObject | None:
    """A copy of the object's condition of type `kind`, or None."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def condition_status(obj: Mapping[str, Any], kind: str) -> str | None:
    condition = find_condition(obj, kind)
    return None if condition is None else str(condition.get("status"))


def with_condition(
    conditions: Sequence[Mapping[str, Any]], new: Mapping[str, Any], now: str
) -> list[KubeObject]:
    """Conditions with `new` set: lastTransitionTime moves only when the status changes.

    >>> old = [{"type": "Ready", "status": "True", "lastTransitionTime": "T0"}]
    >>> with_condition(old, {"type": "Ready", "status": "True", "reason": "x"}, "T1")
    [{'type': 'Ready', 'status': 'True', 'reason': 'x', 'lastTransitionTime': 'T0'}]
    """
    result: list[KubeObject] = []
    replaced = False
    for condition in conditions:
        if condition.get("type") != new.get("type"):
            result.append(dict(condition))
            continue
        merged = dict(new)
        same_status = condition.get("status") == new.get("status")
        merged["lastTransitionTime"] = (
            condition.get("lastTransitionTime") if same_status else now
        ) or now
        result.append(merged)
        replaced = True
    if not replaced:
        result.append({**new, "lastTransitionTime": now})
    return result


# ---- readiness ----


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """`podutil.IsPodReady`: a Ready condition with status "True".

    >>> is_pod_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    True
    >>> is_pod_ready({"status": {"phase": "Running"}})
    False
    """
    return condition_status(pod, "Ready") == "True"


def pod_ready_time(pod: Mapping[str, Any]) -> datetime | None:
    """When a ready pod became ready (its Ready condition's lastTransitionTime), else None.

    >>> pod_ready_time({"status": {"conditions": [{"type": "Ready", "status": "True",
    ...     "lastTransitionTime": "2026-01-01T00:00:05Z"}]}}).second
    5
    """
    condition = find_condition(pod, "Ready")
    if condition is None or condition.get("status") != "True":
        return None
    stamp = condition.get("lastTransitionTime")
    return parse_time(stamp) if stamp else None


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int, now: datetime) -> bool:
    """`podutil.IsPodAvailable`: ready, and ready for at least `min_ready_seconds`.

    With minReadySeconds 10, a pod ready since 00:00:00 is available from 00:00:10.

    >>> pod = {"status": {"conditions": [{"type": "Ready", "status": "True",
    ...     "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    >>> is_pod_available(pod, 10, parse_time("2026-01-01T00:00:09Z"))
    False
    >>> is_pod_available(pod, 10, parse_time("2026-01-01T00:00:10Z"))
    True
    """
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    ready_since = pod_ready_time(pod)
    if ready_since is None:
        return False
    return (now - ready_since).total_seconds() >= min_ready_seconds


# ---- taints and tolerations ----


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1 Toleration.ToleratesTaint.

    >>> tolerates({"operator": "Exists"}, {"key": "a", "effect": "NoSchedule"})
    True
    >>> tolerates({"key": "a", "value": "x", "effect": "NoExecute"},
    ...           {"key": "a", "value": "x", "effect": "NoSchedule"})
    False
    """
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return bool(
        operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")
    )


def is_tolerated(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(toleration, taint) for toleration in tolerations)


def ip_order(address: str) -> tuple[int, ...]:
    """An IPv4 address as its numbers, to list endpoints in address order (kube-proxy's
    rules, the cluster DNS's records and nginx's upstreams alike); a part that is not a
    number is left out, so a malformed address sorts instead of failing.

    >>> sorted(["127.0.2.10", "127.0.2.9"], key=ip_order)
    ['127.0.2.9', '127.0.2.10']
    """
    return tuple(int(part) for part in address.split(".") if part.isdigit())
