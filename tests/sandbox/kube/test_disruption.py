"""PDB math (reference 4.4) and eviction decisions (4.3) as tables; controller and evict()
against the real store."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock, parse_time
from sandbox.kube.controllers import disruption as disruption_module
from sandbox.kube.controllers.disruption import (
    EVICTION_REJECTED,
    MULTIPLE_PDBS,
    PDBS,
    DisruptionController,
    charge_budget,
    count_healthy,
    decide_eviction,
    evict,
    expected_and_desired,
    pdb_status,
    scaled_value,
)
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store
from tests.sandbox.kube.builders import (
    add_node,
    add_pod,
    changes_of,
    make_node,
    make_pod,
    new_store,
)

KubeObject = dict[str, Any]
NOW = parse_time("2026-01-01T00:00:00Z")
SETTINGS = ControlPlaneSettings()


def make_pdb(
    name: str = "web",
    *,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    selector: KubeObject | None = None,
    generation: int = 1,
    status: KubeObject | None = None,
    policy: str | None = None,
) -> KubeObject:
    spec: KubeObject = {
        "selector": {"matchLabels": {"app": "web"}} if selector is None else selector
    }
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    if policy is not None:
        spec["unhealthyPodEvictionPolicy"] = policy
    return {
        "metadata": {"name": name, "namespace": "default", "generation": generation},
        "spec": spec,
        "status": status or {},
    }


def budget(allowed: int, current: int = 3, desired: int = 2, observed: int = 1) -> KubeObject:
    return {
        "observedGeneration": observed,
        "disruptionsAllowed": allowed,
        "currentHealthy": current,
        "desiredHealthy": desired,
        "expectedPods": 3,
    }


# ---- the budget math ----


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [
        pytest.param(2, 10, 2, id="int"),
        pytest.param("25%", 3, 1, id="percent-rounds-up"),
        pytest.param("50%", 5, 3, id="half-of-odd"),
        pytest.param("0%", 5, 0, id="zero-percent"),
        pytest.param("100%", 4, 4, id="all"),
    ],
)
def test_scaled_value(value: int | str, total: int, expected: int) -> None:
    assert scaled_value(value, total) == expected


@pytest.mark.parametrize(
    ("spec", "matching", "scale", "expected"),
    [
        pytest.param({"maxUnavailable": 1}, 3, 3, (3, 2), id="max-unavailable-int"),
        pytest.param({"maxUnavailable": "34%"}, 3, 3, (3, 1), id="max-unavailable-percent-up"),
        pytest.param({"maxUnavailable": 5}, 3, 3, (3, 0), id="max-unavailable-clamped"),
        pytest.param({"maxUnavailable": 1}, 4, 3, (3, 2), id="max-unavailable-uses-scale"),
        pytest.param({"minAvailable": 2}, 4, 99, (4, 2), id="min-available-int-counts-pods"),
        pytest.param({"minAvailable": "50%"}, 2, 5, (5, 3), id="min-available-percent-scale"),
        pytest.param({}, 3, 3, (0, 0), id="neither"),
    ],
)
def test_expected_and_desired(
    spec: KubeObject, matching: int, scale: int, expected: tuple[int, int]
) -> None:
    assert expected_and_desired(spec, matching, scale) == expected


@pytest.mark.parametrize(
    ("pod", "disrupted", "healthy"),
    [
        pytest.param(make_pod("p", node="n"), {}, 1, id="ready"),
        pytest.param(make_pod("p", ready=False, node="n"), {}, 0, id="not-ready"),
        pytest.param(make_pod("p", node="n", deleting=True), {}, 0, id="deleting"),
        pytest.param(
            make_pod("p", node="n"), {"p": "2025-12-31T23:59:00Z"}, 0, id="recently-evicted"
        ),
        pytest.param(
            make_pod("p", node="n"),
            {"p": "2025-12-31T23:57:00Z"},
            1,
            id="eviction-expired-after-2-minutes",
        ),
    ],
)
def test_count_healthy(pod: KubeObject, disrupted: dict[str, str], healthy: int) -> None:
    assert count_healthy([pod], disrupted, NOW, 120) == healthy


@pytest.mark.parametrize(
    ("current", "desired", "expected_pods", "allowed", "reason"),
    [
        pytest.param(3, 2, 3, 1, "SufficientPods", id="one-spare"),
        pytest.param(2, 2, 3, 0, "InsufficientPods", id="at-budget"),
        pytest.param(1, 2, 3, 0, "InsufficientPods", id="below-budget-clamped"),
        pytest.param(3, 0, 0, 0, "InsufficientPods", id="nothing-expected"),
    ],
)
def test_pdb_status(
    current: int, desired: int, expected_pods: int, allowed: int, reason: str
) -> None:
    status = pdb_status({}, 4, current, desired, expected_pods, {}, "T")
    assert status["disruptionsAllowed"] == allowed
    assert status["observedGeneration"] == 4
    assert "disruptedPods" not in status
    (condition,) = status["conditions"]
    assert (condition["type"], condition["reason"], condition["observedGeneration"]) == (
        "DisruptionAllowed",
        reason,
        4,
    )


# ---- eviction decisions ----

RUNNING = make_pod("web-1", node="n")
UNREADY = make_pod("web-1", ready=False, node="n")


@pytest.mark.parametrize(
    ("pod", "pdbs", "allowed", "charge"),
    [
        pytest.param(
            make_pod("p", node="n", phase="Succeeded"),
            [make_pdb(status=budget(0))],
            True,
            None,
            id="succeeded-ignores-pdb",
        ),
        pytest.param(
            make_pod("p", node="n", phase="Failed"),
            [make_pdb(status=budget(0))],
            True,
            None,
            id="failed-ignores-pdb",
        ),
        pytest.param(
            make_pod("p"), [make_pdb(status=budget(0))], True, None, id="pending-ignores-pdb"
        ),
        pytest.param(
            make_pod("p", node="n", deleting=True),
            [make_pdb(status=budget(0))],
            True,
            None,
            id="terminating-ignores-pdb",
        ),
        pytest.param(RUNNING, [], True, None, id="no-pdb"),
        pytest.param(
            RUNNING,
            [make_pdb(selector={"matchLabels": {"app": "db"}}, status=budget(0))],
            True,
            None,
            id="pdb-for-others",
        ),
        pytest.param(RUNNING, [make_pdb(status=budget(1))], True, "web", id="charges-budget"),
        pytest.param(
            RUNNING,
            [make_pdb(selector={}, status=budget(1))],
            True,
            "web",
            id="empty-selector-matches-all",
        ),
        pytest.param(
            UNREADY,
            [make_pdb(status=budget(0, current=2, desired=2))],
            True,
            None,
            id="unhealthy-with-healthy-budget",
        ),
        pytest.param(
            UNREADY,
            [make_pdb(status=budget(1, current=3, desired=2))],
            True,
            None,
            id="unhealthy-never-charges-a-healthy-budget",
        ),
        pytest.param(
            UNREADY,
            [make_pdb(policy="AlwaysAllow", status=budget(0, current=1, desired=2))],
            True,
            None,
            id="unhealthy-always-allow",
        ),
        pytest.param(
            UNREADY,
            [make_pdb(policy="IfHealthyBudget", status=budget(1, current=3, desired=0))],
            True,
            "web",
            id="unhealthy-zero-desired-charges",
        ),
    ],
)
def test_eviction_allowed(
    pod: KubeObject, pdbs: list[KubeObject], allowed: bool, charge: str | None
) -> None:
    decision = decide_eviction(pod, pdbs)
    assert (decision.allowed, decision.charge, decision.error) == (allowed, charge, None)


@pytest.mark.parametrize(
    ("pod", "pdb", "code", "cause", "retry_after"),
    [
        pytest.param(
            RUNNING,
            make_pdb(status=budget(0, current=2, desired=2)),
            429,
            "The disruption budget web needs 2 healthy pods and has 2 currently",
            0,
            id="no-disruptions-allowed",
        ),
        pytest.param(
            UNREADY,
            make_pdb(status=budget(0, current=1, desired=2)),
            429,
            "The disruption budget web needs 2 healthy pods and has 1 currently",
            0,
            id="unhealthy-with-unhealthy-budget",
        ),
        pytest.param(
            RUNNING,
            make_pdb(generation=2, status=budget(1)),
            429,
            "The disruption budget web is still being processed by the server.",
            10,
            id="pdb-not-yet-observed",
        ),
        pytest.param(RUNNING, make_pdb(status=budget(-1)), 403, None, 0, id="negative"),
    ],
)
def test_eviction_refused(
    pod: KubeObject, pdb: KubeObject, code: int, cause: str | None, retry_after: int
) -> None:
    decision = decide_eviction(pod, [pdb])
    assert not decision.allowed and decision.error is not None
    status = decision.error.to_status()
    assert status["code"] == code
    if cause is not None:
        assert status["message"] == EVICTION_REJECTED
        assert status["details"]["causes"] == [{"reason": "DisruptionBudget", "message": cause}]
    assert status.get("details", {}).get("retryAfterSeconds", 0) == retry_after


def test_more_than_one_pdb_answers_a_500_status() -> None:
    decision = decide_eviction(
        RUNNING, [make_pdb("a", status=budget(1)), make_pdb("b", status=budget(1))]
    )
    assert decision.answer is not None
    assert (decision.answer["code"], decision.answer["status"], decision.answer["message"]) == (
        500,
        "Failure",
        MULTIPLE_PDBS,
    )


def test_charge_budget_records_the_pod_and_flips_the_condition() -> None:
    charged = charge_budget({**budget(1), "conditions": []}, "web-1", "T")
    assert charged["disruptionsAllowed"] == 0
    assert charged["disruptedPods"] == {"web-1": "T"}
    assert charged["conditions"][0]["reason"] == "InsufficientPods"


# ---- evict() against the store ----


def _deployment_world(replicas: int = 3) -> tuple[Store, ManualClock]:
    """A Deployment -> ReplicaSet -> `replicas` Ready pods on one node."""
    clock = ManualClock(NOW)
    store = new_store(clock)
    add_node(store, make_node("node-a1"))
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    deployment = store.create(
        "apps/deployments",
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        },
    )
    replicaset = store.create(
        "apps/replicasets",
        {
            "metadata": {
                "name": "web-abc",
                "namespace": "default",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": deployment["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-abc",
        "uid": replicaset["metadata"]["uid"],
        "controller": True,
    }
    for index in range(replicas):
        add_pod(store, make_pod(f"web-{index}", node="node-a1", owner=owner))
    return store, clock


def _sync_pdb(store: Store, clock: ManualClock, **spec: Any) -> DisruptionController:
    pdb = make_pdb(**spec)
    pdb["metadata"].pop("generation")
    store.create(PDBS, pdb)
    controller = DisruptionController(store, clock, SETTINGS)
    controller.all_keys()
    controller.reconcile(("default", "web"))
    return controller


def _eviction(name: str, **options: Any) -> KubeObject:
    body: KubeObject = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"},
    }
    if options:
        body["deleteOptions"] = options
    return body


def test_controller_reads_the_deployment_scale_through_the_replicaset() -> None:
    store, clock = _deployment_world()
    _sync_pdb(store, clock, max_unavailable=1)
    status = store.get(PDBS, "default", "web")["status"]
    assert {
        k: status[k]
        for k in (
            "expectedPods",
            "desiredHealthy",
            "currentHealthy",
            "disruptionsAllowed",
            "observedGeneration",
        )
    } == {
        "expectedPods": 3,
        "desiredHealthy": 2,
        "currentHealthy": 3,
        "disruptionsAllowed": 1,
        "observedGeneration": 1,
    }
    assert status["conditions"][0]["status"] == "True"


def test_controller_fails_safe_when_a_controller_is_missing() -> None:
    store, clock = _deployment_world(1)
    store.delete("apps/replicasets", "default", "web-abc")
    _sync_pdb(store, clock, max_unavailable=1)
    status = store.get(PDBS, "default", "web")["status"]
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0]["reason"] == "SyncFailed"
    assert status["conditions"][0]["message"] == 'found no controllers for pod "web-0"'


def test_evict_charges_the_budget_marks_and_deletes_the_pod() -> None:
    store, clock = _deployment_world()
    _sync_pdb(store, clock, max_unavailable=1)

    answer = evict(
        store, clock, SETTINGS, "default", "web-0", _eviction("web-0", gracePeriodSeconds=5)
    )

    assert (answer["status"], answer["code"]) == ("Success", 201)
    pod = store.get("pods", "default", "web-0")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 5
    target = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "EvictionByEvictionAPI",
        "Eviction API: evicting",
    )
    status = store.get(PDBS, "default", "web")["status"]
    assert status["disruptionsAllowed"] == 0
    assert status["disruptedPods"] == {"web-0": "2026-01-01T00:00:00Z"}

    with pytest.raises(ApiError) as refused:
        evict(store, clock, SETTINGS, "default", "web-1", _eviction("web-1"))
    assert refused.value.code == 429
    assert not store.get("pods", "default", "web-1")["metadata"].get("deletionTimestamp")


def test_disrupted_pods_expire_after_the_deletion_timeout() -> None:
    store, clock = _deployment_world()
    controller = _sync_pdb(store, clock, max_unavailable=1)
    store.mutate(
        PDBS,
        "default",
        "web",
        lambda pdb: pdb["status"].update(
            disruptedPods={"web-0": "2026-01-01T00:00:00Z"}, disruptionsAllowed=0
        ),
        subresource="status",
    )
    assert controller.reconcile(("default", "web")) == pytest.approx(121.0)
    assert store.get(PDBS, "default", "web")["status"]["currentHealthy"] == 2
    clock.advance(121)
    controller.reconcile(("default", "web"))
    status = store.get(PDBS, "default", "web")["status"]
    assert ("disruptedPods" not in status, status["currentHealthy"]) == (True, 3)


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        pytest.param("web-0", _eviction("web-1"), 400, id="name-mismatch"),
        pytest.param("nope", _eviction("nope"), 404, id="no-such-pod"),
        pytest.param(
            "web-0", _eviction("web-0", preconditions={"uid": "other"}), 409, id="uid-precondition"
        ),
    ],
)
def test_evict_errors(name: str, body: KubeObject, code: int) -> None:
    store, clock = _deployment_world()
    with pytest.raises(ApiError) as error:
        evict(store, clock, SETTINGS, "default", name, body)
    assert error.value.code == code


def test_evict_pending_pod_deletes_it_at_once() -> None:
    store, clock = _deployment_world()
    _sync_pdb(store, clock, min_available=3)
    add_pod(store, make_pod("pending"))
    answer = evict(store, clock, SETTINGS, "default", "pending", _eviction("pending"))
    assert answer["code"] == 201
    assert store.find("pods", "default", "pending") is None


def test_pod_changes_queue_matching_budgets() -> None:
    store, clock = _deployment_world()
    controller = _sync_pdb(store, clock, min_available=2)
    seen = changes_of(store)
    store.delete("pods", "default", "web-2")
    assert list(controller.keys_for(seen[-1])) == [("default", "web")]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(disruption_module).failed == 0
