"""Zone drain that keeps going through PDB refusals and always uncordons.

chaostoolkit-kubernetes' `drain_nodes` gives up on the first 429 from the
Eviction API and leaves the nodes cordoned. A real drain (`kubectl drain`)
retries every few seconds until the PodDisruptionBudget allows the eviction;
this does the same, bounded by `timeout`, and writes the uncordon into the
recovery journal before it cordons anything, so an interrupted run can be
undone by `uncordon_zone` (the rollback) or `resilience recover`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.kube import REQUEST_TIMEOUT, core, items, nodes_in_zone
from resilience.safety import undo_journal

__all__ = ["drain_zone", "uncordon_zone"]
EVICTION_RETRY_SECONDS = 5.0  # kubectl drain's interval after a 429


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


def evictable(pod: Any) -> bool:
    """What `kubectl drain --ignore-daemonsets` evicts: not DaemonSet pods, mirror
    pods, finished pods, nor pods already on their way out."""
    metadata, status = pod.metadata, pod.status
    owners = metadata.owner_references or []
    if any(owner.kind == "DaemonSet" for owner in owners):
        return False
    if "kubernetes.io/config.mirror" in (metadata.annotations or {}):
        return False
    if status is not None and status.phase in ("Succeeded", "Failed"):
        return False
    return metadata.deletion_timestamp is None


def drain_zone(
    zone: str,
    namespace: str | None = None,
    timeout: float = 300.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cordon every node of `zone` and evict their pods, retrying while a PDB refuses.

    Evictions refused with 429 (a PodDisruptionBudget) are retried every 5 s, as
    `kubectl drain` does, until `timeout` seconds; pods of `namespace` only when
    given. Fails when pods are left after `timeout`, naming them; the nodes stay
    cordoned until the rollback `uncordon_zone` runs. Returns the nodes, the pods
    evicted, the refusals seen and the time taken.
    """
    api = core(secrets)
    began = time.monotonic()
    nodes = nodes_in_zone(api, zone)
    if not nodes:
        raise ActivityFailed(f"drain: no node is labelled with zone {zone!r}")
    names = [n.metadata.name for n in nodes]
    enforce_budget(configuration, len(pods_on(api, names, namespace)), f"drain of zone {zone}")
    newly_cordoned = [n.metadata.name for n in nodes if not n.spec.unschedulable]
    undo_journal.record("uncordon", {"nodes": newly_cordoned, "zone": zone})
    for name in newly_cordoned:
        api.patch_node(name, {"spec": {"unschedulable": True}}, _request_timeout=REQUEST_TIMEOUT)
    evicted, refusals = _evict_all(api, names, namespace, began + float(timeout))
    return {
        "zone": zone,
        "nodes": names,
        "evicted": evicted,
        "refused_by_pdb": refusals,
        "seconds": round(time.monotonic() - began, 3),
    }


def _evict_all(
    api: client.CoreV1Api, nodes: list[str], namespace: str | None, deadline: float
) -> tuple[int, int]:
    evicted, refusals = 0, 0
    while True:
        remaining = pods_on(api, nodes, namespace)
        if not remaining:
            return evicted, refusals
        if time.monotonic() >= deadline:
            left = ", ".join(f"{p.namespace}/{p.name}" for p in remaining)
            raise ActivityFailed(
                f"drain: {len(remaining)} pod(s) not evicted in time: {left}"
                f" ({refusals} eviction(s) refused by a PodDisruptionBudget)"
            )
        for pod in remaining:
            outcome = _evict(api, pod)
            evicted += outcome == "evicted"
            refusals += outcome == "refused"
        time.sleep(min(EVICTION_RETRY_SECONDS, max(0.0, deadline - time.monotonic())))


def pods_on(api: client.CoreV1Api, nodes: list[str], namespace: str | None) -> list[PodRef]:
    refs = []
    for node in nodes:
        selector = f"spec.nodeName={node}"
        pods = (
            api.list_namespaced_pod(
                namespace, field_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
            if namespace
            else api.list_pod_for_all_namespaces(
                field_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
        )
        refs += [PodRef(p.metadata.namespace, p.metadata.name) for p in items(pods) if evictable(p)]
    return refs


def _evict(api: client.CoreV1Api, pod: PodRef) -> str:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.name, namespace=pod.namespace))
    try:
        api.create_namespaced_pod_eviction(
            pod.name, pod.namespace, body, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status == 429:
            return "refused"
        if error.status == 404:
            return "gone"
        raise
    return "evicted"


def uncordon_zone(
    zone: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make every node of `zone` schedulable again (the rollback of `drain_zone`).

    Safe to run twice and after an interrupted drain; marks the drain's entry in the
    recovery journal done, so `resilience recover` does not replay it.
    """
    api = core(secrets)
    uncordoned = []
    for node in nodes_in_zone(api, zone):
        if node.spec.unschedulable:
            api.patch_node(
                node.metadata.name,
                {"spec": {"unschedulable": None}},
                _request_timeout=REQUEST_TIMEOUT,
            )
            uncordoned.append(node.metadata.name)
    for undo in undo_journal.pending(undo_journal.read()):
        if undo.kind == "uncordon" and undo.target.get("zone") == zone:
            undo_journal.mark_done(undo.id)
    return {"zone": zone, "uncordoned": uncordoned}
