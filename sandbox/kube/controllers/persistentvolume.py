"""PersistentVolumeClaims bound to PersistentVolumes, provisioned as directories the sandbox owns.

Three upstream loops in one controller, each a pure plan applied by a thin reconcile:

- the PV controller's claim and volume syncs (pkg/controller/volume/persistentvolume/
  pv_controller.go `syncUnboundClaim`, `syncBoundClaim`, `syncVolume`): an unbound
  claim binds to the smallest Available volume of its class that has room and its
  access modes (for a `WaitForFirstConsumer` class only once the scheduler named a node,
  `volume.kubernetes.io/selected-node`, and only to a volume that node can reach); a
  claim without a class and without a volume waits (`FailedBinding` "no persistent
  volumes available for this claim and no storage class is set"); a class that does
  not exist is `ProvisioningFailed`; a `WaitForFirstConsumer` claim without a node waits
  (`WaitForFirstConsumer` "waiting for first consumer to be created before binding").
  Binding writes both sides: the volume's `claimRef` and phase Bound, the claim's
  `volumeName`, the `pv.kubernetes.io/bind-completed` and `bound-by-controller`
  annotations, and its status (Bound, accessModes, capacity). A volume whose claim is
  gone is Released and reclaimed by its policy: `Delete` removes the directory and the
  volume, `Retain` keeps both. A bound claim whose volume vanished is Lost (`ClaimLost`).
- the external provisioner (kubernetes-csi/external-provisioner, which the EBS CSI
  driver runs; the in-tree name `kubernetes.io/aws-ebs` is served by
  `ebs.csi.aws.com` through CSI migration): the claim is annotated with its
  provisioner (`ExternalProvisioning`), and a volume `pvc-<claim uid>` is created
  pre-bound to it (`Provisioning`, `ProvisioningSucceeded`) with the request as its
  capacity, the claim's access modes, the class's reclaim policy, and node affinity to
  one zone: the selected node's, as the EBS driver creates the disk in the zone of the
  node that will attach it (an `Immediate` claim gets the first allowed zone, else the
  first node zone in name order). Its source is a `hostPath`, a directory under the
  sandbox's state directory (`<state>/volumes/<pv name>/`), mode 0777 like an emptyDir
  since the sandbox does not apply `fsGroup` ownership.
- the protection controllers (pkg/controller/volume/pvcprotection, pvprotection): a
  deleted claim keeps `kubernetes.io/pvc-protection` while a scheduled, unfinished pod
  uses it; a deleted volume keeps `kubernetes.io/pv-protection` while it is Bound.

Not modelled: volume expansion, `Recycle`, selectors on claims, `dataSource`, the
`volumeAttributesClass`, and retroactive default-class assignment.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.kube.clock import Clock
from sandbox.kube.controllers.nodeaffinity import node_selector_term_matches
from sandbox.kube.controllers.volumebinding import (
    BIND_COMPLETED_ANNOTATION,
    SELECTED_NODE_ANNOTATION,
    WAIT_FOR_FIRST_CONSUMER,
    claim_names,
)
from sandbox.kube.errors import ApiError
from sandbox.kube.quantity import parse_quantity
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.storageadmission import PV_PROTECTION, PVC_PROTECTION, STORAGE_CLASSES
from sandbox.kube.store import DELETED, Change, Store

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]

CLAIMS = "persistentvolumeclaims"
VOLUMES = "persistentvolumes"
PODS = "pods"
ZONE_LABEL = "topology.kubernetes.io/zone"
BOUND_BY_CONTROLLER_ANNOTATION = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY_ANNOTATION = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER_ANNOTATIONS = (
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
)
# CSI migration: the in-tree provisioner names the CSI drivers that serve them
MIGRATED_PROVISIONERS = {"kubernetes.io/aws-ebs": "ebs.csi.aws.com"}
NO_PROVISIONER = "kubernetes.io/no-provisioner"
COMPONENT = "persistentvolume-controller"
DIRECTORY_MODE = 0o777
NO_CLASS_MESSAGE = "no persistent volumes available for this claim and no storage class is set"
WAITING_MESSAGE = "waiting for first consumer to be created before binding"
LOST_MESSAGE = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str
    component: str = COMPONENT


@dataclass(frozen=True)
class Provision:
    """A volume to create for a claim, and where its directory goes (relative name)."""

    volume: KubeObject
    provisioner: str


@dataclass(frozen=True)
class ClaimPlan:
    action: Literal["none", "wait", "bind", "provision", "lost", "release-finalizer"]
    volume_name: str = ""
    provision: Provision | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)  # to add to the claim
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class PersistentVolumeAction:
    action: Literal["none", "phase", "delete", "release-finalizer"]
    phase: str = ""
    delete_directory: bool = False


# ---- small facts ----


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def requested_storage(claim: Mapping[str, Any]) -> str:
    return str(((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage", "0"))


def effective_provisioner(storage_class: Mapping[str, Any]) -> str:
    name = str(storage_class.get("provisioner", ""))
    return MIGRATED_PROVISIONERS.get(name, name)


def node_zone(node: Mapping[str, Any] | None) -> str:
    return str(((_meta(node).get("labels") or {}) if node else {}).get(ZONE_LABEL, ""))


def volume_reaches(volume: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    required = (_spec(volume).get("nodeAffinity") or {}).get("required")
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def _claim_ref_matches(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    ref = _spec(volume).get("claimRef")
    if not ref:
        return False
    same_name = ref.get("namespace") == _meta(claim).get("namespace") and ref.get("name") == _meta(
        claim
    ).get("name")
    return same_name and ref.get("uid") in (None, "", _meta(claim).get("uid"))


def find_best_match(
    claim: Mapping[str, Any],
    volumes: Iterable[Mapping[str, Any]],
    node: Mapping[str, Any] | None,
    delayed: bool,
) -> Mapping[str, Any] | None:
    """`findBestMatchForClaim`: a volume pre-bound to the claim, else the smallest Available
    one of its class, modes and volume mode with room for the request (reachable from the
    selected node when binding waits for the first consumer).

    >>> def pv(name, size, cls="gp2"):
    ...     return {"metadata": {"name": name}, "status": {"phase": "Available"},
    ...             "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
    ...                      "storageClassName": cls}}
    >>> claim = {"metadata": {"name": "c"}, "spec": {"storageClassName": "gp2",
    ...          "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}
    >>> find_best_match(claim, [pv("big", "50Gi"), pv("fit", "5Gi"), pv("small", "1Gi")],
    ...                 None, False)["metadata"]["name"]
    'fit'
    """
    spec = _spec(claim)
    wanted = parse_quantity(requested_storage(claim))
    modes = set(spec.get("accessModes") or [])
    best: Mapping[str, Any] | None = None
    for volume in volumes:
        volume_spec = _spec(volume)
        if _meta(volume).get("deletionTimestamp"):
            continue
        if delayed and (node is None or not volume_reaches(volume, node)):
            continue
        if _claim_ref_matches(volume, claim):
            return volume
        if volume_spec.get("claimRef") or (volume.get("status") or {}).get("phase") != "Available":
            continue
        if (volume_spec.get("storageClassName") or "") != (spec.get("storageClassName") or ""):
            continue
        if (volume_spec.get("volumeMode") or "Filesystem") != (
            spec.get("volumeMode") or "Filesystem"
        ):
            continue
        if not modes <= set(volume_spec.get("accessModes") or []):
            continue
        size = parse_quantity(str((volume_spec.get("capacity") or {}).get("storage", "0")))
        if size < wanted:
            continue
        if best is None or size < parse_quantity(str(_spec(best)["capacity"]["storage"])):
            best = volume
    return best


def choose_zone(
    storage_class: Mapping[str, Any],
    selected: Mapping[str, Any] | None,
    nodes: Sequence[Mapping[str, Any]],
) -> str:
    """The zone to create the disk in: the selected node's, else the first allowed one."""
    if selected is not None and node_zone(selected):
        return node_zone(selected)
    for term in storage_class.get("allowedTopologies") or []:
        for expression in term.get("matchLabelExpressions") or []:
            if expression.get("key") == ZONE_LABEL and expression.get("values"):
                return str(expression["values"][0])
    zones = sorted({node_zone(n) for n in nodes if node_zone(n)})
    return zones[0] if zones else ""


def provisioned_volume(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any], zone: str, root: Path
) -> KubeObject:
    """The volume the provisioner creates for `claim`, pre-bound to it."""
    metadata, spec = _meta(claim), _spec(claim)
    name = f"pvc-{metadata.get('uid')}"
    volume_spec: KubeObject = {
        "capacity": {"storage": requested_storage(claim)},
        "accessModes": list(spec.get("accessModes") or []),
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "storageClassName": _meta(storage_class).get("name"),
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "hostPath": {"path": str(root / name), "type": ""},
        "claimRef": {
            "kind": "PersistentVolumeClaim",
            "namespace": metadata.get("namespace"),
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
            "apiVersion": "v1",
            "resourceVersion": metadata.get("resourceVersion"),
        },
    }
    if storage_class.get("mountOptions"):
        volume_spec["mountOptions"] = list(storage_class["mountOptions"])
    if zone:
        volume_spec["nodeAffinity"] = {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}]}
                ]
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {PROVISIONED_BY_ANNOTATION: effective_provisioner(storage_class)},
        },
        "spec": volume_spec,
    }


