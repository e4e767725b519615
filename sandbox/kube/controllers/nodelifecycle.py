"""Node lifecycle: heartbeats, condition taints, and NoExecute eviction.

`pkg/controller/nodelifecycle` and the taint-eviction controller, reduced to what a
small cluster sees:

- A node is alive while its Ready condition's lastHeartbeatTime or its
  `kube-node-lease` Lease renewTime is younger than `--node-monitor-grace-period`.
  After that its Ready, MemoryPressure, DiskPressure and PIDPressure conditions (and any
  other it has) become Unknown ("Kubelet stopped posting node status.") and its pods
  are marked not Ready.
- Taints follow conditions (TaintNodesByCondition and the NoExecute pass): Ready False
  -> `node.kubernetes.io/not-ready`, Unknown -> `node.kubernetes.io/unreachable`, each
  NoSchedule and NoExecute (NoExecute with timeAdded); pressure conditions -> their
  NoSchedule taints; `spec.unschedulable` -> `node.kubernetes.io/unschedulable:NoSchedule`.
  They go away when the condition clears.
- Pods on a node with NoExecute taints are deleted (gracefully, with condition
  DisruptionTarget) at once when a taint is not tolerated, else once the shortest
  matching tolerationSeconds has passed since the taint's timeAdded. Pods already
  terminating are left alone: on an unreachable node they stay Terminating until
  the kubelet comes back, as upstream.

Not emulated: per-zone eviction rate limits and the partial/full disruption modes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.kube.clock import Clock, parse_time, rfc3339
from sandbox.kube.controllers.runtime import emit_event
from sandbox.kube.podutil import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    condition_status,
    find_condition,
    is_terminating,
    tolerates,
    with_condition,
)
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
NODE_CONTROLLER = "node-controller"
TAINT_EVICTION_CONTROLLER = "taint-eviction-controller"
REMAINING_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# (condition type, status) -> NoSchedule taint key (nodelifecycle nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY_TAINT,
    ("Ready", "Unknown"): UNREACHABLE_TAINT,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
MANAGED_TAINTS: frozenset[tuple[str, str]] = frozenset(
    {(key, "NoSchedule") for key in CONDITION_TAINTS.values()}
    | {
        (NOT_READY_TAINT, "NoExecute"),
        (UNREACHABLE_TAINT, "NoExecute"),
        (UNSCHEDULABLE_TAINT, "NoSchedule"),
    }
)


# ---- heartbeats ----


def last_heartbeat(node: Mapping[str, Any], lease: Mapping[str, Any] | None) -> datetime:
    """The latest of: Ready lastHeartbeatTime, Lease renewTime, node creationTimestamp."""
    moments = [parse_time(node["metadata"]["creationTimestamp"])]
    ready = find_condition(node, "Ready")
    if ready is not None and ready.get("lastHeartbeatTime"):
        moments.append(parse_time(ready["lastHeartbeatTime"]))
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    if renew:
        moments.append(parse_time(renew))
    return max(moments)


def unknown_conditions(
    conditions: Sequence[Mapping[str, Any]], created: str, now: str
) -> list[KubeObject]:
    """Every condition Unknown, as tryUpdateNodeHealth writes them for a silent kubelet.

    >>> unknown_conditions([{"type": "Ready", "status": "True", "lastHeartbeatTime": "T0",
    ...                      "lastTransitionTime": "T0"}], "C", "T9")[0]
    {'type': 'Ready', 'status': 'Unknown', 'lastHeartbeatTime': 'T0', \
'lastTransitionTime': 'T9', 'reason': 'NodeStatusUnknown', \
'message': 'Kubelet stopped posting node status.'}
    """
    result: list[KubeObject] = []
    seen = set()
    for condition in conditions:
        seen.add(condition.get("type"))
        if condition.get("status") == "Unknown":
            result.append(dict(condition))
            continue
        result.append(
            {
                **condition,
                "status": "Unknown",
                "lastTransitionTime": now,
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
            }
        )
    for kind in REMAINING_CONDITIONS:
        if kind not in seen:
            result.append(
                {
                    "type": kind,
                    "status": "Unknown",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": now,
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                }
            )
    return result


@dataclass(frozen=True)
class NodeHealth:
    stale: bool
    expires: datetime  # when the latest heartbeat runs out
    conditions: list[KubeObject] | None  # conditions to write, None when nothing changes


def assess_node_health(
    node: Mapping[str, Any],
    lease: Mapping[str, Any] | None,
    now: datetime,
    grace_seconds: float,
) -> NodeHealth:
    """Whether the kubelet has gone quiet for longer than the grace period.

    Worked example: grace 50 s, last heartbeat 12:00:00; at 12:00:50 the node is still
    fresh (expires 12:00:50, strictly after is stale), at 12:00:51 every condition turns
    Unknown unless the Lease was renewed meanwhile.
    """
    expires = last_heartbeat(node, lease) + timedelta(seconds=grace_seconds)
    if now <= expires:
        return NodeHealth(False, expires, None)
    conditions = (node.get("status") or {}).get("conditions") or []
    new = unknown_conditions(conditions, node["metadata"]["creationTimestamp"], rfc3339(now))
    return NodeHealth(True, expires, None if new == conditions else new)


# ---- taints ----


def desired_taints(node: Mapping[str, Any], now: str) -> list[KubeObject]:
    """spec.taints with the controller-managed taints made to follow conditions and cordon.

    Taints it does not manage are kept in place; a managed taint already present keeps
    its timeAdded; new NoExecute taints get timeAdded = now.

    >>> node = {"spec": {"unschedulable": True, "taints": [{"key": "x", "effect": "NoSchedule"}]},
    ...         "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    >>> [(t["key"], t["effect"], t.get("timeAdded")) for t in desired_taints(node, "T")]
    [('x', 'NoSchedule', None), ('node.kubernetes.io/unreachable', 'NoSchedule', None), \
('node.kubernetes.io/unreachable', 'NoExecute', 'T'), \
('node.kubernetes.io/unschedulable', 'NoSchedule', None)]
    """
    spec = node.get("spec") or {}
    wanted: list[tuple[str, str]] = []
    for condition in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((condition.get("type", ""), condition.get("status", "")))
        if key is not None:
            wanted.append((key, "NoSchedule"))
            if condition.get("type") == "Ready":
                wanted.append((key, "NoExecute"))
    if spec.get("unschedulable"):
        wanted.append((UNSCHEDULABLE_TAINT, "NoSchedule"))
    result: list[KubeObject] = []
    present = set()
    for taint in spec.get("taints") or []:
        identity = (taint.get("key", ""), taint.get("effect", ""))
        if identity in MANAGED_TAINTS and identity not in wanted:
            continue
        present.add(identity)
        result.append(dict(taint))
    for key, effect in wanted:
        if (key, effect) not in present:
            added: KubeObject = {"key": key, "effect": effect}
            if effect == "NoExecute":
                added["timeAdded"] = now
            result.append(added)
            present.add((key, effect))
    return result


def eviction_time(
    tolerations: Sequence[Mapping[str, Any]],
    no_execute: Sequence[tuple[Mapping[str, Any], datetime]],
    now: datetime,
) -> datetime | None:
    """When a pod must leave a node with these NoExecute taints (each with its start time).

    Now when some taint is not tolerated; else the earliest start plus the shortest
    tolerationSeconds among the tolerations used (the first match per taint); None when
    every used toleration tolerates forever or there is no NoExecute taint.

    >>> start = parse_time("2026-01-01T00:00:00Z")
    >>> taint = {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
    >>> eviction_time([{"key": UNREACHABLE_TAINT, "operator": "Exists",
    ...                 "effect": "NoExecute", "tolerationSeconds": 300}],
    ...               [(taint, start)], start)
    datetime.datetime(2026, 1, 1, 0, 5, tzinfo=datetime.timezone.utc)
    """
    if not no_execute:
        return None
    used = []
    for taint, _ in no_execute:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return now
        used.append(match)
    limits = [int(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not limits:
        return None
    start = min(since for _, since in no_execute)
    return start + timedelta(seconds=max(0, min(limits)))


# ---- the controller ----


class NodeLifecycleController:
    """Marks silent nodes Unknown, keeps condition and cordon taints, evicts NoExecute pods."""

    name = "nodelifecycle"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        # NoExecute taints without timeAdded (say, written by hand): when we first saw them
        self._first_seen: dict[tuple[str, str, str], datetime] = {}

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        metadata = change.object.get("metadata") or {}
        if change.resource == "nodes":
            return [metadata.get("name", "")]
        if change.resource == "coordination.k8s.io/leases":
            if metadata.get("namespace") == LEASE_NAMESPACE and change.type != DELETED:
                return [metadata.get("name", "")]
            return []
        if change.resource == "pods" and change.type != DELETED:
            spec, old_spec = change.object.get("spec") or {}, (change.old or {}).get("spec") or {}
            node_name = spec.get("nodeName")
            if node_name and (
                node_name != old_spec.get("nodeName")
                or spec.get("tolerations") != old_spec.get("tolerations")
            ):
                return [node_name]
        return []

    def all_keys(self) -> Iterable[Hashable]:
        return [node["metadata"]["name"] for node in self.store.list("nodes")]

    def reconcile(self, key: Hashable) -> float | None:
        name = str(key)
        node = self.store.find("nodes", "", name)
        if node is None:
            self._first_seen = {k: v for k, v in self._first_seen.items() if k[0] != name}
            return None
        now = self.clock.now()
        lease = self.store.find("coordination.k8s.io/leases", LEASE_NAMESPACE, name)
        health = assess_node_health(
            node, lease, now, self.settings.node_monitor_grace_period_seconds
        )
        if health.conditions is not None:
            was_ready = condition_status(node, "Ready") == "True"
            node = self._write_conditions(node, health.conditions)
            if was_ready:
                emit_event(
                    self.store,
                    node,
                    "NodeNotReady",
                    f"Node {name} status is now: NodeNotReady",
                    component=NODE_CONTROLLER,
                )
        taints = desired_taints(node, rfc3339(now))
        if taints != ((node.get("spec") or {}).get("taints") or []):
            node = self._write_taints(name, taints)
        pods = self.store.list("pods", fields=f"spec.nodeName={name}")
        if health.stale:
            self._mark_pods_not_ready(pods, rfc3339(now))
        next_eviction = self._evict(node, pods, now)
        waits = [self.settings.node_monitor_period_seconds]
        if not health.stale:
            waits.append((health.expires - now).total_seconds() + 1.0)
        if next_eviction is not None:
            waits.append((next_eviction - now).total_seconds())
        return max(0.0, min(waits))

    def _write_conditions(self, node: KubeObject, conditions: list[KubeObject]) -> KubeObject:
        def change(obj: KubeObject) -> None:
            obj.setdefault("status", {})["conditions"] = conditions

        return self.store.mutate(
            "nodes", "", node["metadata"]["name"], change, subresource="status"
        )

    def _write_taints(self, name: str, taints: list[KubeObject]) -> KubeObject:
        def change(obj: KubeObject) -> None:
            if taints:
                obj.setdefault("spec", {})["taints"] = taints
            else:
                obj.setdefault("spec", {}).pop("taints", None)

        return self.store.mutate("nodes", "", name, change)

    def _mark_pods_not_ready(self, pods: Sequence[KubeObject], now: str) -> None:
        """MarkPodsNotReady: Ready (and ContainersReady) False on every pod of the node."""
        for pod in pods:
            if all(condition_status(pod, kind) == "False" for kind in ("Ready", "ContainersReady")):
                continue

            def change(obj: KubeObject) -> None:
                status = obj.setdefault("status", {})
                conditions = status.get("conditions") or []
                for kind in ("Ready", "ContainersReady"):
                    existing = find_condition(obj, kind) or {"type": kind}
                    existing.pop("lastTransitionTime", None)
                    conditions = with_condition(conditions, {**existing, "status": "False"}, now)
                status["conditions"] = conditions

            metadata = pod["metadata"]
            self.store.mutate(
                "pods", metadata["namespace"], metadata["name"], change, subresource="status"
            )
            emit_event(
                self.store,
                pod,
                "NodeNotReady",
                "Node is not ready",
                event_type="Warning",
                component=NODE_CONTROLLER,
            )

    def _evict(
        self, node: KubeObject, pods: Sequence[KubeObject], now: datetime
    ) -> datetime | None:
        """Delete the pods whose NoExecute tolerance has run out; the next such moment."""
        no_execute = self._no_execute_taints(node, now)
        upcoming: datetime | None = None
        for pod in pods:
            if is_terminating(pod):
                continue
            due = eviction_time((pod.get("spec") or {}).get("tolerations") or [], no_execute, now)
            if due is None:
                continue
            if due <= now:
                self._delete_pod(pod, now)
            elif upcoming is None or due < upcoming:
                upcoming = due
        return upcoming

    def _no_execute_taints(
        self, node: KubeObject, now: datetime
    ) -> list[tuple[KubeObject, datetime]]:
        name = node["metadata"]["name"]
        result = []
        seen = set()
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") != "NoExecute":
                continue
            identity = (name, str(taint.get("key", "")), str(taint.get("value", "")))
            seen.add(identity)
            if taint.get("timeAdded"):
                since = parse_time(taint["timeAdded"])
            else:
                since = self._first_seen.setdefault(identity, now)
            result.append((taint, since))
        for identity in [k for k in self._first_seen if k[0] == name and k not in seen]:
            del self._first_seen[identity]
        return result

    def _delete_pod(self, pod: KubeObject, now: datetime) -> None:
        metadata = pod["metadata"]
        target = {
            "type": "DisruptionTarget",
            "status": "True",
            "lastProbeTime": None,
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
        }

        def mark(obj: KubeObject) -> None:
            status = obj.setdefault("status", {})
            status["conditions"] = with_condition(
                status.get("conditions") or [], target, rfc3339(now)
            )

        emit_event(
            self.store,
            pod,
            "TaintManagerEviction",
            f"Marking for deletion Pod {metadata['namespace']}/{metadata['name']}",
            component=TAINT_EVICTION_CONTROLLER,
        )
        self.store.mutate(
            "pods", metadata["namespace"], metadata["name"], mark, subresource="status"
        )
        self.store.delete("pods", metadata["namespace"], metadata["name"], uid=metadata.get("uid"))
