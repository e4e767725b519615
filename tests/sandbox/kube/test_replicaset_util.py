"""Table tests for the ReplicaSet controller's pure decisions (`replicaset_util`)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.kube.clock import rfc3339
from sandbox.kube.controllers.replicaset_util import (
    BURST_REPLICAS,
    POD_DELETION_COST_ANNOTATION,
    RankedPod,
    active_pods_with_ranks_less,
    calculate_status,
    claim_objects,
    get_pods_to_delete,
    indirectly_related_pods,
    is_pod_active,
    manage_replicas,
    pod_deletion_cost,
    pod_from_template,
    rank_pods_for_deletion,
    seconds_until_available,
    slow_start_batches,
    with_controller_ref,
    without_owner_ref,
)
from sandbox.kube.podutil import is_pod_available, is_pod_ready
from sandbox.kube.selectors import parse_label_selector

KubeObject = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds))


def make_pod(
    name: str = "p",
    *,
    phase: str = "Running",
    node: str | None = "node-a",
    ready: bool | None = True,
    ready_since: float = 100.0,
    created: float = 200.0,
    restarts: int = 0,
    deletion_cost: str | None = None,
    deleting: bool = False,
    labels: dict[str, str] | None = None,
    owner_uid: str | None = None,
    uid: str | None = None,
) -> KubeObject:
    metadata: KubeObject = {
        "name": name,
        "namespace": "default",
        "uid": uid or f"uid-{name}",
        "creationTimestamp": ago(created),
        "labels": labels if labels is not None else {"app": "web"},
    }
    if deletion_cost is not None:
        metadata["annotations"] = {POD_DELETION_COST_ANNOTATION: deletion_cost}
    if deleting:
        metadata["deletionTimestamp"] = ago(-30)
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    status: KubeObject = {"phase": phase}
    if ready is not None:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": ago(ready_since),
            }
        ]
    if restarts:
        status["containerStatuses"] = [{"name": "c", "restartCount": restarts}]
    spec: KubeObject = {"containers": [{"name": "c", "image": "i"}]}
    if node is not None:
        spec["nodeName"] = node
    return {"metadata": metadata, "spec": spec, "status": status}


def make_rs(
    name: str = "web-abc",
    *,
    replicas: int = 3,
    min_ready: int = 0,
    generation: int = 1,
    labels: dict[str, str] | None = None,
    controller_uid: str | None = "deploy-uid",
    status: KubeObject | None = None,
) -> KubeObject:
    metadata: KubeObject = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "generation": generation,
    }
    if controller_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": controller_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec: KubeObject = {
        "replicas": replicas,
        "selector": {"matchLabels": labels or {"app": "web"}},
        "template": {
            "metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    }
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata,
        "spec": spec,
        "status": status or {},
    }


# ---- active, ready, available ----


@pytest.mark.parametrize(
    ("pod", "active"),
    [
        pytest.param(make_pod(phase="Running"), True, id="running"),
        pytest.param(make_pod(phase="Pending", node=None, ready=None), True, id="pending"),
        pytest.param(make_pod(phase="Unknown"), True, id="unknown"),
        pytest.param(make_pod(phase="Succeeded"), False, id="succeeded"),
        pytest.param(make_pod(phase="Failed"), False, id="failed"),
        pytest.param(make_pod(deleting=True), False, id="terminating-stops-counting-at-once"),
    ],
)
def test_is_pod_active(pod: KubeObject, active: bool) -> None:
    assert is_pod_active(pod) is active


@pytest.mark.parametrize(
    ("pod", "min_ready", "ready", "available"),
    [
        pytest.param(
            make_pod(ready=True, ready_since=0), 0, True, True, id="ready-no-min-ready-is-available"
        ),
        pytest.param(make_pod(ready=False), 0, False, False, id="not-ready"),
        pytest.param(make_pod(ready=None), 0, False, False, id="no-ready-condition"),
        pytest.param(
            make_pod(ready=True, ready_since=9), 10, True, False, id="ready-9s-of-10-not-yet"
        ),
        pytest.param(
            make_pod(ready=True, ready_since=10),
            10,
            True,
            True,
            id="ready-exactly-min-ready-seconds",
        ),
        pytest.param(make_pod(ready=True, ready_since=60), 10, True, True, id="ready-long-ago"),
    ],
)
def test_ready_and_available(pod: KubeObject, min_ready: int, ready: bool, available: bool) -> None:
    assert is_pod_ready(pod) is ready
    assert is_pod_available(pod, min_ready, NOW) is available


def test_seconds_until_available_is_the_earliest_pending_one() -> None:
    pods = [
        make_pod("a", ready_since=4),
        make_pod("b", ready_since=7),
        make_pod("c", ready_since=30),
        make_pod("d", ready=False),
    ]
    assert seconds_until_available(pods, 10, NOW) == 3.0
    assert seconds_until_available(pods, 0, NOW) is None
    assert seconds_until_available([make_pod(ready_since=30)], 10, NOW) is None


# ---- ranking for scale-down ----

RANK_CASES = [
    # (first-to-delete, second, their ranks): one row per ActivePodsWithRanks.Less criterion
    pytest.param(
        make_pod("a", node=None, phase="Pending", ready=None),
        make_pod("b"),
        (0, 0),
        id="1-unassigned-before-assigned",
    ),
    pytest.param(
        make_pod("a", phase="Pending", ready=None),
        make_pod("b", phase="Unknown"),
        (0, 0),
        id="2-pending-before-unknown",
    ),
    pytest.param(
        make_pod("a", phase="Unknown"),
        make_pod("b", phase="Running"),
        (0, 0),
        id="2-unknown-before-running",
    ),
    pytest.param(
        make_pod("a", ready=False), make_pod("b", ready=True), (0, 0), id="3-not-ready-before-ready"
    ),
    pytest.param(
        make_pod("a", deletion_cost="-10"),
        make_pod("b", deletion_cost="5"),
        (0, 0),
        id="4-lower-deletion-cost-first",
    ),
    pytest.param(
        make_pod("a", deletion_cost="1"),
        make_pod("b", deletion_cost="2"),
        (5, 0),
        id="4-cost-beats-co-location",
    ),
    pytest.param(make_pod("a"), make_pod("b"), (3, 1), id="5-more-co-located-first"),
    pytest.param(
        make_pod("a", ready_since=10),
        make_pod("b", ready_since=1000),
        (0, 0),
        id="6-more-recently-ready-first",
    ),
    pytest.param(
        make_pod("a", restarts=5), make_pod("b", restarts=1), (0, 0), id="7-more-restarts-first"
    ),
    pytest.param(
        make_pod("a", created=10), make_pod("b", created=1000), (0, 0), id="8-newer-first"
    ),
]


@pytest.mark.parametrize(("first", "second", "ranks"), RANK_CASES)
def test_active_pods_with_ranks_less(
    first: KubeObject, second: KubeObject, ranks: tuple[int, int]
) -> None:
    a, b = RankedPod(first, ranks[0]), RankedPod(second, ranks[1])
    assert active_pods_with_ranks_less(a, b, NOW)
    assert not active_pods_with_ranks_less(b, a, NOW)


def test_same_log2_age_bucket_falls_back_to_uid() -> None:
    # 1000 s and 1001 s ago share a log2(ns) bucket, so the uid decides (LogarithmicScaleDown).
    older = make_pod("a", created=1001, uid="uid-1")
    newer = make_pod("b", created=1000, uid="uid-2")
    assert active_pods_with_ranks_less(RankedPod(older, 0), RankedPod(newer, 0), NOW)


def test_rank_pods_for_deletion_sorts_the_whole_ladder() -> None:
    expected = [
        make_pod("unassigned", node=None, phase="Pending", ready=None),
        make_pod("pending", phase="Pending", ready=None),
        make_pod("not-ready", ready=False),
        make_pod("cheap", deletion_cost="-1"),
        make_pod("recently-ready", ready_since=5),
        make_pod("restarted", restarts=3, ready_since=10_000),
        make_pod("newest", ready_since=10_000, created=20_000),
        make_pod("oldest", ready_since=10_000, created=90_000),
    ]
    for shuffled in itertools.islice(itertools.permutations(expected), 0, 5000, 997):
        ranked = rank_pods_for_deletion(list(shuffled), [], NOW)
        assert [p["metadata"]["name"] for p in ranked] == [p["metadata"]["name"] for p in expected]


def test_co_location_rank_counts_active_related_pods_per_node() -> None:
    on_a = [make_pod(f"a{i}", node="node-a") for i in range(3)]
    on_b = make_pod("b0", node="node-b")
    terminating_on_b = [make_pod(f"t{i}", node="node-b", deleting=True) for i in range(5)]
    related = [*on_a, on_b, *terminating_on_b]
    doomed = get_pods_to_delete([on_b, *on_a], related, 1, NOW)
    assert doomed[0]["metadata"]["name"].startswith("a")  # node-a is doubled up


@pytest.mark.parametrize(
    ("value", "cost"),
    [
        pytest.param(None, 0, id="absent"),
        pytest.param("100", 100, id="positive"),
        pytest.param("-7", -7, id="negative"),
        pytest.param("x", 0, id="invalid"),
        pytest.param(str(2**31), 0, id="beyond-int32"),
    ],
)
def test_pod_deletion_cost(value: str | None, cost: int) -> None:
    assert pod_deletion_cost(make_pod(deletion_cost=value)) == cost


def test_get_pods_to_delete_takes_everything_unsorted_when_all_go() -> None:
    pods = [make_pod("ready"), make_pod("not-ready", ready=False)]
    assert [p["metadata"]["name"] for p in get_pods_to_delete(pods, pods, 5, NOW)] == [
        "ready",
        "not-ready",
    ]


# ---- creating and deleting ----


@pytest.mark.parametrize(
    ("count", "batches"),
    [
        pytest.param(0, [], id="none"),
        pytest.param(1, [1], id="one"),
        pytest.param(3, [1, 2], id="three"),
        pytest.param(7, [1, 2, 4], id="seven"),
        pytest.param(10, [1, 2, 4, 3], id="ten"),
        pytest.param(20, [1, 2, 4, 8, 5], id="twenty"),
    ],
)
def test_slow_start_batches(count: int, batches: list[int]) -> None:
    assert slow_start_batches(count) == batches


@pytest.mark.parametrize(
    ("replicas", "pods", "create", "deleted"),
    [
        pytest.param(3, [], 3, [], id="create-missing"),
        pytest.param(2, [make_pod("a"), make_pod("b")], 0, [], id="steady"),
        pytest.param(
            1, [make_pod("a"), make_pod("b", ready=False)], 0, ["b"], id="delete-not-ready-first"
        ),
        pytest.param(BURST_REPLICAS + 100, [], BURST_REPLICAS, [], id="burst-limit"),
    ],
)
def test_manage_replicas(
    replicas: int, pods: list[KubeObject], create: int, deleted: list[str]
) -> None:
    diff = manage_replicas(make_rs(replicas=replicas), pods, pods, NOW)
    assert diff.create == create
    assert [p["metadata"]["name"] for p in diff.delete] == deleted


def test_pod_from_template() -> None:
    rs = make_rs("web-5d59d67564", labels={"app": "web", "pod-template-hash": "5d59d67564"})
    rs["spec"]["template"]["metadata"]["annotations"] = {"note": "x"}
    pod = pod_from_template(rs)
    assert pod["metadata"] == {
        "generateName": "web-5d59d67564-",
        "namespace": "default",
        "labels": {"app": "web", "pod-template-hash": "5d59d67564"},
        "annotations": {"note": "x"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d59d67564",
                "uid": "uid-web-5d59d67564",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert pod["spec"] == rs["spec"]["template"]["spec"]
    assert pod["spec"] is not rs["spec"]["template"]["spec"]


# ---- status ----


@pytest.mark.parametrize(
    ("rs", "pods", "expected"),
    [
        pytest.param(
            make_rs(replicas=0),
            [],
            {"replicas": 0, "observedGeneration": 1},
            id="zero-replicas-still-present-other-counters-omitted",
        ),
        pytest.param(
            make_rs(replicas=3),
            [make_pod("a"), make_pod("b", ready=False), make_pod("c", phase="Pending", ready=None)],
            {
                "replicas": 3,
                "fullyLabeledReplicas": 3,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "observedGeneration": 1,
            },
            id="counts",
        ),
        pytest.param(
            make_rs(replicas=2, min_ready=30, generation=4),
            [make_pod("a", ready_since=10), make_pod("b", ready_since=60)],
            {
                "replicas": 2,
                "fullyLabeledReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 1,
                "observedGeneration": 4,
            },
            id="min-ready-seconds-limits-available",
        ),
        pytest.param(
            make_rs(replicas=2),
            [make_pod("a", labels={"app": "web"}), make_pod("b", labels={"other": "x"})],
            {
                "replicas": 2,
                "fullyLabeledReplicas": 1,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "observedGeneration": 1,
            },
            id="fully-labeled-needs-template-labels",
        ),
    ],
)
def test_calculate_status(rs: KubeObject, pods: list[KubeObject], expected: KubeObject) -> None:
    assert calculate_status(rs, pods, NOW) == expected


def test_calculate_status_replica_failure_condition() -> None:
    rs = make_rs(replicas=2)
    failed = calculate_status(rs, [], NOW, 'pods "x" is forbidden: quota')
    assert failed["conditions"] == [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "lastTransitionTime": rfc3339(NOW),
            "reason": "FailedCreate",
            "message": 'pods "x" is forbidden: quota',
        }
    ]
    rs["status"] = failed
    assert "conditions" not in calculate_status(rs, [], NOW)


# ---- claiming ----


def test_claim_objects() -> None:
    rs = make_rs("web-abc")
    selector = parse_label_selector("app=web")
    mine = make_pod("mine", owner_uid="uid-web-abc")
    strayed = make_pod("strayed", owner_uid="uid-web-abc", labels={"app": "other"})
    orphan = make_pod("orphan")
    orphan_elsewhere = make_pod("orphan-other", labels={"app": "other"})
    dying_orphan = make_pod("dying", deleting=True)
    theirs = make_pod("theirs", owner_uid="someone-else")
    claim = claim_objects(
        rs, [mine, strayed, orphan, orphan_elsewhere, dying_orphan, theirs], selector
    )
    names = lambda pods: [p["metadata"]["name"] for p in pods]  # noqa: E731
    assert names(claim.owned) == ["mine", "orphan"]
    assert names(claim.adopt) == ["orphan"]
    assert names(claim.release) == ["strayed"]

    deleting_rs = make_rs("web-abc")
    deleting_rs["metadata"]["deletionTimestamp"] = rfc3339(NOW)
    frozen = claim_objects(deleting_rs, [mine, strayed, orphan], selector)
    assert (names(frozen.owned), frozen.adopt, frozen.release) == (["mine"], (), ())


def test_adopt_and_release_copy_their_input() -> None:
    rs = make_rs("web-abc")
    orphan = make_pod("orphan")
    adopted = with_controller_ref(orphan, rs)
    assert "ownerReferences" not in orphan["metadata"]
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == "uid-web-abc"
    released = without_owner_ref(adopted, "uid-web-abc")
    assert "ownerReferences" not in released["metadata"]


def test_indirectly_related_pods_span_sibling_replicasets() -> None:
    old = make_rs("web-old", labels={"app": "web", "pod-template-hash": "old"})
    new = make_rs("web-new", labels={"app": "web", "pod-template-hash": "new"})
    stranger = make_rs("db", labels={"app": "db"}, controller_uid="other")
    pods = [
        make_pod("o", labels={"app": "web", "pod-template-hash": "old"}),
        make_pod("n", labels={"app": "web", "pod-template-hash": "new"}),
        make_pod("d", labels={"app": "db"}),
    ]
    selectors = {
        rs["metadata"]["name"]: parse_label_selector(
            ",".join(f"{k}={v}" for k, v in rs["spec"]["selector"]["matchLabels"].items())
        )
        for rs in (old, new, stranger)
    }
    related = indirectly_related_pods(new, [old, new, stranger], pods, selectors)
    assert sorted(p["metadata"]["name"] for p in related) == ["n", "o"]
    assert indirectly_related_pods(make_rs(controller_uid=None), [old], pods, selectors) == []
