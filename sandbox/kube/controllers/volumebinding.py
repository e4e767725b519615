"""The scheduler's volume plugins: a pod's PersistentVolumeClaims decide where it can go.

After kube-scheduler's `VolumeBinding` and `VolumeZone` plugins (pkg/scheduler/
framework/plugins/volumebinding/volume_binding.go, volumezone/volume_zone.go), 1.32:

- PreFilter (`podHasPVCs`, `GetPodVolumeClaims`): a claim that does not exist, is being
  deleted or lost its volume rejects the pod on every node with its own message
  (`persistentvolumeclaim "x" not found`); an unbound claim whose class binds
  `Immediate` (or has no class) rejects it with "pod has unbound immediate
  PersistentVolumeClaims". Both are UnschedulableAndUnresolvable: the FailedScheduling
  message is "0/6 nodes are available: <that>.".
- Filter, per node: a bound claim's PersistentVolume must accept the node by its
  `nodeAffinity` ("node(s) had volume node affinity conflict": an EBS volume is zonal)
  and by its zone labels, if it carries any ("node(s) had no available volume zone");
  a claim still waiting for its first consumer (`WaitForFirstConsumer`) can be
  provisioned only where its class's `allowedTopologies` allow ("node(s) didn't find
  available persistent volumes to bind").
- PreBind: the claims waiting for their first consumer get the annotation
  `volume.kubernetes.io/selected-node`, which sends the provisioner to that node's zone;
  the pod is bound once they are (the scheduler retries it when a claim changes).

Pure: the pod, its namespace's claims, the volumes and the classes in; messages out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.kube.controllers.nodeaffinity import node_selector_term_matches

KubeObject = dict[str, Any]

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
BIND_COMPLETED_ANNOTATION = "pv.kubernetes.io/bind-completed"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
REASON_NO_VOLUME_ZONE = "node(s) had no available volume zone"


@dataclass(frozen=True)
class VolumeFacts:
    """What the plugins read: the pod's namespace's claims, every volume and class."""

    claims: Mapping[str, Mapping[str, Any]]
    volumes: Mapping[str, Mapping[str, Any]]
    classes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class PodClaims:
    bound_volumes: tuple[Mapping[str, Any], ...] = ()
    waiting: tuple[Mapping[str, Any], ...] = ()  # unbound claims of WaitForFirstConsumer classes
    waiting_classes: tuple[Mapping[str, Any], ...] = ()  # their classes, in the same order

    @property
    def waiting_names(self) -> tuple[str, ...]:
        return tuple(str((c.get("metadata") or {}).get("name", "")) for c in self.waiting)


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The claims the pod's `persistentVolumeClaim` volumes name."""
    return [
        str((volume.get("persistentVolumeClaim") or {}).get("claimName", ""))
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if "persistentVolumeClaim" in volume
    ]


def is_fully_bound(claim: Mapping[str, Any]) -> bool:
    """`isPVCFullyBound`: a volume name and the bind-completed annotation."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    return bool((claim.get("spec") or {}).get("volumeName")) and (
        BIND_COMPLETED_ANNOTATION in annotations
    )


def class_of(
    claim: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    name = (claim.get("spec") or {}).get("storageClassName")
    return classes.get(str(name)) if name else None


def pre_filter(pod: Mapping[str, Any], facts: VolumeFacts) -> tuple[str, PodClaims]:
    """The rejection message ('' when the pod may go on), and its claims sorted out.

    >>> pod = {"spec": {"volumes": [{"name": "r", "persistentVolumeClaim": {"claimName": "x"}}]}}
    >>> pre_filter(pod, VolumeFacts({}, {}, {}))[0]
    'persistentvolumeclaim "x" not found'
    """
    bound: list[Mapping[str, Any]] = []
    waiting: list[Mapping[str, Any]] = []
    waiting_classes: list[Mapping[str, Any]] = []
    immediate = False
    for name in claim_names(pod):
        claim = facts.claims.get(name)
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found', PodClaims()
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted', PodClaims()
        volume_name = str((claim.get("spec") or {}).get("volumeName") or "")
        if (claim.get("status") or {}).get("phase") == "Lost":
            return (
                f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                f'"{volume_name}"',
                PodClaims(),
            )
        if is_fully_bound(claim):
            volume = facts.volumes.get(volume_name)
            if volume is None:
                return f'persistentvolume "{volume_name}" not found', PodClaims()
            bound.append(volume)
            continue
        storage_class = class_of(claim, facts.classes)
        if (
            storage_class is not None
            and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        ):
            waiting.append(claim)
            waiting_classes.append(storage_class)
        else:
            immediate = True
    if immediate:
        return UNBOUND_IMMEDIATE, PodClaims()
    return "", PodClaims(tuple(bound), tuple(waiting), tuple(waiting_classes))


def _topology_term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A TopologySelectorTerm: every expression's key has one of its values."""
    return all(
        str(labels.get(str(e.get("key", "")))) in [str(v) for v in e.get("values") or []]
        and str(e.get("key", "")) in labels
        for e in term.get("matchLabelExpressions") or []
    )


def _zone_values(volume: Mapping[str, Any]) -> list[tuple[str, set[str]]]:
    labels = (volume.get("metadata") or {}).get("labels") or {}
    # volume_zone.go: a multi-zone volume lists its zones joined by "__"
    return [(key, set(str(labels[key]).split("__"))) for key in ZONE_LABELS if key in labels]


def filter_node(node: Mapping[str, Any], claims: PodClaims) -> list[str]:
    """VolumeBinding then VolumeZone for one node (empty when it fits).

    >>> pv = {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions":
    ...       [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]}]}}}}
    >>> node = {"metadata": {"labels": {"topology.kubernetes.io/zone": "b"}}}
    >>> filter_node(node, PodClaims(bound_volumes=(pv,)))
    ['node(s) had volume node affinity conflict']
    """
    labels = (node.get("metadata") or {}).get("labels") or {}
    for volume in claims.bound_volumes:
        required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
        terms = (required or {}).get("nodeSelectorTerms") or []
        if required is not None and not any(node_selector_term_matches(t, node) for t in terms):
            return [REASON_NODE_CONFLICT]
    for storage_class in claims.waiting_classes:
        allowed = storage_class.get("allowedTopologies") or []
        if allowed and not any(_topology_term_matches(t, labels) for t in allowed):
            return [REASON_BIND_CONFLICT]
    for volume in claims.bound_volumes:
        for key, zones in _zone_values(volume):
            if str(labels.get(key)) not in zones:
                return [REASON_NO_VOLUME_ZONE]
    return []


def needs_selected_node(claims: Sequence[Mapping[str, Any]], node_name: str) -> list[str]:
    """The waiting claims whose selected-node annotation is not yet `node_name`."""
    return [
        str((c.get("metadata") or {}).get("name", ""))
        for c in claims
        if ((c.get("metadata") or {}).get("annotations") or {}).get(SELECTED_NODE_ANNOTATION)
        != node_name
    ]
