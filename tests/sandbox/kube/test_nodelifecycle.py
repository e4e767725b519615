"""Node lifecycle: heartbeat expiry, condition taints, NoExecute timing; controller on the store."""

from __future__ import annotations

import doctest
from datetime import timedelta
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock, parse_time, rfc3339, rfc3339_micro
from sandbox.kube.controllers import nodelifecycle as nodelifecycle_module
from sandbox.kube.controllers.nodelifecycle import (
    LEASE_NAMESPACE,
    NodeLifecycleController,
    assess_node_health,
    desired_taints,
    eviction_time,
)
from sandbox.kube.podutil import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    condition_status,
)
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
START = parse_time("2026-01-01T00:00:00Z")
GRACE = 50.0
SETTINGS = ControlPlaneSettings(node_monitor_grace_period_seconds=GRACE)


def _node(**kwargs: Any) -> KubeObject:
    node = make_node("n1", **kwargs)
    node["metadata"]["creationTimestamp"] = "2025-12-31T23:00:00Z"
    return node


def _lease(renew: str) -> KubeObject:
    return {"spec": {"holderIdentity": "n1", "renewTime": renew}}


# ---- heartbeats ----


@pytest.mark.parametrize(
    ("seconds_later", "lease", "stale"),
    [
        pytest.param(10, None, False, id="fresh"),
        pytest.param(50, None, False, id="exactly-at-grace"),
        pytest.param(51, None, True, id="past-grace"),
        pytest.param(51, _lease("2026-01-01T00:00:40.500000Z"), False, id="lease-renewed"),
        pytest.param(91, _lease("2026-01-01T00:00:40.500000Z"), True, id="lease-expired-too"),
    ],
)
def test_heartbeat_expiry(seconds_later: int, lease: KubeObject | None, stale: bool) -> None:
    now = START + timedelta(seconds=seconds_later)
    assert assess_node_health(_node(), lease, now, GRACE).stale is stale


def test_stale_node_conditions_turn_unknown() -> None:
    health = assess_node_health(_node(), None, START + timedelta(seconds=60), GRACE)
    assert health.conditions is not None
    by_type = {c["type"]: c for c in health.conditions}
    ready = by_type["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown",
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    )
    assert ready["lastHeartbeatTime"] == "2026-01-01T00:00:00Z"
    assert ready["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert (by_type["MemoryPressure"]["status"], by_type["MemoryPressure"]["reason"]) == (
        "Unknown",
        "NodeStatusNeverUpdated",
    )


def test_already_unknown_node_is_not_rewritten() -> None:
    health = assess_node_health(_node(), None, START + timedelta(seconds=60), GRACE)
    node = _node()
    node["status"]["conditions"] = health.conditions
    again = assess_node_health(node, None, START + timedelta(seconds=90), GRACE)
    assert again.stale and again.conditions is None


# ---- taints ----


