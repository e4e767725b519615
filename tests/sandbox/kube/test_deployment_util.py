"""Table tests for the Deployment controller's pure decisions (`controllers/deployment/`).

Cases marked "upstream" are transcribed from pkg/controller/deployment's own
tests (TestResolveFenceposts, TestNewRSNewReplicas, TestScale,
TestDeploymentComplete, TestDeploymentProgressing, TestDeploymentTimedOut,
TestDeploymentController_cleanupDeployment).
"""

from __future__ import annotations

import doctest
import re
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from sandbox.kube.clock import rfc3339
from sandbox.kube.controllers import replicaset_util
from sandbox.kube.controllers.deployment import progress, recreate, rolling, sync, util
from sandbox.kube.controllers.deployment.plan import plan_sync
from sandbox.kube.controllers.deployment.progress import (
    requeue_stuck_deployment,
    sync_rollout_status,
)
from sandbox.kube.controllers.deployment.recreate import (
    old_pods_running,
    scale_down_old_replicasets_for_recreate,
)
from sandbox.kube.controllers.deployment.rolling import (
    cleanup_unhealthy_replicas,
    reconcile_new_replicaset,
    reconcile_old_replicasets,
)
from sandbox.kube.controllers.deployment.sync import (
    calculate_status,
    check_paused_conditions,
    cleanup_deployment,
    is_scaling_event,
    scale,
)
from sandbox.kube.controllers.deployment.util import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_INT32,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    IntOrPercent,
    ScaleAction,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    equal_ignore_hash,
    find_new_replicaset,
    find_old_replicasets,
    get_proportion,
    last_revision,
    max_revision,
    max_surge,
    max_unavailable,
    min_available,
    new_rs_new_replicas,
    pod_template_hash,
    resolve_fenceposts,
    safe_encode_string,
    set_deployment_condition,
    set_new_replicaset_annotations,
)

KubeObject = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T_OLDER, T_OLD, T_NEW = "2016-05-20T00:00:00Z", "2016-05-20T01:00:00Z", "2016-05-20T02:00:00Z"


def at(seconds: float) -> str:
    """A timestamp `seconds` after NOW (negative: before)."""
    return rfc3339(NOW + timedelta(seconds=seconds))


def template(image: str = "nginx:1.24", **labels: str) -> KubeObject:
    return {
        "metadata": {"labels": {"app": "web", **labels}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }


def make_deployment(
    replicas: int = 3,
    *,
    surge: IntOrPercent = 1,
    unavailable: IntOrPercent = 1,
    strategy: str = "RollingUpdate",
    image: str = "nginx:1.24",
    generation: int = 1,
    status: KubeObject | None = None,
    **spec: Any,
) -> KubeObject:
    strategy_spec: KubeObject = {"type": strategy}
    if strategy == "RollingUpdate":
        strategy_spec["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "deploy-uid",
            "generation": generation,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy_spec,
            "template": template(image),
            **spec,
        },
        "status": status if status is not None else {},
    }


def make_rs(
    name: str,
    replicas: int,
    created: str = T_NEW,
    *,
    image: str = "nginx:1.24",
    available: int = 0,
    actual: int | None = None,
    revision: str | None = None,
    desired: int | None = None,
    max_replicas: int | None = None,
    generation: int = 1,
    observed: int = 1,
) -> KubeObject:
    annotations: dict[str, str] = {}
    if revision is not None:
        annotations[REVISION_ANNOTATION] = revision
    if desired is not None:
        annotations[DESIRED_REPLICAS_ANNOTATION] = str(desired)
    if max_replicas is not None:
        annotations[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    status: KubeObject = {
        "replicas": replicas if actual is None else actual,
        "observedGeneration": observed,
    }
    if available:
        status["availableReplicas"] = available
        status["readyReplicas"] = available
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "generation": generation,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "template": template(image, **{POD_TEMPLATE_HASH_LABEL: name}),
        },
        "status": status,
    }


