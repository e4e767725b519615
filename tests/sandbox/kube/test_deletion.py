"""What a DELETE answers, per resource, as kube-apiserver answers it (sandbox/kube/deletion.py)."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.kube import deletion
from sandbox.kube.deletion import delete_answer
from sandbox.kube.resources import RESOURCES, ResourceType, by_key

# The kind a DELETE answers when it removes the object at once. "Status" where the
# upstream registry leaves `ReturnDeletedObject` unset (generic Store.finalizeDelete);
# the kind where kubernetes/kubernetes sets it, in pkg/registry/<group>/<resource>/
# storage/storage.go. The 37.x Python client, generated from upstream OpenAPI, agrees:
# it types delete_namespaced_pod/service/service_account as V1Pod/V1Service/
# V1ServiceAccount and every other DELETE here as a Status ("object").
UPSTREAM_ANSWER_ON_REMOVE = {
    # namespace/storage/storage.go: ReturnDeletedObject: true, and REST.Delete answers
    # the Namespace itself while spec.finalizers hold it in Terminating.
    "namespaces": "Namespace",
    "nodes": "Status",
    "pods": "Pod",  # pod/storage/storage.go: ReturnDeletedObject: true
    "services": "Service",  # service/storage/storage.go: ReturnDeletedObject: true (1.23+)
    "endpoints": "Status",
    "events": "Status",
    "configmaps": "Status",
    "secrets": "Status",
    "serviceaccounts": "ServiceAccount",  # serviceaccount/storage/storage.go
    "apps/deployments": "Status",
    "apps/replicasets": "Status",
    "apps/daemonsets": "Status",
    "apps/statefulsets": "Status",
    "autoscaling/horizontalpodautoscalers": "Status",
    "policy/poddisruptionbudgets": "Status",
    "discovery.k8s.io/endpointslices": "Status",
    "networking.k8s.io/ingresses": "Status",
    "networking.k8s.io/networkpolicies": "Status",
    "events.k8s.io/events": "Status",
    "coordination.k8s.io/leases": "Status",
    # core/replicationcontroller/storage/storage.go and batch/job/storage/storage.go build
    # a genericregistry.Store without ReturnDeletedObject; so does kube-aggregator's
    # pkg/registry/apiservice/etcd/etcd.go. The Python client types all three as Status.
    "replicationcontrollers": "Status",
    "batch/jobs": "Status",
    "apiregistration.k8s.io/apiservices": "Status",
    # pkg/registry/rbac/*/storage/storage.go: no ReturnDeletedObject
    "rbac.authorization.k8s.io/roles": "Status",
    "rbac.authorization.k8s.io/rolebindings": "Status",
    "rbac.authorization.k8s.io/clusterroles": "Status",
    "rbac.authorization.k8s.io/clusterrolebindings": "Status",
    # apiextensions-apiserver pkg/registry/customresource/etcd.go newREST: no
    # pkg/registry/core/persistentvolume{,claim}/storage/storage.go: ReturnDeletedObject
    "persistentvolumes": "PersistentVolume",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "storage.k8s.io/storageclasses": "StorageClass",
    # pkg/registry/batch/cronjob/storage/storage.go: a Status
    "batch/cronjobs": "Status",
    # ReturnDeletedObject, so every custom resource answers a Status
    "chaos-mesh.org/networkchaos": "Status",
    "chaos-mesh.org/dnschaos": "Status",
}


def deletable() -> list[ResourceType]:
    return [rt for rt in RESOURCES if rt.stored and "delete" in rt.verbs]


def make_object(
    rt: ResourceType, name: str = "x", *, finalizers: tuple[str, ...] = ()
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if rt.namespaced:
        metadata["namespace"] = "default"
    if finalizers:
        metadata["finalizers"] = list(finalizers)
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": metadata}


def test_every_deletable_resource_has_an_upstream_answer() -> None:
    assert sorted(UPSTREAM_ANSWER_ON_REMOVE) == sorted(rt.key for rt in deletable())


@pytest.mark.parametrize("rt", deletable(), ids=lambda rt: rt.key)
def test_removed_at_once_answers_as_the_upstream_registry(rt: ResourceType) -> None:
    answer = delete_answer(rt, make_object(rt), removed=True)
    assert answer.code == 200
    assert answer.body["kind"] == UPSTREAM_ANSWER_ON_REMOVE[rt.key]


@pytest.mark.parametrize(
    ("key", "details"),
    [
        pytest.param(
            "configmaps", {"name": "x", "kind": "configmaps", "uid": "uid-x"}, id="core-no-group"
        ),
        pytest.param(
            "apps/deployments",
            {"name": "x", "group": "apps", "kind": "deployments", "uid": "uid-x"},
            id="group-and-resource-as-kind",
        ),
        pytest.param(
            "events.k8s.io/events",
            {"name": "x", "group": "events.k8s.io", "kind": "events", "uid": "uid-x"},
            id="the-view-s-group",
        ),
    ],
)
def test_the_status_is_finalize_delete_s(key: str, details: dict[str, str]) -> None:
    """store.go finalizeDelete: no code, Kind is the resource, empty group left out."""
    body = delete_answer(by_key(key), make_object(by_key(key)), removed=True).body
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


@pytest.mark.parametrize(
    ("removed", "orphan_dependents", "code"),
    [
        pytest.param(True, None, 200, id="removed"),
        pytest.param(True, False, 200, id="removed-orphan-false"),
        pytest.param(False, None, 200, id="held"),
        pytest.param(False, True, 200, id="held-orphan-true"),
        pytest.param(False, False, 202, id="held-orphan-false-is-accepted"),
    ],
)
def test_202_only_when_held_and_orphan_dependents_false(
    removed: bool, orphan_dependents: bool | None, code: int
) -> None:
    """handlers/delete.go DeleteResource: `!wasDeleted && OrphanDependents == false`."""
    rt = by_key("configmaps")
    answer = delete_answer(
        rt, make_object(rt), removed=removed, orphan_dependents=orphan_dependents
    )
    assert answer.code == code


@pytest.mark.parametrize("rt", deletable(), ids=lambda rt: rt.key)
def test_an_object_held_by_finalizers_is_answered_itself(rt: ResourceType) -> None:
    """Store.Delete answers the updated object whenever it is not removed, any registry."""
    held = make_object(rt, finalizers=("example.com/hold",))
    held["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    answer = delete_answer(rt, held, removed=False)
    assert (answer.code, answer.body) == (200, held)


def test_the_worked_examples_hold() -> None:
    assert doctest.testmod(deletion).failed == 0
