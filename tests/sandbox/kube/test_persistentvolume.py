"""PersistentVolumeClaims: default-class admission, binding and provisioning plans, the
scheduler's volume predicates by table, and the whole flow on a Store (a WaitForFirstConsumer
claim provisioned in the zone of the node its pod goes to, the pod pinned to that zone,
the directory removed with the claim)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from sandbox.kube import storageclasses
from sandbox.kube.clock import ManualClock
from sandbox.kube.controllers.persistentvolume import (
    CLAIMS,
    VOLUMES,
    PersistentVolumeController,
    World,
    plan_claim,
    plan_persistent_volume,
)
from sandbox.kube.controllers.scheduler import Scheduler, schedule
from sandbox.kube.controllers.volumebinding import (
    REASON_NODE_CONFLICT,
    SELECTED_NODE_ANNOTATION,
    VolumeFacts,
    filter_node,
    pre_filter,
)
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.storageadmission import STORAGE_CLASSES, default_class_name
from sandbox.kube.store import Store

KubeObject = dict[str, Any]
ZONE = "topology.kubernetes.io/zone"
WFFC = {
    "metadata": {"name": "gp2"},
    "provisioner": "kubernetes.io/aws-ebs",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}
IMMEDIATE = {**WFFC, "metadata": {"name": "fast"}, "volumeBindingMode": "Immediate"}


def make_node(name: str, zone: str) -> KubeObject:
    return {
        "metadata": {"name": name, "labels": {ZONE: zone, "kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "30"},
        },
    }


def make_claim(
    name: str = "reports",
    cls: str | None = "gp2",
    *,
    volume: str = "",
    bound: bool = False,
    selected: str = "",
    deleting: bool = False,
) -> KubeObject:
    annotations: dict[str, str] = {}
    if selected:
        annotations[SELECTED_NODE_ANNOTATION] = selected
    if bound:
        annotations["pv.kubernetes.io/bind-completed"] = "yes"
    metadata: KubeObject = {
        "name": name,
        "namespace": "gd",
        "uid": f"uid-{name}",
        "annotations": annotations,
        "finalizers": ["kubernetes.io/pvc-protection"],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: KubeObject = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
    }
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    return {
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Bound" if bound else "Pending"},
    }


def make_volume(
    name: str,
    zone: str = "us-west-2a",
    *,
    claim: str = "",
    phase: str = "Available",
    size: str = "5Gi",
) -> KubeObject:
    spec: KubeObject = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "gp2",
        "persistentVolumeReclaimPolicy": "Delete",
        "hostPath": {"path": f"/state/volumes/{name}"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": ZONE, "operator": "In", "values": [zone]}]}
                ]
            }
        },
    }
    if claim:
        spec["claimRef"] = {"namespace": "gd", "name": claim, "uid": f"uid-{claim}"}
    return {"metadata": {"name": name}, "spec": spec, "status": {"phase": phase}}


def pod_with(claim: str = "reports") -> KubeObject:
    return {
        "metadata": {"name": "runner", "namespace": "gd", "uid": "pod-uid", "labels": {}},
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}],
            "volumes": [{"name": "reports", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


NODES = {
    n["metadata"]["name"]: n for n in (make_node("a1", "us-west-2a"), make_node("b1", "us-west-2b"))
}


# ---- DefaultStorageClass ----


def test_eks_1_32_has_gp2_but_no_default_class() -> None:
    store = Store(ManualClock())
    storageclasses.install(store)
    classes = store.list(STORAGE_CLASSES)
    assert [(c["metadata"]["name"], c["provisioner"], c["volumeBindingMode"]) for c in classes] == [
        ("gp2", "kubernetes.io/aws-ebs", "WaitForFirstConsumer")
    ]
    assert default_class_name(classes) is None


@pytest.mark.parametrize(
    ("given", "default", "expected"),
    [
        pytest.param(None, None, None, id="no-default-no-class"),
        pytest.param(None, "gp2", "gp2", id="default-applied"),
        pytest.param("", "gp2", "", id="explicit-empty-kept"),
        pytest.param("fast", "gp2", "fast", id="explicit-kept"),
    ],
)
def test_default_storage_class_admission(
    given: str | None, default: str | None, expected: str | None
) -> None:
    store = Store(ManualClock())
    storageclasses.install(store)
    store.create("namespaces", {"metadata": {"name": "gd"}})
    if default is not None:
        store.mutate(
            STORAGE_CLASSES,
            "",
            default,
            lambda sc: (
                sc["metadata"]
                .setdefault("annotations", {})
                .update({"storageclass.kubernetes.io/is-default-class": "true"})
            ),
        )
    body = make_claim(cls=given)
    body["metadata"] = {"name": "reports", "namespace": "gd"}
    created = store.create(CLAIMS, body)
    assert created["spec"].get("storageClassName") == expected
    assert created["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert created["status"] == {"phase": "Pending"}


# ---- the claim's plan ----


def world(*volumes: KubeObject, pods: tuple[KubeObject, ...] = ()) -> World:
    return World(
        {v["metadata"]["name"]: v for v in volumes},
        {"gp2": WFFC, "fast": IMMEDIATE},
        NODES,
        pods,
        Path("/state/volumes"),
    )


@pytest.mark.parametrize(
    ("claim", "volumes", "action", "target", "events"),
    [
        pytest.param(
            make_claim(cls=None), (), "wait", "", ["FailedBinding"], id="no-class-no-volume"
        ),
        pytest.param(
            make_claim(cls="nope"), (), "wait", "", ["ProvisioningFailed"], id="unknown-class"
        ),
        pytest.param(make_claim(), (), "wait", "", ["WaitForFirstConsumer"], id="waits-for-a-pod"),
        pytest.param(
            make_claim(selected="b1"),
            (),
            "provision",
            "pvc-uid-reports",
            ["ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"],
            id="provisions-once-a-node-is-chosen",
        ),
        pytest.param(
            make_claim(cls="fast"), (), "provision", "pvc-uid-reports", None, id="immediate"
        ),
        pytest.param(
            make_claim(selected="b1"),
            (make_volume("pv-a", "us-west-2a"), make_volume("pv-b", "us-west-2b")),
            "bind",
            "pv-b",
            [],
            id="binds-a-volume-the-node-reaches",
        ),
        pytest.param(
            make_claim(cls="fast"),
            (
                make_volume("big", size="50Gi")
                | {"spec": {**make_volume("big", size="50Gi")["spec"], "storageClassName": "fast"}},
            ),
            "bind",
            "big",
            [],
            id="immediate-binds-an-available-volume",
        ),
        pytest.param(
            make_claim(selected="a1"),
            (make_volume("pvc-uid-reports", claim="reports", phase="Pending"),),
            "bind",
            "pvc-uid-reports",
            [],
            id="binds-its-provisioned-volume",
        ),
        pytest.param(
            make_claim(volume="pv-1", bound=True),
            (make_volume("pv-1", claim="reports", phase="Bound"),),
            "none",
            "",
            [],
            id="bound-stays",
        ),
        pytest.param(
            make_claim(volume="gone", bound=True), (), "lost", "", ["ClaimLost"], id="lost"
        ),
        pytest.param(
            make_claim(deleting=True), (), "release-finalizer", "", [], id="deleted-unused"
        ),
    ],
)
def test_plan_claim(
    claim: KubeObject,
    volumes: tuple[KubeObject, ...],
    action: str,
    target: str,
    events: list[str] | None,
) -> None:
    plan = plan_claim(claim, world(*volumes))
    assert plan.action == action
    if action == "bind":
        assert plan.volume_name == target
    if action == "provision":
        assert plan.provision is not None
        assert plan.provision.volume["metadata"]["name"] == target
    if events is not None:
        assert [e.reason for e in plan.events] == events


def test_a_deleted_claim_in_use_by_a_running_pod_keeps_its_protection() -> None:
    running = pod_with() | {
        "spec": {**pod_with()["spec"], "nodeName": "a1"},
        "status": {"phase": "Running"},
    }
    done = running | {"status": {"phase": "Succeeded"}}
    claim = make_claim(deleting=True)
    assert plan_claim(claim, world(pods=(running,))).action == "none"
    assert plan_claim(claim, world(pods=(done,))).action == "release-finalizer"


def test_the_provisioned_volume_is_the_request_in_the_selected_nodes_zone() -> None:
    plan = plan_claim(make_claim(selected="b1"), world())
    assert plan.provision is not None
    volume = plan.provision.volume
    assert volume["metadata"]["annotations"] == {
        "pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com"
    }
    spec = volume["spec"]
    assert spec["capacity"] == {"storage": "5Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["hostPath"]["path"] == "/state/volumes/pvc-uid-reports"
    assert spec["claimRef"]["uid"] == "uid-reports"
    terms = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["us-west-2b"]}]}
    ]
    assert plan.annotations == {
        "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
        "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
    }


# ---- the volume's plan ----


@pytest.mark.parametrize(
    ("volume", "claim", "expected"),
    [
        pytest.param(
            make_volume("v", phase="Pending"), None, ("phase", "Available", False), id="new"
        ),
        pytest.param(make_volume("v"), None, ("none", "", False), id="available"),
        pytest.param(
            make_volume("v", claim="reports", phase="Bound"),
            None,
            ("delete", "Released", True),
            id="claim-gone-delete",
        ),
        pytest.param(
            make_volume("v", claim="reports", phase="Bound")
            | {
                "spec": {
                    **make_volume("v", claim="reports")["spec"],
                    "persistentVolumeReclaimPolicy": "Retain",
                }
            },
            None,
            ("phase", "Released", False),
            id="claim-gone-retain",
        ),
        pytest.param(
            make_volume("v", claim="reports", phase="Pending"),
            make_claim(volume="v"),
            ("phase", "Bound", False),
            id="claim-bound-to-it",
        ),
    ],
)
def test_plan_volume(
    volume: KubeObject, claim: KubeObject | None, expected: tuple[str, str, bool]
) -> None:
    plan = plan_persistent_volume(volume, claim)
    assert (plan.action, plan.phase, plan.delete_directory) == expected


# ---- the scheduler's predicates ----


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        pytest.param({}, 'persistentvolumeclaim "reports" not found', id="missing"),
        pytest.param(
            {"reports": make_claim(deleting=True)},
            'persistentvolumeclaim "reports" is being deleted',
            id="deleting",
        ),
        pytest.param(
            {"reports": make_claim(cls="fast")},
            "pod has unbound immediate PersistentVolumeClaims",
            id="unbound-immediate",
        ),
        pytest.param(
            {"reports": make_claim(cls=None)},
            "pod has unbound immediate PersistentVolumeClaims",
            id="unbound-without-class",
        ),
        pytest.param({"reports": make_claim()}, "", id="waiting-for-first-consumer-may-go"),
    ],
)
def test_volume_pre_filter(claims: dict[str, KubeObject], message: str) -> None:
    facts = VolumeFacts(claims, {}, {"gp2": WFFC, "fast": IMMEDIATE})
    assert pre_filter(pod_with(), facts)[0] == message


def test_a_bound_volume_in_zone_a_keeps_the_pod_out_of_zone_b() -> None:
    facts = VolumeFacts(
        {"reports": make_claim(volume="pv-a", bound=True)},
        {"pv-a": make_volume("pv-a", "us-west-2a", claim="reports", phase="Bound")},
        {"gp2": WFFC},
    )
    _, claims = pre_filter(pod_with(), facts)
    assert filter_node(NODES["a1"], claims) == []
    assert filter_node(NODES["b1"], claims) == [REASON_NODE_CONFLICT]
    decision = schedule(pod_with(), list(NODES.values()), [], random.Random(1), None, facts)
    assert decision.node_name == "a1"
    zone_b_only = schedule(pod_with(), [NODES["b1"]], [], random.Random(1), None, facts)
    assert zone_b_only.message == (
        "0/1 nodes are available: 1 node(s) had volume node affinity conflict."
    )


def test_a_missing_claim_is_a_failed_scheduling_on_every_node() -> None:
    decision = schedule(
        pod_with("gone"), list(NODES.values()), [], random.Random(1), None, VolumeFacts({}, {}, {})
    )
    assert decision.node_name is None
    assert decision.message == '0/2 nodes are available: persistentvolumeclaim "gone" not found.'


# ---- the whole flow on a store ----


def test_a_claim_is_provisioned_where_its_pod_goes_and_removed_with_it(tmp_path: Path) -> None:
    clock = ManualClock()
    store = Store(clock)
    storageclasses.install(store)
    store.create("namespaces", {"metadata": {"name": "gd"}})
    for node in NODES.values():
        store.create("nodes", node)
    settings = ControlPlaneSettings()
    volumes = PersistentVolumeController(store, clock, settings, tmp_path / "volumes")
    scheduler = Scheduler(store, clock, settings, rng=random.Random(3))
    body = make_claim(cls=None)
    body["metadata"] = {"name": "reports", "namespace": "gd"}
    body["spec"]["storageClassName"] = "gp2"
    store.create(CLAIMS, body)
    store.create("pods", pod_with())

    volumes.reconcile(("claim", "gd", "reports"))  # WaitForFirstConsumer
    scheduler.reconcile(("gd", "runner"))  # picks a node, selects it on the claim, waits
    assert not store.get("pods", "gd", "runner")["spec"].get("nodeName")
    selected = store.get(CLAIMS, "gd", "reports")["metadata"]["annotations"][
        SELECTED_NODE_ANNOTATION
    ]
    assert volumes.reconcile(("claim", "gd", "reports")) == 0.0  # provisioned
    volumes.reconcile(("claim", "gd", "reports"))  # bound
    claim = store.get(CLAIMS, "gd", "reports")
    assert claim["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "5Gi"},
    }
    volume = store.get(VOLUMES, "", claim["spec"]["volumeName"])
    assert volume["status"]["phase"] == "Bound"
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.is_dir() and directory.parent == tmp_path / "volumes"
    zone = NODES[selected]["metadata"]["labels"][ZONE]
    assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][
        0
    ]["values"] == [zone]

    scheduler.reconcile(("gd", "runner"))  # now bound: the pod goes to the volume's zone
    node = store.get("pods", "gd", "runner")["spec"]["nodeName"]
    assert NODES[node]["metadata"]["labels"][ZONE] == zone

    (directory / "report.json").write_text("{}")
    store.delete(CLAIMS, "gd", "reports")  # held by pvc-protection while the pod runs
    store.mutate(
        "pods",
        "gd",
        "runner",
        lambda p: p.setdefault("status", {}).update({"phase": "Running"}),
        subresource="status",
    )
    volumes.reconcile(("claim", "gd", "reports"))
    assert store.find(CLAIMS, "gd", "reports") is not None
    store.delete("pods", "gd", "runner", grace_period_seconds=0)
    volumes.reconcile(("claim", "gd", "reports"))
    assert store.find(CLAIMS, "gd", "reports") is None
    volumes.reconcile(("volume", "", volume["metadata"]["name"]))  # Released, Delete
    assert store.find(VOLUMES, "", volume["metadata"]["name"]) is None
    assert not directory.exists()