# ---- fenceposts ----


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        pytest.param("25%", "25%", 1, (1, 0), id="defaults-1-replica"),
        pytest.param("25%", "25%", 3, (1, 0), id="defaults-3-replicas"),
        pytest.param("25%", "25%", 4, (1, 1), id="defaults-4-replicas"),
        pytest.param("25%", "25%", 10, (3, 2), id="defaults-10-replicas"),
        pytest.param("0%", "0%", 0, (0, 1), id="upstream-zero-zero-forces-one"),
        pytest.param("39%", "39%", 10, (4, 3), id="upstream-39-percent"),
        pytest.param(None, "39%", 10, (0, 3), id="upstream-nil-surge"),
        pytest.param("39%", None, 10, (4, 0), id="upstream-nil-unavailable"),
        pytest.param(None, None, 10, (0, 1), id="upstream-both-nil"),
        pytest.param(1, 1, 3, (1, 1), id="absolute"),
    ],
)
def test_resolve_fenceposts(
    surge: IntOrPercent, unavailable: IntOrPercent, desired: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize(
    ("surge", "unavailable"),
    [
        pytest.param("oops", "39%", id="upstream-bad-surge"),
        pytest.param("55%", "urg", id="upstream-bad-unavailable"),
    ],
)
def test_resolve_fenceposts_rejects_non_percent_strings(surge: str, unavailable: str) -> None:
    with pytest.raises(ValueError, match="IntOrString"):
        resolve_fenceposts(surge, unavailable, 10)


@pytest.mark.parametrize(
    ("d", "surge", "unavailable", "minimum"),
    [
        pytest.param(
            make_deployment(10, surge="25%", unavailable="25%"), 3, 2, 8, id="25-25-of-10"
        ),
        pytest.param(
            make_deployment(3, surge=0, unavailable=5), 0, 3, 0, id="unavailable-capped-at-replicas"
        ),
        pytest.param(make_deployment(0, surge=1, unavailable=1), 1, 0, 0, id="zero-replicas"),
        pytest.param(make_deployment(3, strategy="Recreate"), 0, 0, 0, id="recreate"),
    ],
)
def test_max_surge_max_unavailable_min_available(
    d: KubeObject, surge: int, unavailable: int, minimum: int
) -> None:
    assert (max_surge(d), max_unavailable(d), min_available(d)) == (surge, unavailable, minimum)


@pytest.mark.parametrize(
    ("strategy", "dep_replicas", "new_replicas", "surge", "expected"),
    [
        pytest.param("RollingUpdate", 1, 5, 1, 5, id="upstream-can-not-scale-up"),
        pytest.param("RollingUpdate", 6, 2, 10, 6, id="upstream-scale-up-to-dep-replicas"),
        pytest.param("Recreate", 3, 1, 1, 3, id="upstream-recreate-to-dep-replicas"),
    ],
)
def test_new_rs_new_replicas(
    strategy: str, dep_replicas: int, new_replicas: int, surge: int, expected: int
) -> None:
    d = make_deployment(dep_replicas, surge=surge, unavailable=1, strategy=strategy)
    rs5, new_rs = make_rs("rs5", 5), make_rs("new", new_replicas)
    assert new_rs_new_replicas(d, [rs5], new_rs) == expected


def test_new_rs_new_replicas_keeps_total_under_replicas_plus_surge() -> None:
    d = make_deployment(3, surge=1, unavailable=1)
    old, new = make_rs("old", 3, T_OLD), make_rs("new", 0)
    assert new_rs_new_replicas(d, [old, new], new) == 1  # 3 + 1 = 4 by spec


# ---- hash and template equality ----


def test_pod_template_hash_is_stable_safe_encoded_and_collision_aware() -> None:
    t = template()
    first = pod_template_hash(t)
    assert first == pod_template_hash(template())
    assert re.fullmatch(r"[4-9bcdf]{1,10}", first), first  # digits land on 4-9 b c d f
    assert pod_template_hash(template("nginx:1.25")) != first
    assert pod_template_hash(t, 0) != first
    assert pod_template_hash(t, 1) != pod_template_hash(t, 0)
    undo_form = template()
    undo_form["metadata"]["creationTimestamp"] = None
    undo_form["spec"]["containers"][0]["resources"] = {}
    assert pod_template_hash(undo_form) == first


def test_safe_encode_string_maps_digits() -> None:
    assert safe_encode_string("0123456789") == "456789bcdf"


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        pytest.param(
            template(), template(**{POD_TEMPLATE_HASH_LABEL: "x"}), True, id="hash-label-ignored"
        ),
        pytest.param(template(), template("nginx:1.25"), False, id="image-differs"),
        pytest.param(template(), template(tier="web"), False, id="other-label-differs"),
        pytest.param(
            template(),
            {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.24", "resources": {}}]},
            },
            True,
            id="kubectl-undo-nulls-and-empties",
        ),
    ],
)
def test_equal_ignore_hash(a: KubeObject, b: KubeObject, equal: bool) -> None:
    assert equal_ignore_hash(a, b) is equal


def test_find_new_and_old_replicasets() -> None:
    d = make_deployment(image="nginx:1.25")
    old = make_rs("web-old", 2, T_OLD, image="nginx:1.24")
    empty_old = make_rs("web-older", 0, T_OLDER, image="nginx:1.23")
    new_newer = make_rs("web-dup", 0, T_NEW, image="nginx:1.25")
    new_older = make_rs("web-new", 1, T_OLD, image="nginx:1.25")
    rs_list = [old, empty_old, new_newer, new_older]
    assert find_new_replicaset(d, rs_list) == new_older  # the oldest match wins
    required, every = find_old_replicasets(d, rs_list)
    assert [r["metadata"]["name"] for r in required] == ["web-old"]
    assert [r["metadata"]["name"] for r in every] == ["web-old", "web-older", "web-dup"]
    assert find_new_replicaset(make_deployment(image="other"), rs_list) is None