def _keys(taints: list[KubeObject]) -> list[tuple[str, str, str | None]]:
    return [(t["key"], t["effect"], t.get("timeAdded")) for t in taints]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(_node(), [], id="ready"),
        pytest.param(
            _node(ready="False"),
            [(NOT_READY_TAINT, "NoSchedule", None), (NOT_READY_TAINT, "NoExecute", "T")],
            id="not-ready",
        ),
        pytest.param(
            _node(ready="Unknown"),
            [(UNREACHABLE_TAINT, "NoSchedule", None), (UNREACHABLE_TAINT, "NoExecute", "T")],
            id="unreachable",
        ),
        pytest.param(
            _node(unschedulable=True), [(UNSCHEDULABLE_TAINT, "NoSchedule", None)], id="cordoned"
        ),
        pytest.param(
            _node(taints=[{"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}]),
            [],
            id="uncordoned",
        ),
        pytest.param(
            _node(taints=[{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "T0"}]),
            [],
            id="back-to-ready",
        ),
        pytest.param(
            _node(
                ready="Unknown",
                taints=[{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "T0"}],
            ),
            [(UNREACHABLE_TAINT, "NoExecute", "T0"), (UNREACHABLE_TAINT, "NoSchedule", None)],
            id="keeps-time-added",
        ),
        pytest.param(
            _node(
                ready="False",
                taints=[{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "T0"}],
            ),
            [(NOT_READY_TAINT, "NoSchedule", None), (NOT_READY_TAINT, "NoExecute", "T")],
            id="unreachable-swapped-for-not-ready",
        ),
        pytest.param(
            _node(taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
            [("dedicated", "NoExecute", None)],
            id="foreign-taint-kept",
        ),
    ],
)
def test_desired_taints(node: KubeObject, expected: list[tuple[str, str, str | None]]) -> None:
    assert _keys(desired_taints(node, "T")) == expected


def test_pressure_condition_taints_the_node() -> None:
    node = _node()
    node["status"]["conditions"].append({"type": "MemoryPressure", "status": "True"})
    assert _keys(desired_taints(node, "T")) == [
        ("node.kubernetes.io/memory-pressure", "NoSchedule", None)
    ]


UNREACHABLE = {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
NOT_READY = {"key": NOT_READY_TAINT, "effect": "NoExecute"}


def _tolerate(key: str, seconds: int | None) -> KubeObject:
    toleration: KubeObject = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        toleration["tolerationSeconds"] = seconds
    return toleration


@pytest.mark.parametrize(
    ("tolerations", "taints", "after"),
    [
        pytest.param([], [], None, id="no-taint"),
        pytest.param([], [(UNREACHABLE, 0)], 0, id="untolerated-at-once"),
        pytest.param(
            [_tolerate(UNREACHABLE_TAINT, 300)], [(UNREACHABLE, 0)], 300, id="default-300s"
        ),
        pytest.param(
            [_tolerate(UNREACHABLE_TAINT, 300)],
            [(UNREACHABLE, -100)],
            200,
            id="counts-from-time-added",
        ),
        pytest.param(
            [_tolerate(UNREACHABLE_TAINT, None)], [(UNREACHABLE, 0)], None, id="tolerates-forever"
        ),
        pytest.param([_tolerate(UNREACHABLE_TAINT, 0)], [(UNREACHABLE, 0)], 0, id="zero-seconds"),
        pytest.param(
            [_tolerate(UNREACHABLE_TAINT, 300), _tolerate(NOT_READY_TAINT, 60)],
            [(UNREACHABLE, 0), (NOT_READY, 30)],
            60,
            id="shortest-toleration-from-earliest-taint",
        ),
        pytest.param(
            [_tolerate(UNREACHABLE_TAINT, 300)],
            [(UNREACHABLE, 0), (NOT_READY, 0)],
            0,
            id="second-taint-untolerated",
        ),
    ],
)
def test_eviction_time(
    tolerations: list[KubeObject], taints: list[tuple[KubeObject, int]], after: int | None
) -> None:
    with_times = [(taint, START + timedelta(seconds=offset)) for taint, offset in taints]
    due = eviction_time(tolerations, with_times, START)
    assert due == (None if after is None else START + timedelta(seconds=after))


# ---- the controller against the store ----


def _world(*pods: KubeObject) -> tuple[Store, ManualClock, NodeLifecycleController]:
    clock = ManualClock(START)
    store = new_store(clock, LEASE_NAMESPACE)
    add_node(store, make_node("n1", heartbeat=rfc3339(START)))
    for pod in pods:
        add_pod(store, pod)
    controller = NodeLifecycleController(store, clock, SETTINGS)
    return store, clock, controller


def _heartbeat(store: Store, clock: ManualClock) -> None:
    def post(node: KubeObject) -> None:
        node["status"]["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": rfc3339(clock.now()),
                "lastTransitionTime": rfc3339(clock.now()),
            }
        ]

    store.mutate("nodes", "", "n1", post, subresource="status")


def test_silent_node_is_marked_unknown_tainted_and_its_pods_not_ready() -> None:
    store, clock, controller = _world(make_pod("web-1", node="n1"))
    assert controller.reconcile("n1") == pytest.approx(5.0)  # the monitor period
    clock.advance(51)
    controller.reconcile("n1")

    node = store.get("nodes", "", "n1")
    assert condition_status(node, "Ready") == "Unknown"
    assert _keys(node["spec"]["taints"]) == [
        (UNREACHABLE_TAINT, "NoSchedule", None),
        (UNREACHABLE_TAINT, "NoExecute", "2026-01-01T00:00:51Z"),
    ]
    pod = store.get("pods", "default", "web-1")
    assert condition_status(pod, "Ready") == "False"
    assert condition_status(pod, "ContainersReady") == "False"
    assert store.list("events", fields="reason=NodeNotReady,involvedObject.kind=Node")


def test_pods_are_evicted_when_their_toleration_runs_out() -> None:
    # admission gives pods the default 300 s not-ready/unreachable NoExecute tolerations,
    # unless they mention the key themselves: this one tolerates it for NoSchedule only
    intolerant = make_pod(
        "intolerant",
        node="n1",
        spec={
            "tolerations": [
                {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}
            ]
        },
    )
    store, clock, controller = _world(make_pod("web-1", node="n1"), intolerant)
    clock.advance(51)
    controller.reconcile("n1")

    assert store.get("pods", "default", "intolerant")["metadata"].get("deletionTimestamp")
    assert not store.get("pods", "default", "web-1")["metadata"].get("deletionTimestamp")

    clock.advance(299)
    assert controller.reconcile("n1") == pytest.approx(1.0)
    assert not store.get("pods", "default", "web-1")["metadata"].get("deletionTimestamp")
    clock.advance(1)
    controller.reconcile("n1")
    evicted = store.get("pods", "default", "web-1")
    assert evicted["metadata"].get("deletionTimestamp")
    target = next(c for c in evicted["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["reason"] == "DeletionByTaintManager"
    # still Terminating: the kubelet that would remove it is gone
    clock.advance(600)
    controller.reconcile("n1")
    assert store.find("pods", "default", "web-1") is not None


def test_lease_renewal_keeps_the_node_alive() -> None:
    store, clock, controller = _world()
    seen = changes_of(store)
    clock.advance(40)
    store.create(
        "coordination.k8s.io/leases",
        {
            "metadata": {"name": "n1", "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": "n1", "renewTime": rfc3339_micro(clock.now())},
        },
    )
    assert list(controller.keys_for(seen[-1])) == ["n1"]
    clock.advance(40)
    controller.reconcile("n1")
    assert condition_status(store.get("nodes", "", "n1"), "Ready") == "True"


def test_returning_kubelet_clears_the_taints() -> None:
    store, clock, controller = _world()
    clock.advance(60)
    controller.reconcile("n1")
    assert store.get("nodes", "", "n1")["spec"]["taints"]
    _heartbeat(store, clock)
    controller.reconcile("n1")
    assert "taints" not in store.get("nodes", "", "n1")["spec"]


def test_cordon_adds_and_uncordon_removes_the_unschedulable_taint() -> None:
    store, _, controller = _world()
    store.mutate("nodes", "", "n1", lambda node: node["spec"].update(unschedulable=True))
    controller.reconcile("n1")
    assert _keys(store.get("nodes", "", "n1")["spec"]["taints"]) == [
        (UNSCHEDULABLE_TAINT, "NoSchedule", None)
    ]
    store.mutate("nodes", "", "n1", lambda node: node["spec"].pop("unschedulable"))
    controller.reconcile("n1")
    assert "taints" not in store.get("nodes", "", "n1")["spec"]


def test_node_reporting_not_ready_keeps_its_pods_readiness() -> None:
    store, _, controller = _world(make_pod("web-1", node="n1"))

    def not_ready(node: KubeObject) -> None:
        node["status"]["conditions"][0].update(status="False", reason="KubeletNotReady")

    store.mutate("nodes", "", "n1", not_ready, subresource="status")
    controller.reconcile("n1")
    assert [t["key"] for t in store.get("nodes", "", "n1")["spec"]["taints"]] == [
        NOT_READY_TAINT,
        NOT_READY_TAINT,
    ]
    assert condition_status(store.get("pods", "default", "web-1"), "Ready") == "True"


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(nodelifecycle_module).failed == 0
