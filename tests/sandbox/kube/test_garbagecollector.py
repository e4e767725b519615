"""Garbage collector: owner verdicts and namespace conditions as tables; cascades on the store."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock
from sandbox.kube.controllers import garbagecollector as garbagecollector_module
from sandbox.kube.controllers.garbagecollector import (
    GarbageCollector,
    OwnerVerdict,
    judge_owners,
    namespace_conditions,
    owner_resource,
)
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store
from tests.sandbox.kube.builders import (
    add_node,
    add_pod,
    changes_of,
    make_node,
    make_pod,
    new_store,
)

KubeObject = dict[str, Any]


# ---- pure decisions ----


@pytest.mark.parametrize(
    ("present", "verdict"),
    [
        pytest.param({}, OwnerVerdict("keep"), id="no-owners"),
        pytest.param({"a": True}, OwnerVerdict("keep"), id="owner-present"),
        pytest.param({"a": False}, OwnerVerdict("delete", ("a",)), id="owner-gone"),
        pytest.param({"a": None}, OwnerVerdict("keep"), id="unknown-kind-assumed-present"),
        pytest.param({"a": False, "b": True}, OwnerVerdict("prune", ("a",)), id="one-of-two-gone"),
        pytest.param({"a": False, "b": False}, OwnerVerdict("delete", ("a", "b")), id="both-gone"),
    ],
)
def test_judge_owners(present: dict[str, bool | None], verdict: OwnerVerdict) -> None:
    refs = [{"uid": uid} for uid in present]
    assert judge_owners(refs, present) == verdict


@pytest.mark.parametrize(
    ("api_version", "kind", "expected"),
    [
        pytest.param("apps/v1", "ReplicaSet", ("apps/replicasets", "shop"), id="namespaced"),
        pytest.param("v1", "Node", ("nodes", ""), id="cluster-scoped"),
        pytest.param("apps/v1", "ControllerRevision", None, id="not-served"),
    ],
)
def test_owner_resource(api_version: str, kind: str, expected: tuple[str, str] | None) -> None:
    assert owner_resource({"apiVersion": api_version, "kind": kind}, "shop") == expected


@pytest.mark.parametrize(
    ("remaining", "finalizers", "content", "finalizer_message"),
    [
        pytest.param(
            {},
            {},
            ("False", "All content successfully removed"),
            ("False", "All content-preserving finalizers finished"),
            id="empty",
        ),
        pytest.param(
            {"pods.": 2, "deployments.apps": 1},
            {"example.com/hold": 1},
            (
                "True",
                "Some resources are remaining: deployments.apps has 1 resource "
                "instances, pods. has 2 resource instances",
            ),
            (
                "True",
                "Some content in the namespace has finalizers remaining: "
                "example.com/hold in 1 resource instances",
            ),
            id="remaining",
        ),
    ],
)
def test_namespace_conditions(
    remaining: dict[str, int],
    finalizers: dict[str, int],
    content: tuple[str, str],
    finalizer_message: tuple[str, str],
) -> None:
    conditions = {c["type"]: c for c in namespace_conditions([], remaining, finalizers, "T")}
    assert len(conditions) == 5
    found = conditions["NamespaceContentRemaining"]
    assert (found["status"], found["message"]) == content
    found = conditions["NamespaceFinalizersRemaining"]
    assert (found["status"], found["message"]) == finalizer_message
    assert conditions["NamespaceDeletionContentFailure"]["reason"] == "ContentDeleted"


# ---- the controller against the store ----


def _world() -> tuple[Store, GarbageCollector, list[Change]]:
    clock = ManualClock()
    store = new_store(clock, "shop")
    add_node(store, make_node("node-a1"))
    collector = GarbageCollector(store, clock, ControlPlaneSettings())
    collector.all_keys()
    return store, collector, changes_of(store)


def _owner_ref(obj: KubeObject) -> KubeObject:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def _configmap(
    store: Store,
    name: str,
    *owners: KubeObject,
    namespace: str = "default",
    finalizers: list[str] | None = None,
) -> KubeObject:
    metadata: KubeObject = {"name": name, "namespace": namespace}
    if owners:
        metadata["ownerReferences"] = [_owner_ref(owner) for owner in owners]
    if finalizers:
        metadata["finalizers"] = finalizers
    return store.create("configmaps", {"metadata": metadata, "data": {}})


def _drain(collector: GarbageCollector, seen: list[Change]) -> None:
    """Feed every change to keys_for and reconcile the keys until nothing new happens."""
    done = 0
    for _ in range(20):
        if done == len(seen):
            return
        batch, done = seen[done:], len(seen)
        for change in batch:
            for key in collector.keys_for(change):
                collector.reconcile(key)


def test_deleting_a_deployment_cascades_to_replicasets_and_pods() -> None:
    store, collector, seen = _world()
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    deployment = store.create(
        "apps/deployments",
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
        },
    )
    replicaset = store.create(
        "apps/replicasets",
        {
            "metadata": {
                "name": "web-abc",
                "namespace": "default",
                "ownerReferences": [_owner_ref(deployment)],
            },
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template},
        },
    )
    add_pod(store, make_pod("web-abc-1", node="node-a1", owner=_owner_ref(replicaset)))
    add_pod(store, make_pod("web-abc-2", owner=_owner_ref(replicaset)))  # never scheduled
    _drain(collector, seen)
    assert store.find("apps/replicasets", "default", "web-abc") is not None

    store.delete("apps/deployments", "default", "web")
    _drain(collector, seen)

    assert store.find("apps/replicasets", "default", "web-abc") is None
    running = store.get("pods", "default", "web-abc-1")
    assert running["metadata"]["deletionTimestamp"]  # graceful: the kubelet finishes it
    assert store.find("pods", "default", "web-abc-2") is None  # unscheduled: grace 0


def test_dependent_of_a_recreated_owner_is_collected() -> None:
    store, collector, seen = _world()
    owner = _configmap(store, "owner")
    _configmap(store, "dependent", owner)
    store.delete("configmaps", "default", "owner")
    _configmap(store, "owner")  # same name, new uid
    _drain(collector, seen)
    assert store.find("configmaps", "default", "dependent") is None


def test_dangling_reference_is_pruned_while_another_owner_lives() -> None:
    store, collector, seen = _world()
    first, second = _configmap(store, "first"), _configmap(store, "second")
    _configmap(store, "dependent", first, second)
    store.delete("configmaps", "default", "first")
    _drain(collector, seen)
    dependent = store.get("configmaps", "default", "dependent")
    assert [ref["name"] for ref in dependent["metadata"]["ownerReferences"]] == ["second"]


def test_owner_of_an_unserved_kind_is_assumed_present() -> None:
    store, collector, _ = _world()
    store.create(
        "configmaps",
        {
            "metadata": {
                "name": "job-output",
                "namespace": "default",
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "name": "j", "uid": "u"}
                ],
            }
        },
    )
    for key in collector.all_keys():
        collector.reconcile(key)
    assert store.find("configmaps", "default", "job-output") is not None


def test_namespace_deletion_empties_it_then_finalizes_it() -> None:
    store, collector, seen = _world()
    store.mutate(
        "namespaces", "", "shop", lambda ns: ns["metadata"].update(finalizers=["test.example/hold"])
    )
    _configmap(store, "settings", namespace="shop")
    _configmap(store, "held", namespace="shop", finalizers=["example.com/hold"])
    add_pod(store, make_pod("web-1", node="node-a1", namespace="shop"))
    store.delete("namespaces", "", "shop")  # marked: metadata.finalizers hold it
    _drain(collector, seen)

    assert store.find("configmaps", "shop", "settings") is None
    namespace = store.get("namespaces", "", "shop")
    conditions = {c["type"]: c for c in namespace["status"]["conditions"]}
    assert conditions["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: configmaps. has 1 resource instances, "
        "pods. has 1 resource instances"
    )
    assert conditions["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
        "resource instances"
    )
    assert namespace["spec"]["finalizers"] == ["kubernetes"]

    store.delete("pods", "shop", "web-1", grace_period_seconds=0)  # the kubelet is done
    store.mutate("configmaps", "shop", "held", lambda cm: cm["metadata"].pop("finalizers"))
    _drain(collector, seen)

    namespace = store.get("namespaces", "", "shop")
    assert namespace["spec"]["finalizers"] == []
    assert {c["type"]: c["status"] for c in namespace["status"]["conditions"]}[
        "NamespaceContentRemaining"
    ] == "False"
    store.mutate("namespaces", "", "shop", lambda ns: ns["metadata"].pop("finalizers"))
    assert store.find("namespaces", "", "shop") is None


def test_namespace_waits_for_other_spec_finalizers() -> None:
    store, collector, seen = _world()
    store.mutate(
        "namespaces", "", "shop", lambda ns: ns["metadata"].update(finalizers=["test.example/hold"])
    )
    store.mutate(
        "namespaces",
        "",
        "shop",
        lambda ns: ns["spec"].update(finalizers=["kubernetes", "example.com/other"]),
    )
    store.delete("namespaces", "", "shop")
    _drain(collector, seen)
    assert store.get("namespaces", "", "shop")["spec"]["finalizers"] == ["example.com/other"]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(garbagecollector_module).failed == 0