# ---- revisions ----


def test_max_and_last_revision() -> None:
    rss = [
        make_rs("a", 0, revision="1"),
        make_rs("b", 0, revision="4"),
        make_rs("c", 0, revision="2"),
        make_rs("d", 0, revision="x"),
        make_rs("e", 0),
    ]
    assert (max_revision(rss), last_revision(rss)) == (4, 2)


@pytest.mark.parametrize(
    ("rs_annotations", "new_revision", "exists", "expected"),
    [
        pytest.param(
            {},
            "1",
            False,
            {
                REVISION_ANNOTATION: "1",
                DESIRED_REPLICAS_ANNOTATION: "3",
                MAX_REPLICAS_ANNOTATION: "4",
                "team": "payments",
            },
            id="created-gets-revision-and-replica-annotations",
        ),
        pytest.param(
            {REVISION_ANNOTATION: "1", "team": "payments"},
            "3",
            True,
            {REVISION_ANNOTATION: "3", REVISION_HISTORY_ANNOTATION: "1", "team": "payments"},
            id="rollback-restored-rs-gets-max-plus-one",
        ),
        pytest.param(
            {REVISION_ANNOTATION: "3", REVISION_HISTORY_ANNOTATION: "1", "team": "payments"},
            "5",
            True,
            {REVISION_ANNOTATION: "5", REVISION_HISTORY_ANNOTATION: "1,3", "team": "payments"},
            id="second-rollback-appends-history",
        ),
        pytest.param(
            {REVISION_ANNOTATION: "4", "team": "payments"}, "3", True, None, id="never-lowered"
        ),
    ],
)
def test_set_new_replicaset_annotations(
    rs_annotations: dict[str, str],
    new_revision: str,
    exists: bool,
    expected: dict[str, str] | None,
) -> None:
    d = make_deployment(3)
    d["metadata"]["annotations"] = {
        "team": "payments",
        REVISION_ANNOTATION: "9",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    rs = {"metadata": {"annotations": rs_annotations}}
    assert set_new_replicaset_annotations(d, rs, new_revision, exists) == expected


# ---- proportional scaling (upstream TestScale, surge and unavailable 0 unless given) ----


def scale_case(
    replicas: int,
    old_replicas: int,
    new: tuple[str, int, str] | None,
    olds: list[tuple[str, int, str]],
    expected: dict[str, int],
    *,
    surge: int = 0,
    old_surge: int = 0,
) -> tuple[KubeObject, KubeObject | None, list[KubeObject], dict[str, int]]:
    d = make_deployment(replicas, surge=surge, unavailable=0)
    annotations = {"desired": old_replicas, "max_replicas": old_replicas + old_surge}
    new_rs = make_rs(new[0], new[1], new[2], **annotations) if new else None
    if new_rs is not None:
        new_rs["spec"]["template"] = template()  # the Deployment's own template
        new_rs["status"] = {}
    old_rss = [make_rs(n, r, t, image="old", **annotations) for n, r, t in olds]
    for rs in old_rss:
        rs["status"] = {}
    return d, new_rs, old_rss, expected


SCALE_CASES = [
    pytest.param(*scale_case(12, 10, ("v1", 10, T_NEW), [], {"v1": 12}), id="upstream-10-to-12"),
    pytest.param(*scale_case(5, 10, ("v1", 10, T_NEW), [], {"v1": 5}), id="upstream-10-to-5"),
    pytest.param(
        *scale_case(10, 5, ("v2", 2, T_NEW), [("v1", 3, T_OLD)], {"v2": 4, "v1": 6}),
        id="upstream-proportional-5-to-10",
    ),
    pytest.param(
        *scale_case(3, 5, ("v2", 2, T_NEW), [("v1", 3, T_OLD)], {"v2": 1, "v1": 2}),
        id="upstream-proportional-5-to-3",
    ),
    pytest.param(
        *scale_case(4, 9, ("v2", 8, T_NEW), [("v1", 1, T_OLD)], {"v2": 4, "v1": 0}),
        id="upstream-proportional-9-to-4",
    ),
    pytest.param(
        *scale_case(
            10,
            7,
            ("v3", 2, T_NEW),
            [("v2", 3, T_OLD), ("v1", 2, T_OLDER)],
            {"v3": 3, "v2": 4, "v1": 3},
        ),
        id="upstream-proportional-7-to-10",
    ),
    pytest.param(
        *scale_case(
            8,
            13,
            ("v3", 2, T_NEW),
            [("v2", 8, T_OLD), ("v1", 3, T_OLDER)],
            {"v3": 1, "v2": 5, "v1": 2},
        ),
        id="upstream-proportional-13-to-8",
    ),
    pytest.param(
        *scale_case(
            4,
            3,
            ("v3", 1, T_NEW),
            [("v2", 1, T_OLD), ("v1", 1, T_OLDER)],
            {"v3": 2, "v2": 1, "v1": 1},
        ),
        id="upstream-leftover-3-to-4",
    ),
    pytest.param(
        *scale_case(
            2,
            3,
            ("v3", 1, T_NEW),
            [("v2", 1, T_OLD), ("v1", 1, T_OLDER)],
            {"v3": 1, "v2": 1, "v1": 0},
        ),
        id="upstream-leftover-3-to-2",
    ),
    pytest.param(
        *scale_case(5, 4, None, [("v2", 2, T_OLD), ("v1", 2, T_OLDER)], {"v2": 3, "v1": 2}),
        id="upstream-no-new-rs-4-to-5",
    ),
    pytest.param(
        *scale_case(
            0,
            6,
            ("v3", 3, T_NEW),
            [("v2", 2, T_OLD), ("v1", 1, T_OLDER)],
            {"v3": 0, "v2": 0, "v1": 0},
        ),
        id="upstream-6-to-0",
    ),
    pytest.param(
        *scale_case(
            6,
            6,
            ("v3", 0, T_NEW),
            [("v2", 0, T_OLD), ("v1", 0, T_OLDER)],
            {"v3": 6, "v2": 0, "v1": 0},
        ),
        id="upstream-0-to-6",
    ),
    pytest.param(
        *scale_case(
            20, 10, ("v2", 6, T_NEW), [("v1", 6, T_OLD)], {"v2": 11, "v1": 11}, surge=2, old_surge=2
        ),
        id="upstream-deployment-with-surge-pods",
    ),
    pytest.param(
        *scale_case(
            50, 10, ("v2", 5, T_NEW), [("v1", 8, T_OLD)], {"v2": 22, "v1": 34}, surge=6, old_surge=3
        ),
        id="upstream-change-surge-and-size",
    ),
    pytest.param(
        *scale_case(
            20, 10, ("v2", 5, T_NEW), [("v1", 8, T_OLD)], {"v2": 9, "v1": 14}, surge=3, old_surge=3
        ),
        id="mid-rollout-10-to-20-surge-3",
    ),
]


@pytest.mark.parametrize(("d", "new_rs", "old_rss", "expected"), SCALE_CASES)
def test_scale(
    d: KubeObject, new_rs: KubeObject | None, old_rss: list[KubeObject], expected: dict[str, int]
) -> None:
    sizes = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in [*old_rss, new_rs] if rs}
    for action in scale(d, new_rs, old_rss):
        sizes[action.rs_name] = action.replicas
    assert sizes == expected


