"""Tiny builders for the controller tests: nodes and pods as the store holds them, a store
with namespaces, and a recorder of the store's changes.

`make_pod` gives a bound pod the status a kubelet would write (Running, an IP, Ready), so
table tests state only what differs (`make_pod("a", ready=False, node="n1")`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sandbox.kube.clock import ManualClock
from sandbox.kube.podutil import ZONE_LABEL
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]


def make_node(
    name: str,
    zone: str = "us-west-2a",
    unschedulable: bool = False,
    *,
    ready: str = "True",
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    taints: Sequence[KubeObject] = (),
    labels: dict[str, str] | None = None,
    heartbeat: str = "2026-01-01T00:00:00Z",
) -> KubeObject:
    spec: KubeObject = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, ZONE_LABEL: zone, **(labels or {})},
        },
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
            "capacity": {"cpu": cpu, "memory": memory, "pods": str(pods)},
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": heartbeat,
                }
            ],
        },
    }


def make_pod(
    name: str,
    ready: bool = True,
    node: str | None = None,
    *,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    phase: str | None = None,
    ip: str | None = None,
    deleting: bool = False,
    spec: KubeObject | None = None,
    owner: KubeObject | None = None,
) -> KubeObject:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: KubeObject = {"name": "app", "image": "app:1"}
    if requests:
        container["resources"] = {"requests": requests}
    pod_spec: KubeObject = {"containers": [container], **(spec or {})}
    if node:
        pod_spec["nodeName"] = node
    metadata: KubeObject = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels if labels is not None else {"app": "web"}),
        "uid": f"uid-{name}",
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:30Z"
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    status: KubeObject = {"phase": phase or ("Running" if node else "Pending")}
    if node:
        status["podIP"] = ip or f"127.0.2.{sum(map(ord, name)) % 250 + 2}"
        flag = "True" if ready else "False"
        status["conditions"] = [
            {"type": "Ready", "status": flag},
            {"type": "ContainersReady", "status": flag},
        ]
    return {"metadata": metadata, "spec": pod_spec, "status": status}


def new_store(clock: ManualClock | None = None, *namespaces: str) -> Store:
    store = Store(clock or ManualClock(), random.Random(7))
    for namespace in ("default", *namespaces):
        store.create("namespaces", {"metadata": {"name": namespace}})
    return store


def add_node(store: Store, node: KubeObject) -> KubeObject:
    return store.create("nodes", node)


def add_pod(store: Store, pod: KubeObject) -> KubeObject:
    """Create the pod as a client would, then give it the status a kubelet would write."""
    wanted = {k: v for k, v in pod.items() if k != "status"}
    wanted["metadata"] = {
        k: v for k, v in pod["metadata"].items() if k not in ("uid", "deletionTimestamp")
    }
    created = store.create("pods", wanted)
    created["status"] = {**created["status"], **pod.get("status", {})}
    created = store.update("pods", created, subresource="status")
    if pod["metadata"].get("deletionTimestamp"):
        created = store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
    return created


def changes_of(store: Store) -> list[Change]:
    """Every change committed from now on, for feeding `keys_for`."""
    seen: list[Change] = []
    store.add_listener(seen.append)
    return seen