# ---- the claim's plan ----


def claim_in_use(claim: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> bool:
    """pvcprotection `podUsesPVC`: a scheduled pod, not finished, naming the claim."""
    name = _meta(claim).get("name")
    for pod in pods:
        if not _spec(pod).get("nodeName"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if name in claim_names(pod):
            return True
    return False


@dataclass(frozen=True)
class World:
    """What a claim's plan reads besides the claim."""

    volumes: Mapping[str, Mapping[str, Any]]
    classes: Mapping[str, Mapping[str, Any]]
    nodes: Mapping[str, Mapping[str, Any]]
    pods: Sequence[Mapping[str, Any]] = ()  # the claim's namespace's
    root: Path = Path("/nonexistent")


def plan_claim(claim: Mapping[str, Any], world: World) -> ClaimPlan:
    """One sync of one claim.

    >>> claim = {"metadata": {"name": "c", "namespace": "ns", "uid": "u"},
    ...          "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Pending"}}
    >>> plan = plan_claim(claim, World({}, {}, {}))
    >>> plan.action, plan.events[0].message
    ('wait', 'no persistent volumes available for this claim and no storage class is set')
    """
    metadata, spec = _meta(claim), _spec(claim)
    if metadata.get("deletionTimestamp"):
        in_use = claim_in_use(claim, world.pods)
        protected = PVC_PROTECTION in (metadata.get("finalizers") or [])
        return ClaimPlan("release-finalizer" if protected and not in_use else "none")
    volume_name = str(spec.get("volumeName") or "")
    if volume_name:
        return _plan_named(claim, world, volume_name)
    class_name = str(spec.get("storageClassName") or "")
    storage_class = world.classes.get(class_name) if class_name else None
    delayed = storage_class is not None and (
        storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
    )
    selected_name = (metadata.get("annotations") or {}).get(SELECTED_NODE_ANNOTATION)
    selected = world.nodes.get(str(selected_name)) if selected_name else None
    match = find_best_match(claim, world.volumes.values(), selected, delayed)
    if match is not None:
        return ClaimPlan("bind", str(_meta(match).get("name")))
    if not class_name:
        return ClaimPlan("wait", events=(Event("Normal", "FailedBinding", NO_CLASS_MESSAGE),))
    if storage_class is None:
        message = f'storageclass.storage.k8s.io "{class_name}" not found'
        return ClaimPlan("wait", events=(Event("Warning", "ProvisioningFailed", message),))
    if delayed and selected is None:
        return ClaimPlan("wait", events=(Event("Normal", "WaitForFirstConsumer", WAITING_MESSAGE),))
    if storage_class.get("provisioner") == NO_PROVISIONER:
        return ClaimPlan("wait")
    return _plan_provision(claim, storage_class, selected, world)


def _plan_named(claim: Mapping[str, Any], world: World, volume_name: str) -> ClaimPlan:
    """`syncBoundClaim`: finish a binding, or notice the volume is gone."""
    volume = world.volumes.get(volume_name)
    if volume is None:
        if (claim.get("status") or {}).get("phase") == "Bound":
            return ClaimPlan("lost", events=(Event("Warning", "ClaimLost", LOST_MESSAGE),))
        return ClaimPlan("wait")
    ref = _spec(volume).get("claimRef")
    if ref and not _claim_ref_matches(volume, claim):
        message = "Two claims are bound to the same volume, this one is bound incorrectly"
        return ClaimPlan("wait", events=(Event("Warning", "ClaimMisbound", message),))
    if _is_bound_pair(claim, volume):
        return ClaimPlan("none")
    return ClaimPlan("bind", volume_name)


def _is_bound_pair(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    annotations = _meta(claim).get("annotations") or {}
    return (
        BIND_COMPLETED_ANNOTATION in annotations
        and (claim.get("status") or {}).get("phase") == "Bound"
        and (volume.get("status") or {}).get("phase") == "Bound"
        and _claim_ref_matches(volume, claim)
        and bool((_spec(volume).get("claimRef") or {}).get("uid"))
    )


def _plan_provision(
    claim: Mapping[str, Any],
    storage_class: Mapping[str, Any],
    selected: Mapping[str, Any] | None,
    world: World,
) -> ClaimPlan:
    provisioner = effective_provisioner(storage_class)
    metadata = _meta(claim)
    annotations = dict.fromkeys(STORAGE_PROVISIONER_ANNOTATIONS, provisioner)
    zone = choose_zone(storage_class, selected, list(world.nodes.values()))
    volume = provisioned_volume(claim, storage_class, zone, world.root)
    where = f"{metadata.get('namespace')}/{metadata.get('name')}"
    events = (
        Event(
            "Normal",
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.",
        ),
        Event(
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{where}"',
            provisioner,
        ),
        Event(
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume['metadata']['name']}",
            provisioner,
        ),
    )
    return ClaimPlan(
        "provision",
        provision=Provision(volume, provisioner),
        annotations=annotations,
        events=events,
    )


# ---- the volume's plan ----


def plan_persistent_volume(
    volume: Mapping[str, Any], claim: Mapping[str, Any] | None
) -> PersistentVolumeAction:
    """`syncVolume` and pvprotection for one volume, given the claim its claimRef names
    (None when that claim does not exist or has another uid).

    >>> pv = {"metadata": {"name": "pvc-1"}, "status": {"phase": "Bound"},
    ...       "spec": {"persistentVolumeReclaimPolicy": "Delete",
    ...                "claimRef": {"namespace": "ns", "name": "c", "uid": "1"}}}
    >>> plan_persistent_volume(pv, None)
    PersistentVolumeAction(action='delete', phase='Released', delete_directory=True)
    """
    metadata, spec = _meta(volume), _spec(volume)
    phase = (volume.get("status") or {}).get("phase")
    if metadata.get("deletionTimestamp"):
        protected = PV_PROTECTION in (metadata.get("finalizers") or [])
        return PersistentVolumeAction(
            "release-finalizer" if protected and phase != "Bound" else "none"
        )
    ref = spec.get("claimRef")
    if not ref:
        return (
            PersistentVolumeAction("none")
            if phase == "Available"
            else PersistentVolumeAction("phase", "Available")
        )
    if claim is not None:
        bound = str(_spec(claim).get("volumeName") or "") == metadata.get("name")
        if bound and phase != "Bound":
            return PersistentVolumeAction("phase", "Bound")
        return PersistentVolumeAction("none")
    if not ref.get("uid"):
        return PersistentVolumeAction("none")  # pre-bound by a user to a claim not created yet
    policy = spec.get("persistentVolumeReclaimPolicy") or "Retain"
    if policy == "Delete":
        return PersistentVolumeAction("delete", "Released", delete_directory=True)
    return (
        PersistentVolumeAction("none")
        if phase == "Released"
        else PersistentVolumeAction("phase", "Released")
    )


# ---- the controller ----

Key = tuple[str, str, str]  # ("claim", namespace, name) or ("volume", "", name)


class PersistentVolumeController:
    """Binds, provisions, releases and protects claims and volumes."""

    name = "persistentvolume"

    def __init__(
        self, store: Store, clock: Clock, settings: ControlPlaneSettings, root: Path
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.root = root

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        obj, metadata = change.object, _meta(change.object)
        if change.resource == CLAIMS:
            return [("claim", str(metadata.get("namespace", "")), str(metadata.get("name", "")))]
        if change.resource == VOLUMES:
            keys: list[Key] = [("volume", "", str(metadata.get("name", "")))]
            ref = _spec(obj).get("claimRef") or {}
            if ref.get("name"):
                keys.append(("claim", str(ref.get("namespace", "")), str(ref["name"])))
            return keys
        if change.resource == STORAGE_CLASSES:
            return self._unbound_claims()
        if change.resource == PODS and (change.type == DELETED or _spec(obj).get("nodeName")):
            namespace = str(metadata.get("namespace", ""))
            return [("claim", namespace, name) for name in claim_names(obj)]
        return []

    def _unbound_claims(self) -> list[Key]:
        return [
            ("claim", c["metadata"]["namespace"], c["metadata"]["name"])
            for c in self.store.snapshot(CLAIMS)
            if not _spec(c).get("volumeName")
        ]

    def all_keys(self) -> Iterable[Hashable]:
        claims = [
            ("claim", c["metadata"]["namespace"], c["metadata"]["name"])
            for c in self.store.snapshot(CLAIMS)
        ]
        volumes = [("volume", "", v["metadata"]["name"]) for v in self.store.snapshot(VOLUMES)]
        return sorted(claims) + sorted(volumes)

    def reconcile(self, key: Hashable) -> float | None:
        if not isinstance(key, tuple) or len(key) != 3:
            raise TypeError(f"expected (kind, namespace, name), got {key!r}")
        kind, namespace, name = (str(part) for part in key)
        if kind == "claim":
            return self._sync_claim(namespace, name)
        return self._sync_volume(name)

    # -- claims --

    def _sync_claim(self, namespace: str, name: str) -> float | None:
        claim = self.store.find(CLAIMS, namespace, name)
        if claim is None:
            return None
        world = World(
            {v["metadata"]["name"]: v for v in self.store.snapshot(VOLUMES)},
            {c["metadata"]["name"]: c for c in self.store.snapshot(STORAGE_CLASSES)},
            {n["metadata"]["name"]: n for n in self.store.snapshot("nodes")},
            self.store.snapshot(PODS, namespace),
            self.root,
        )
        plan = plan_claim(claim, world)
        for event in plan.events:
            self._event(claim, event)
        if plan.action == "release-finalizer":
            self._remove_finalizer(CLAIMS, namespace, name, PVC_PROTECTION)
        elif plan.action == "provision" and plan.provision is not None:
            self._provision(claim, plan)
            return 0.0  # bind it in the next sync, as the PV controller does
        elif plan.action == "bind":
            self._bind(claim, world.volumes[plan.volume_name])
        elif plan.action == "lost":
            self._set_claim_status(namespace, name, {"phase": "Lost"})
        return None

    def _provision(self, claim: KubeObject, plan: ClaimPlan) -> None:
        assert plan.provision is not None
        namespace, name = claim["metadata"]["namespace"], claim["metadata"]["name"]

        def annotate(obj: KubeObject) -> None:
            obj["metadata"].setdefault("annotations", {}).update(plan.annotations)

        self.store.mutate(CLAIMS, namespace, name, annotate)
        volume = plan.provision.volume
        directory = Path(volume["spec"]["hostPath"]["path"])
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, DIRECTORY_MODE)  # past the umask
        try:
            self.store.create(VOLUMES, volume)
        except ApiError as error:
            if error.code != 409:
                raise

    def _bind(self, claim: KubeObject, volume: Mapping[str, Any]) -> None:
        """`bind`: the volume's claimRef and phase, then the claim's volumeName and status."""
        metadata = claim["metadata"]
        volume_name = volume["metadata"]["name"]
        reference = {
            "kind": "PersistentVolumeClaim",
            "namespace": metadata["namespace"],
            "name": metadata["name"],
            "uid": metadata["uid"],
            "apiVersion": "v1",
            "resourceVersion": metadata.get("resourceVersion"),
        }

        def claim_volume(obj: KubeObject) -> None:
            ref = obj["spec"].get("claimRef") or {}
            if ref.get("uid") != metadata["uid"]:
                obj["spec"]["claimRef"] = reference

        bound = self.store.mutate(VOLUMES, "", volume_name, claim_volume)
        self._set_volume_phase(volume_name, "Bound")
        by_controller = not _spec(claim).get("volumeName")

        def claim_bind(obj: KubeObject) -> None:
            obj["spec"]["volumeName"] = volume_name
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[BIND_COMPLETED_ANNOTATION] = "yes"
            if by_controller:
                annotations[BOUND_BY_CONTROLLER_ANNOTATION] = "yes"

        self.store.mutate(CLAIMS, metadata["namespace"], metadata["name"], claim_bind)
        spec = _spec(bound)
        status = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or []),
            "capacity": dict(spec.get("capacity") or {}),
        }
        self._set_claim_status(metadata["namespace"], metadata["name"], status)

    def _set_claim_status(self, namespace: str, name: str, status: KubeObject) -> None:
        def write(obj: KubeObject) -> None:
            obj["status"] = {**(obj.get("status") or {}), **status}

        self.store.mutate(CLAIMS, namespace, name, write, subresource="status")

    # -- volumes --

    def _sync_volume(self, name: str) -> float | None:
        volume = self.store.find(VOLUMES, "", name)
        if volume is None:
            return None
        ref = _spec(volume).get("claimRef") or {}
        claim = (
            self.store.find(CLAIMS, str(ref.get("namespace", "")), str(ref.get("name", "")))
            if ref.get("name")
            else None
        )
        if claim is not None and ref.get("uid") and _meta(claim).get("uid") != ref.get("uid"):
            claim = None
        plan = plan_persistent_volume(volume, claim)
        if plan.action == "phase":
            self._set_volume_phase(name, plan.phase)
        elif plan.action == "release-finalizer":
            self._remove_finalizer(VOLUMES, "", name, PV_PROTECTION)
        elif plan.action == "delete":
            self._set_volume_phase(name, plan.phase)
            if plan.delete_directory:
                self._remove_directory(volume)
            self._remove_finalizer(VOLUMES, "", name, PV_PROTECTION)
            try:
                self.store.delete(VOLUMES, "", name)
            except ApiError as error:
                if error.code != 404:
                    raise
        return None

    def _remove_directory(self, volume: Mapping[str, Any]) -> None:
        """The volume's directory, only if it is one of ours (under the volume root)."""
        path = Path(str((_spec(volume).get("hostPath") or {}).get("path", "")))
        root = Path(os.path.realpath(self.root))
        if Path(os.path.realpath(path)).parent != root:
            log.info("not deleting %s: not a directory the sandbox provisioned", path)
            return
        shutil.rmtree(path, ignore_errors=True)

    def _set_volume_phase(self, name: str, phase: str) -> None:
        def write(obj: KubeObject) -> None:
            obj.setdefault("status", {})["phase"] = phase

        volume = self.store.find(VOLUMES, "", name)
        if volume is not None and (volume.get("status") or {}).get("phase") != phase:
            self.store.mutate(VOLUMES, "", name, write, subresource="status")

    def _remove_finalizer(self, resource: str, namespace: str, name: str, finalizer: str) -> None:
        def remove(obj: KubeObject) -> None:
            finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            obj["metadata"]["finalizers"] = finalizers

        try:
            self.store.mutate(resource, namespace, name, remove)
        except ApiError as error:
            if error.code != 404:
                raise

    def _event(self, claim: KubeObject, event: Event) -> None:
        self.store.record_event(
            claim, event.reason, event.message, event_type=event.type, component=event.component
        )