def test_scale_saturated_new_rs_empties_old_ones() -> None:
    d = make_deployment(3)
    new = make_rs("new", 3, available=3, desired=3)
    new["spec"]["template"] = template()
    old = make_rs("old", 1, T_OLD, image="old")
    assert scale(d, new, [old]) == [ScaleAction("old", 0, 1)]


def test_get_proportion_never_exceeds_what_is_left() -> None:
    d = make_deployment(20, surge=3, unavailable=2)
    rs = make_rs("old", 8, max_replicas=13)
    assert get_proportion(rs, d, 10, 0) == 6
    assert get_proportion(rs, d, 10, 7) == 3
    assert get_proportion(rs, d, 10, 10) == 0
    assert get_proportion(make_rs("empty", 0, max_replicas=13), d, 10, 0) == 0


def test_is_scaling_event_reads_desired_replicas_of_active_rss() -> None:
    d = make_deployment(5)
    assert is_scaling_event(d, [make_rs("a", 3, desired=3)])
    assert not is_scaling_event(d, [make_rs("a", 5, desired=5), make_rs("b", 0, desired=3)])
    assert not is_scaling_event(d, [make_rs("a", 3)])


# ---- status and conditions ----


def test_calculate_status_omits_zero_counters() -> None:
    d = make_deployment(0, generation=3)
    status = calculate_status([make_rs("a", 0, actual=0)], None, d, NOW)
    assert {k: v for k, v in status.items() if k != "conditions"} == {"observedGeneration": 3}


def test_calculate_status_counts_and_collision_count() -> None:
    d = make_deployment(3, status={"collisionCount": 0})
    old = make_rs("old", 2, T_OLD, available=2)
    new = make_rs("new", 2, actual=1)
    status = calculate_status([old, new], new, d, NOW)
    assert status == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "unavailableReplicas": 2,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": rfc3339(NOW),
                "lastTransitionTime": rfc3339(NOW),
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }
        ],
        "collisionCount": 0,
    }


@pytest.mark.parametrize(
    ("replicas", "available", "expected"),
    [
        pytest.param(1, 0, "MinimumReplicasUnavailable", id="one-replica-zero-tolerance"),
        pytest.param(4, 3, "MinimumReplicasAvailable", id="four-replicas-one-down-still-ok"),
        pytest.param(4, 2, "MinimumReplicasUnavailable", id="four-replicas-two-down"),
    ],
)
def test_available_condition_with_default_fenceposts(
    replicas: int, available: int, expected: str
) -> None:
    d = make_deployment(replicas, surge="25%", unavailable="25%")
    rs = make_rs("new", replicas, available=available)
    status = calculate_status([rs], rs, d, NOW)
    assert status["conditions"][0]["reason"] == expected


def test_set_condition_keeps_transition_time_while_status_unchanged() -> None:
    status = {
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "A",
                "lastUpdateTime": at(-60),
                "lastTransitionTime": at(-60),
                "message": "a",
            }
        ]
    }
    same = {
        "type": "Progressing",
        "status": "True",
        "reason": "A",
        "lastUpdateTime": at(0),
        "lastTransitionTime": at(0),
        "message": "a2",
    }
    assert set_deployment_condition(status, same) == status  # same status and reason: kept
    changed = set_deployment_condition(status, {**same, "reason": "B"})
    assert changed["conditions"][0]["lastTransitionTime"] == at(-60)
    assert changed["conditions"][0]["lastUpdateTime"] == at(0)
    flipped = set_deployment_condition(status, {**same, "status": "False", "reason": "B"})
    assert flipped["conditions"][0]["lastTransitionTime"] == at(0)


def status_of(current: int, updated: int, available: int, generation: int = 1) -> KubeObject:
    return {
        "replicas": current,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "observedGeneration": generation,
    }


@pytest.mark.parametrize(
    ("desired", "surge", "unavailable", "status", "complete"),
    [
        pytest.param(5, 0, 1, status_of(5, 5, 4), False, id="upstream-min-but-not-all-available"),
        pytest.param(5, 0, 1, status_of(5, 5, 3), False, id="upstream-min-not-honored"),
        pytest.param(5, 0, 0, status_of(5, 5, 5), True, id="upstream-complete"),
        pytest.param(5, 0, 0, status_of(5, 4, 5), False, id="upstream-available-not-updated"),
        pytest.param(1, 1, 0, status_of(2, 1, 1), False, id="upstream-old-pods-running"),
        pytest.param(1, 1, 1, status_of(1, 1, 0), False, id="upstream-one-replica-never-up"),
        pytest.param(
            5, 0, 0, status_of(5, 5, 5, generation=0), False, id="generation-not-observed"
        ),
    ],
)
def test_deployment_complete(
    desired: int, surge: int, unavailable: int, status: KubeObject, complete: bool
) -> None:
    d = make_deployment(desired, surge=surge, unavailable=unavailable)
    assert deployment_complete(d, status) is complete


def counts(current: int, updated: int, ready: int, available: int) -> KubeObject:
    return {
        "replicas": current,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
    }


@pytest.mark.parametrize(
    ("old", "new", "progressing"),
    [
        pytest.param(counts(10, 4, 4, 4), counts(10, 6, 4, 4), True, id="upstream-updated-pods"),
        pytest.param(
            counts(10, 4, 4, 4), counts(10, 4, 4, 4), False, id="upstream-not-progressing"
        ),
        pytest.param(counts(10, 4, 6, 6), counts(8, 4, 6, 6), True, id="upstream-old-pods-removed"),
        pytest.param(counts(10, 7, 3, 3), counts(10, 6, 3, 3), False, id="upstream-less-new-pods"),
        pytest.param(
            counts(10, 4, 7, 7), counts(8, 8, 5, 5), True, id="upstream-less-overall-more-new"
        ),
        pytest.param(counts(10, 10, 9, 8), counts(10, 10, 10, 8), True, id="upstream-more-ready"),
        pytest.param(
            counts(10, 10, 10, 9), counts(10, 10, 10, 10), True, id="upstream-more-available"
        ),
    ],
)
def test_deployment_progressing(old: KubeObject, new: KubeObject, progressing: bool) -> None:
    assert deployment_progressing({"status": old}, new) is progressing


def progressing_status(reason: str, last_update: str) -> KubeObject:
    return {
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": reason,
                "lastUpdateTime": last_update,
                "lastTransitionTime": last_update,
                "message": "",
            }
        ]
    }


@pytest.mark.parametrize(
    ("deadline", "reason", "last_update", "timed_out"),
    [
        pytest.param(None, "", at(-11), False, id="upstream-no-deadline"),
        pytest.param(MAX_INT32, "", at(-11), False, id="upstream-infinite-deadline"),
        pytest.param(10, "", at(-11), True, id="upstream-11s-past-10s-deadline"),
        pytest.param(10, "", at(-9), False, id="upstream-9s-of-10s-deadline"),
        pytest.param(10, "", at(-10), False, id="exactly-at-deadline-is-not-past"),
        pytest.param(
            10, "NewReplicaSetAvailable", at(-1000), False, id="upstream-previous-rollout-complete"
        ),
        pytest.param(10, "ProgressDeadlineExceeded", at(0), True, id="already-timed-out"),
    ],
)
def test_deployment_timed_out(
    deadline: int | None, reason: str, last_update: str, timed_out: bool
) -> None:
    d = make_deployment(progressDeadlineSeconds=deadline)
    assert deployment_timed_out(d, progressing_status(reason, last_update), NOW) is timed_out


def test_sync_rollout_status_refreshes_last_update_on_progress() -> None:
    d = make_deployment(
        3,
        progressDeadlineSeconds=600,
        status={
            "replicas": 3,
            "updatedReplicas": 1,
            **progressing_status("ReplicaSetUpdated", at(-300)),
        },
    )
    old, new = make_rs("old", 2, T_OLD, available=2), make_rs("new", 2, actual=2)
    status = sync_rollout_status([old, new], new, d, NOW)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "ReplicaSetUpdated"
    assert progressing["message"] == 'ReplicaSet "new" is progressing.'
    assert (progressing["lastUpdateTime"], progressing["lastTransitionTime"]) == (at(0), at(-300))


def test_sync_rollout_status_times_out_without_progress() -> None:
    stalled = {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    d = make_deployment(
        3,
        progressDeadlineSeconds=600,
        status={**stalled, **progressing_status("ReplicaSetUpdated", at(-601))},
    )
    old, new = make_rs("old", 2, T_OLD, available=2), make_rs("new", 2, actual=2)
    status = sync_rollout_status([old, new], new, d, NOW)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == 'ReplicaSet "new" has timed out progressing.'


def test_sync_rollout_status_complete_and_no_deadline() -> None:
    d = make_deployment(2, progressDeadlineSeconds=600)
    new = make_rs("new", 2, available=2)
    status = sync_rollout_status([new], new, d, NOW)
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    no_deadline = make_deployment(2, status=status)
    assert all(
        c["type"] != "Progressing"
        for c in sync_rollout_status([new], new, no_deadline, NOW)["conditions"]
    )


def test_sync_rollout_status_lifts_replica_failure() -> None:
    d = make_deployment(2, progressDeadlineSeconds=600)
    new = make_rs("new", 2)
    new["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": "quota",
            "lastTransitionTime": at(-5),
        }
    ]
    status = sync_rollout_status([new], new, d, NOW)
    failure = next(c for c in status["conditions"] if c["type"] == "ReplicaFailure")
    assert (failure["reason"], failure["lastUpdateTime"]) == ("FailedCreate", at(-5))


@pytest.mark.parametrize(
    ("reason", "last_update", "after"),
    [
        pytest.param("ReplicaSetUpdated", at(-180), 421.0, id="upstream-7-minutes-left-plus-1s"),
        pytest.param("NewReplicaSetCreated", at(0), 601.0, id="just-created"),
        pytest.param("ReplicaSetUpdated", at(-700), 1.0, id="overdue-check-soon"),
        pytest.param("ProgressDeadlineExceeded", at(-700), None, id="already-timed-out"),
    ],
)
def test_requeue_stuck_deployment(reason: str, last_update: str, after: float | None) -> None:
    d = make_deployment(3, progressDeadlineSeconds=600)
    assert requeue_stuck_deployment(d, progressing_status(reason, last_update), NOW) == after


def test_paused_and_resumed_conditions() -> None:
    paused = make_deployment(progressDeadlineSeconds=600, paused=True)
    status = check_paused_conditions(paused, NOW)
    assert status is not None
    assert status["conditions"][0] == {
        "type": "Progressing",
        "status": "Unknown",
        "lastUpdateTime": at(0),
        "lastTransitionTime": at(0),
        "reason": "DeploymentPaused",
        "message": "Deployment is paused",
    }
    assert check_paused_conditions({**paused, "status": status}, NOW) is None
    resumed = make_deployment(progressDeadlineSeconds=600, status=status)
    resumed_status = check_paused_conditions(resumed, NOW)
    assert resumed_status is not None
    assert resumed_status["conditions"][0]["reason"] == "DeploymentResumed"
    timed_out = make_deployment(
        progressDeadlineSeconds=600,
        paused=True,
        status=progressing_status("ProgressDeadlineExceeded", at(-1)),
    )
    assert check_paused_conditions(timed_out, NOW) is None


# ---- rolling.go ----


@pytest.mark.parametrize(
    ("new_replicas", "old_replicas", "expected"),
    [
        pytest.param(3, 0, None, id="already-full"),
        pytest.param(5, 0, ScaleAction("new", 3, 5), id="too-big-scale-down"),
        pytest.param(1, 2, ScaleAction("new", 2, 1), id="scale-up-within-surge"),
        pytest.param(1, 3, None, id="surge-used-up"),
    ],
)
def test_reconcile_new_replicaset(
    new_replicas: int, old_replicas: int, expected: ScaleAction | None
) -> None:
    d = make_deployment(3, surge=1, unavailable=1)
    new, old = make_rs("new", new_replicas), make_rs("old", old_replicas, T_OLD, image="old")
    assert reconcile_new_replicaset([old, new], new, d) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            [("old", 3, 3)],
            ("new", 1, 0),
            [ScaleAction("old", 2, 3)],
            id="scale-down-to-min-available",
        ),
        pytest.param(
            [("old", 2, 2)], ("new", 2, 0), [], id="unavailable-new-pods-block-scale-down"
        ),
        pytest.param(
            [("old", 2, 2)],
            ("new", 2, 1),
            [ScaleAction("old", 1, 2)],
            id="one-new-available-one-old-goes",
        ),
        pytest.param(
            [("older", 2, 0), ("old", 2, 2)],
            ("new", 0, 0),
            [ScaleAction("older", 0, 2)],
            id="unhealthy-old-replicas-go-first",
        ),
        pytest.param(
            [("older", 1, 0), ("old", 3, 3)],
            ("new", 0, 0),
            [ScaleAction("older", 0, 1), ScaleAction("old", 2, 3)],
            id="unhealthy-first-then-down-to-min-available",
        ),
    ],
)
def test_reconcile_old_replicasets(
    old: list[tuple[str, int, int]], new: tuple[str, int, int], expected: list[ScaleAction]
) -> None:
    d = make_deployment(3, surge=1, unavailable=1)
    stamps = iter([T_OLDER, T_OLD])
    old_rss = [make_rs(n, r, next(stamps), image="old", available=a) for n, r, a in old]
    new_rs = make_rs(new[0], new[1], available=new[2])
    assert reconcile_old_replicasets([*old_rss, new_rs], old_rss, new_rs, d) == expected


def test_cleanup_unhealthy_replicas_oldest_first_within_budget() -> None:
    older = make_rs("older", 3, T_OLDER, available=1)
    old = make_rs("old", 3, T_OLD, available=0)
    assert cleanup_unhealthy_replicas([old, older], make_deployment(), 3) == [
        ScaleAction("older", 1, 3),
        ScaleAction("old", 2, 3),
    ]
    assert (
        cleanup_unhealthy_replicas([make_rs("stale", 1, available=2)], make_deployment(), 3) is None
    )


@pytest.mark.parametrize(
    ("olds", "limit", "deleted"),
    [
        pytest.param([(0, 0), (0, 0), (0, 0)], 1, ["foo-1", "foo-2"], id="upstream-keep-one"),
        pytest.param([(0, 0), (0, 1), (1, 0), (1, 1)], 0, ["foo-1"], id="upstream-only-empty-ones"),
        pytest.param([(0, 0), (0, 0)], 0, ["foo-1", "foo-2"], id="upstream-keep-none"),
        pytest.param([(1, 1), (1, 1)], 0, [], id="upstream-none-empty"),
        pytest.param([(0, 0), (0, 0), (0, 0)], MAX_INT32, [], id="upstream-unlimited"),
    ],
)
def test_cleanup_deployment(olds: list[tuple[int, int]], limit: int, deleted: list[str]) -> None:
    old_rss = [
        make_rs(f"foo-{i + 1}", spec, f"2016-05-20T0{i}:00:00Z", actual=actual, revision=str(i + 1))
        for i, (spec, actual) in enumerate(olds)
    ]
    assert cleanup_deployment(old_rss, make_deployment(revisionHistoryLimit=limit)) == deleted


def test_cleanup_deployment_skips_deleting_and_unobserved() -> None:
    deleting = make_rs("foo-1", 0, revision="1")
    deleting["metadata"]["deletionTimestamp"] = at(0)
    unobserved = make_rs("foo-2", 0, revision="2", generation=3, observed=2)
    assert cleanup_deployment([deleting, unobserved], make_deployment(revisionHistoryLimit=0)) == []


# ---- recreate.go ----


def test_recreate_scales_old_to_zero_and_waits_for_pods() -> None:
    old = make_rs("old", 3, T_OLD)
    empty = make_rs("older", 0, T_OLDER)
    assert scale_down_old_replicasets_for_recreate([old, empty]) == [ScaleAction("old", 0, 3)]
    gone = make_rs("old", 0, T_OLD, actual=0)
    terminating = {"metadata": {"deletionTimestamp": at(30)}, "status": {"phase": "Running"}}
    finished = {"metadata": {}, "status": {"phase": "Succeeded"}}
    assert old_pods_running(None, [gone], {"uid-old": [terminating]})
    assert not old_pods_running(None, [gone], {"uid-old": [finished]})
    assert old_pods_running(None, [make_rs("old", 0, actual=1)], {})
    new = make_rs("new", 3)
    assert not old_pods_running(new, [gone], {"uid-new": [terminating]})


# ---- plan_sync: one whole sync ----


def test_plan_sync_creates_the_first_replicaset() -> None:
    d = make_deployment(3, progressDeadlineSeconds=600)
    d["metadata"]["annotations"] = {"team": "payments"}
    plan = plan_sync(d, [], {}, NOW)
    rs = plan.create_replicaset
    assert rs is not None
    template_hash = pod_template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{template_hash}"
    assert rs["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: template_hash}
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": "deploy-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["metadata"]["annotations"] == {
        "team": "payments",
        REVISION_ANNOTATION: "1",
        DESIRED_REPLICAS_ANNOTATION: "3",
        MAX_REPLICAS_ANNOTATION: "4",
    }
    assert rs["spec"]["replicas"] == 3
    assert rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH_LABEL] == template_hash
    assert rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == template_hash
    assert plan.deployment_annotations == {"team": "payments", REVISION_ANNOTATION: "1"}
    assert plan.status is not None
    assert [c["reason"] for c in plan.status["conditions"]] == [
        "NewReplicaSetCreated",
        "MinimumReplicasUnavailable",
    ]
    assert [e.message for e in plan.events] == [
        f"Scaled up replica set web-{template_hash} from 0 to 3"
    ]
    assert plan.requeue_after == 601.0


def test_plan_sync_scales_up_then_stops_no_scale_down_in_same_pass() -> None:
    d = make_deployment(3, image="v2", progressDeadlineSeconds=600)
    old = make_rs("old", 2, T_OLD, image="v1", available=2, revision="1", desired=3, max_replicas=4)
    new = make_rs("new", 1, image="v2", available=1, revision="2", desired=3, max_replicas=4)
    # 3 available > minAvailable 2 would allow a scale-down, but the scale-up ends the pass.
    assert plan_sync(d, [old, new], {}, NOW).scales == (ScaleAction("new", 2, 1),)
    full = make_rs("new", 2, image="v2", available=1, revision="2", desired=3, max_replicas=4)
    assert plan_sync(d, [old, full], {}, NOW).scales == (ScaleAction("old", 1, 2),)


def test_plan_sync_rollback_bumps_restored_revision_to_max_plus_one() -> None:
    d = make_deployment(3, image="v1", progressDeadlineSeconds=600)
    d["metadata"]["annotations"] = {REVISION_ANNOTATION: "2"}
    v1 = make_rs("v1", 0, T_OLD, image="v1", revision="1", desired=3, max_replicas=4)
    v2 = make_rs("v2", 3, image="v2", available=3, revision="2", desired=3, max_replicas=4)
    plan = plan_sync(d, [v1, v2], {}, NOW)
    assert plan.create_replicaset is None
    assert plan.replicaset_updates[0].rs_name == "v1"
    assert plan.replicaset_updates[0].annotations[REVISION_ANNOTATION] == "3"
    assert plan.replicaset_updates[0].annotations[REVISION_HISTORY_ANNOTATION] == "1"
    assert plan.deployment_annotations == {REVISION_ANNOTATION: "3"}
    assert plan.scales == (ScaleAction("v1", 1, 0),)


def test_plan_sync_paused_deployment_does_not_roll_out() -> None:
    d = make_deployment(3, image="v2", progressDeadlineSeconds=600, paused=True)
    v1 = make_rs("v1", 3, T_OLD, image="v1", available=3, revision="1", desired=3, max_replicas=4)
    plan = plan_sync(d, [v1], {}, NOW)
    assert plan.create_replicaset is None
    assert plan.scales == ()
    assert plan.status is not None
    progressing = [c for c in plan.status["conditions"] if c["type"] == "Progressing"]
    assert (progressing[0]["status"], progressing[0]["reason"]) == ("Unknown", "DeploymentPaused")


def test_plan_sync_recreate_waits_for_old_pods() -> None:
    d = make_deployment(3, strategy="Recreate", image="v2")
    v1 = make_rs("v1", 0, T_OLD, image="v1", actual=0, revision="1", desired=3)
    terminating = {"metadata": {"deletionTimestamp": at(30)}, "status": {"phase": "Running"}}
    waiting = plan_sync(d, [v1], {"uid-v1": [terminating]}, NOW)
    assert waiting.create_replicaset is None
    ready = plan_sync(d, [v1], {"uid-v1": []}, NOW)
    assert ready.create_replicaset is not None
    assert ready.create_replicaset["spec"]["replicas"] == 3


# ---- the worked examples in the docstrings stay true ----


@pytest.mark.parametrize(
    "module",
    [util, sync, progress, rolling, recreate, replicaset_util],
    ids=lambda m: m.__name__.rsplit(".", 1)[-1],
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 2
    assert result.failed == 0
