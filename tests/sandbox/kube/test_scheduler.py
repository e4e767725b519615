"""Scheduler: filters, spreading, scoring as tables; binding against the real store.

The builders (`make_node`, `make_pod`, `add_node`, `add_pod`, `changes_of`) are in
`builders.py`, shared with the other controller tests of this directory.
"""

from __future__ import annotations

import doctest
import random
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock
from sandbox.kube.controllers import scheduler as scheduler_module
from sandbox.kube.controllers.nodeaffinity import node_selector_requirement_matches
from sandbox.kube.controllers.scheduler import (
    REASON_NODE_AFFINITY,
    REASON_SPREAD,
    REASON_UNSCHEDULABLE,
    Scheduler,
    default_spread_selector,
    fit_error_message,
    least_allocated_score,
    memory_bytes,
    milli_cpu,
    pod_requests,
    schedule,
    spread_constraints,
    spread_domain_counts,
    spread_skew_reason,
)
from sandbox.kube.controllers.scheduler import filter_node as run_filters
from sandbox.kube.podutil import ZONE_LABEL, tolerates
from sandbox.kube.settings import ControlPlaneSettings
from tests.sandbox.kube.builders import (
    KubeObject,
    add_node,
    add_pod,
    changes_of,
    make_node,
    make_pod,
    new_store,
)

ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")


def spread(max_skew: int = 1, **extra: Any) -> KubeObject:
    return {
        "topologySpreadConstraints": [
            {
                "maxSkew": max_skew,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}},
                **extra,
            }
        ]
    }


def six_nodes(cordoned_zone: str | None = None) -> list[KubeObject]:
    return [
        make_node(f"node-{zone[-1]}{i}", zone, unschedulable=zone == cordoned_zone)
        for zone in ZONES
        for i in (1, 2)
    ]


# ---- quantities and requests ----


@pytest.mark.parametrize(
    ("text", "millicores"),
    [
        pytest.param("100m", 100, id="milli"),
        pytest.param("0.5", 500, id="fraction"),
        pytest.param("2", 2000, id="whole"),
        pytest.param("1e-3", 1, id="exponent"),
    ],
)
def test_milli_cpu(text: str, millicores: int) -> None:
    assert milli_cpu(text) == millicores


@pytest.mark.parametrize(
    ("text", "size"),
    [
        pytest.param("128Mi", 128 * 2**20, id="binary"),
        pytest.param("1G", 10**9, id="decimal"),
        pytest.param("512", 512, id="bytes"),
    ],
)
def test_memory_bytes(text: str, size: int) -> None:
    assert memory_bytes(text) == size


def test_init_containers_count_as_their_maximum() -> None:
    pod = make_pod(
        "p",
        cpu="100m",
        spec={
            "initContainers": [
                {"name": "init", "image": "i", "resources": {"requests": {"cpu": "300m"}}}
            ]
        },
    )
    assert pod_requests(pod).milli_cpu == 300


# ---- taints and tolerations ----


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param(
            {"operator": "Exists"},
            {"key": "k", "effect": "NoExecute"},
            True,
            id="empty-key-exists-tolerates-all",
        ),
        pytest.param(
            {"key": "k", "operator": "Exists"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
            id="key-exists",
        ),
        pytest.param(
            {"key": "k", "value": "v"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
            id="equal-by-default",
        ),
        pytest.param(
            {"key": "k", "value": "w"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            False,
            id="value-differs",
        ),
        pytest.param(
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
            id="effect-differs",
        ),
        pytest.param(
            {"key": "other", "operator": "Exists"},
            {"key": "k", "effect": "NoSchedule"},
            False,
            id="key-differs",
        ),
    ],
)
def test_tolerates(toleration: KubeObject, taint: KubeObject, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


# ---- filters ----


def _affinity(*expressions: KubeObject) -> KubeObject:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": list(expressions)}]
                }
            }
        }
    }


@pytest.mark.parametrize(
    ("node", "pod", "others", "reasons"),
    [
        pytest.param(make_node("n"), make_pod("p"), [], [], id="ready-node-fits"),
        pytest.param(
            make_node("n", unschedulable=True),
            make_pod("p"),
            [],
            [REASON_UNSCHEDULABLE],
            id="cordoned",
        ),
        pytest.param(
            make_node("n", unschedulable=True),
            make_pod(
                "p",
                spec={
                    "tolerations": [
                        {
                            "key": "node.kubernetes.io/unschedulable",
                            "operator": "Exists",
                            "effect": "NoSchedule",
                        }
                    ]
                },
            ),
            [],
            [],
            id="cordon-tolerated",
        ),
        pytest.param(
            make_node("n", ready="False"),
            make_pod("p"),
            [],
            ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"],
            id="not-ready",
        ),
        pytest.param(
            make_node("n", ready="Unknown"),
            make_pod("p"),
            [],
            ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"],
            id="unreachable",
        ),
        pytest.param(
            make_node("n", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
            make_pod("p"),
            [],
            ["node(s) had untolerated taint {gpu: yes}"],
            id="untolerated-taint",
        ),
        pytest.param(
            make_node("n", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}]),
            make_pod("p"),
            [],
            [],
            id="prefer-no-schedule-is-soft",
        ),
        pytest.param(
            make_node("n"),
            make_pod("p", spec={"nodeSelector": {"disk": "ssd"}}),
            [],
            [REASON_NODE_AFFINITY],
            id="node-selector",
        ),
        pytest.param(
            make_node("n", labels={"disk": "ssd"}),
            make_pod("p", spec=_affinity({"key": "disk", "operator": "In", "values": ["ssd"]})),
            [],
            [],
            id="affinity-in",
        ),
        pytest.param(
            make_node("n"),
            make_pod(
                "p",
                spec=_affinity({"key": ZONE_LABEL, "operator": "NotIn", "values": ["us-west-2a"]}),
            ),
            [],
            [REASON_NODE_AFFINITY],
            id="affinity-notin",
        ),
        pytest.param(
            make_node("n", cpu="1"),
            make_pod("p", cpu="600m"),
            [make_pod("q", node="n", cpu="500m")],
            ["Insufficient cpu"],
            id="insufficient-cpu",
        ),
        pytest.param(
            make_node("n", memory="1Gi"),
            make_pod("p", memory="1Gi"),
            [make_pod("q", node="n", memory="1Mi")],
            ["Insufficient memory"],
            id="insufficient-memory",
        ),
        pytest.param(
            make_node("n", pods=1),
            make_pod("p"),
            [make_pod("q", node="n")],
            ["Too many pods"],
            id="pod-count",
        ),
    ],
)
def test_filters(
    node: KubeObject, pod: KubeObject, others: list[KubeObject], reasons: list[str]
) -> None:
    assert run_filters(pod, node, others, []) == reasons


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        pytest.param("In", ["a", "b"], {"k": "b"}, True, id="in"),
        pytest.param("In", ["a"], {}, False, id="in-missing"),
        pytest.param("NotIn", ["a"], {}, True, id="notin-missing"),
        pytest.param("NotIn", ["a"], {"k": "a"}, False, id="notin-present"),
        pytest.param("Exists", [], {"k": ""}, True, id="exists"),
        pytest.param("DoesNotExist", [], {"k": "x"}, False, id="does-not-exist"),
        pytest.param("Gt", ["4"], {"k": "8"}, True, id="gt"),
        pytest.param("Gt", ["4"], {"k": "4"}, False, id="gt-equal"),
        pytest.param("Lt", ["4"], {"k": "3"}, True, id="lt"),
        pytest.param("Lt", ["4"], {"k": "x"}, False, id="lt-not-a-number"),
    ],
)
def test_node_selector_operators(
    operator: str, values: list[str], labels: dict[str, str], expected: bool
) -> None:
    requirement = {"key": "k", "operator": operator, "values": values}
    assert node_selector_requirement_matches(requirement, labels) is expected


# ---- topology spread ----


@pytest.mark.parametrize(
    ("counts", "zone", "max_skew", "min_domains", "expected"),
    [
        pytest.param({"a": 1, "b": 1, "c": 0}, "a", 1, 1, REASON_SPREAD, id="above-empty-zone"),
        pytest.param({"a": 1, "b": 1, "c": 0}, "c", 1, 1, None, id="into-empty-zone"),
        pytest.param({"a": 1, "b": 1, "c": 0}, "a", 2, 1, None, id="skew-2-allows"),
        pytest.param({"a": 1, "b": 1}, "a", 1, 1, None, id="balanced-two-zones"),
        pytest.param({"a": 1, "b": 1}, "a", 1, 3, REASON_SPREAD, id="min-domains-forces-zero"),
    ],
)
def test_spread_skew(
    counts: dict[str, int], zone: str, max_skew: int, min_domains: int, expected: str | None
) -> None:
    constraint = spread_constraints(make_pod("p", spec=spread(max_skew, minDomains=min_domains)))[0]
    node = {"metadata": {"labels": {ZONE_LABEL: zone}}}
    assert spread_skew_reason(constraint, counts, node) == expected


def test_terminating_pods_do_not_count_for_spreading() -> None:
    pod = make_pod("new", spec=spread())
    nodes = six_nodes()
    pods = [make_pod("a", node="node-a1"), make_pod("c", node="node-c1", deleting=True)]
    counts = spread_domain_counts(spread_constraints(pod)[0], pod, nodes, pods)
    assert counts == {"us-west-2a": 1, "us-west-2b": 0, "us-west-2c": 0}


def test_match_label_keys_narrow_the_selector() -> None:
    pod = make_pod(
        "new",
        labels={"app": "web", "pod-template-hash": "v2"},
        spec=spread(matchLabelKeys=["pod-template-hash"]),
    )
    old = make_pod("old", node="node-a1", labels={"app": "web", "pod-template-hash": "v1"})
    counts = spread_domain_counts(spread_constraints(pod)[0], pod, six_nodes(), [old])
    assert counts["us-west-2a"] == 0


CORDONED_ZONE_PENDING = (
    "0/6 nodes are available: 2 node(s) were unschedulable, "
    "4 node(s) didn't match pod topology spread constraints."
)


@pytest.mark.parametrize(
    ("pod_spec", "expected_zones", "message"),
    [
        pytest.param(spread(), set(), CORDONED_ZONE_PENDING, id="cordoned-zone-stays-pending"),
        pytest.param(
            spread(nodeTaintsPolicy="Honor"),
            {"us-west-2a", "us-west-2b"},
            "",
            id="taints-policy-honor-ignores-cordoned-zone",
        ),
        pytest.param({}, {"us-west-2a", "us-west-2b"}, "", id="no-constraint-lands-elsewhere"),
        pytest.param(spread(2), {"us-west-2a", "us-west-2b"}, "", id="max-skew-2"),
    ],
)
def test_replacement_after_cordoning_a_zone(
    pod_spec: KubeObject, expected_zones: set[str], message: str
) -> None:
    """Reference 4.5: zone c cordoned, its pod evicted (terminating), a replacement pending."""
    pods = [
        make_pod("web-a", node="node-a1"),
        make_pod("web-b", node="node-b1"),
        make_pod("web-c", node="node-c1", deleting=True),
    ]
    nodes = six_nodes(cordoned_zone="us-west-2c")
    decision = schedule(make_pod("web-new", spec=pod_spec), nodes, pods, random.Random(1))
    zone_of = {n["metadata"]["name"]: n["metadata"]["labels"][ZONE_LABEL] for n in nodes}
    if expected_zones:
        assert decision.node_name is not None and zone_of[decision.node_name] in expected_zones
    else:
        assert decision.node_name is None
    assert decision.message == message


def test_schedule_anyway_prefers_the_emptier_zone() -> None:
    soft = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ]
    }
    pods = [
        make_pod("a1", node="node-a1"),
        make_pod("a2", node="node-a2"),
        make_pod("b1", node="node-b1"),
    ]
    decision = schedule(make_pod("new", spec=soft), six_nodes(), pods, random.Random(3))
    assert decision.node_name in ("node-c1", "node-c2")


REPLICASET = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "name": "web-5d8f",
    "uid": "uid-rs",
    "controller": True,
}


def service(selector: dict[str, str] | None, namespace: str = "default") -> KubeObject:
    return {"metadata": {"name": "svc", "namespace": namespace}, "spec": {"selector": selector}}


def replicaset(match_labels: dict[str, str]) -> KubeObject:
    return {"metadata": {"name": "web-5d8f"}, "spec": {"selector": {"matchLabels": match_labels}}}


@pytest.mark.parametrize(
    ("services", "controller", "matching", "not_matching"),
    [
        pytest.param([], None, [], [{"app": "web"}], id="nothing-selects-it"),
        pytest.param(
            [service({"app": "web"})], None, [{"app": "web"}], [{"app": "api"}], id="its-service"
        ),
        pytest.param(
            [service({"app": "web"}, namespace="other")],
            None,
            [],
            [{"app": "web"}],
            id="another-namespace-s-service",
        ),
        pytest.param(
            [service({"app": "api"})], None, [], [{"app": "web"}], id="a-service-for-others"
        ),
        pytest.param([service(None)], None, [], [{"app": "web"}], id="a-selectorless-service"),
        pytest.param(
            [],
            replicaset({"app": "web", "pod-template-hash": "5d8f"}),
            [{"app": "web", "pod-template-hash": "5d8f"}],
            [{"app": "web"}],
            id="its-replicaset",
        ),
        pytest.param(
            [service({"app": "web"})],
            replicaset({"pod-template-hash": "5d8f"}),
            [{"app": "web", "pod-template-hash": "5d8f"}],
            [{"app": "web", "pod-template-hash": "0000"}],
            id="service-and-replicaset-merged",
        ),
    ],
)
def test_default_spread_selector(
    services: list[KubeObject],
    controller: KubeObject | None,
    matching: list[dict[str, str]],
    not_matching: list[dict[str, str]],
) -> None:
    pod = make_pod("p", labels={"app": "web", "pod-template-hash": "5d8f"})
    selector = default_spread_selector(pod, services, controller)
    assert selector.empty == (not matching)  # an empty selector would match everything
    for labels in matching:
        assert selector.matches(labels)
    for labels in not_matching if matching else []:
        assert not selector.matches(labels)


def test_system_defaults_apply_only_without_declared_constraints() -> None:
    selector = default_spread_selector(make_pod("p"), [service({"app": "web"})], None)
    defaults = spread_constraints(make_pod("p"), selector)
    assert [(c.topology_key, c.max_skew, c.hard) for c in defaults] == [
        ("kubernetes.io/hostname", 3, False),
        (ZONE_LABEL, 5, False),
    ]
    declared = spread_constraints(make_pod("p", spec=spread()), selector)
    assert [(c.topology_key, c.max_skew, c.hard) for c in declared] == [(ZONE_LABEL, 1, True)]
    assert spread_constraints(make_pod("p"), default_spread_selector(make_pod("p"), [], None)) == []


def test_system_defaults_prefer_the_zone_without_replicas() -> None:
    """Zones a and b hold a replica each on their first node: the next one goes to zone c."""
    pods = [make_pod("web-a", node="node-a1"), make_pod("web-b", node="node-b1")]
    selector = default_spread_selector(make_pod("new"), [service({"app": "web"})], None)
    for seed in range(10):
        decision = schedule(make_pod("new"), six_nodes(), pods, random.Random(seed), selector)
        assert decision.node_name in ("node-c1", "node-c2"), decision.scores


@pytest.mark.parametrize("seed", range(5))
def test_replicaset_pods_without_constraints_spread_over_the_zones(seed: int) -> None:
    """A Deployment that declares no spreading still gets one replica per zone, as upstream."""
    clock = ManualClock()
    store = new_store(clock)
    for node in six_nodes():
        add_node(store, node)
    created = store.create(
        "apps/replicasets",
        {
            "metadata": {"name": "web-5d8f", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
                },
            },
        },
    )
    owner = {**REPLICASET, "uid": created["metadata"]["uid"]}
    for index in range(3):
        add_pod(store, make_pod(f"web-{index}", owner=owner))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(seed))
    for key in list(scheduler.all_keys()):
        scheduler.reconcile(key)
    zones = {
        store.get("nodes", "", p["spec"]["nodeName"])["metadata"]["labels"][ZONE_LABEL]
        for p in store.list("pods")
    }
    assert zones == set(ZONES)


def test_least_allocated_prefers_the_idle_node() -> None:
    pod = make_pod("p", cpu="500m", memory="512Mi")
    busy = [make_pod("q", node="busy", cpu="3", memory="6Gi")]
    assert least_allocated_score(pod, make_node("idle"), []) > least_allocated_score(
        pod, make_node("busy"), busy
    )
    decision = schedule(pod, [make_node("busy"), make_node("idle")], busy, random.Random(0))
    assert decision.node_name == "idle"


def test_ties_are_broken_by_the_seeded_rng() -> None:
    nodes = [make_node(f"n{i}") for i in range(4)]
    picks = {
        schedule(make_pod("p"), nodes, [], random.Random(seed)).node_name for seed in range(20)
    }
    assert len(picks) > 1
    assert (
        schedule(make_pod("p"), nodes, [], random.Random(5)).node_name
        == schedule(make_pod("p"), nodes, [], random.Random(5)).node_name
    )


@pytest.mark.parametrize(
    ("reasons", "message"),
    [
        pytest.param({}, "no nodes available to schedule pods", id="no-nodes"),
        pytest.param(
            {"a": ["Insufficient cpu", "Insufficient memory"], "b": ["Insufficient cpu"]},
            "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.",
            id="count-then-reason-sorted-as-strings",
        ),
    ],
)
def test_fit_error_message(reasons: dict[str, list[str]], message: str) -> None:
    assert fit_error_message(len(reasons), reasons) == message


# ---- the controller against the store ----


def test_binds_a_pending_pod_and_marks_it_scheduled() -> None:
    clock = ManualClock()
    store = new_store(clock)
    add_node(store, make_node("node-a1"))
    add_pod(store, make_pod("web-1"))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(1))
    assert list(scheduler.all_keys()) == [("default", "web-1")]

    assert scheduler.reconcile(("default", "web-1")) is None

    pod = store.get("pods", "default", "web-1")
    assert pod["spec"]["nodeName"] == "node-a1"
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["status"] == "True"
    events = store.list("events", fields="reason=Scheduled")
    assert events[0]["message"] == "Successfully assigned default/web-1 to node-a1"


def test_unschedulable_pod_is_marked_and_retried_when_a_node_frees_up() -> None:
    clock = ManualClock()
    store = new_store(clock)
    add_node(store, make_node("node-a1", unschedulable=True))
    add_pod(store, make_pod("web-1"))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(1))
    scheduler.reconcile(("default", "web-1"))

    pod = store.get("pods", "default", "web-1")
    assert "nodeName" not in pod["spec"]
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "Unschedulable",
        "0/1 nodes are available: 1 node(s) were unschedulable.",
    )
    failed = store.list("events", fields="reason=FailedScheduling")
    assert failed[0]["type"] == "Warning"

    seen = changes_of(store)
    store.mutate("nodes", "", "node-a1", lambda node: node["spec"].pop("unschedulable"))
    assert ("default", "web-1") in scheduler.keys_for(seen[-1])
    scheduler.reconcile(("default", "web-1"))
    assert store.get("pods", "default", "web-1")["spec"]["nodeName"] == "node-a1"


def test_heartbeats_do_not_requeue_pending_pods() -> None:
    clock = ManualClock()
    store = new_store(clock)
    add_node(store, make_node("node-a1", unschedulable=True))
    add_pod(store, make_pod("web-1"))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(1))
    scheduler.all_keys()
    seen = changes_of(store)

    def beat(node: KubeObject) -> None:
        node["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"

    store.mutate("nodes", "", "node-a1", beat, subresource="status")
    assert list(scheduler.keys_for(seen[-1])) == []


def test_other_schedulers_pods_are_left_alone() -> None:
    clock = ManualClock()
    store = new_store(clock)
    add_node(store, make_node("node-a1"))
    add_pod(store, make_pod("custom", spec={"schedulerName": "my-scheduler"}))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(1))
    assert list(scheduler.all_keys()) == []
    scheduler.reconcile(("default", "custom"))
    assert "nodeName" not in store.get("pods", "default", "custom")["spec"]


def test_pods_bind_one_after_another_respecting_spread() -> None:
    clock = ManualClock()
    store = new_store(clock)
    for node in six_nodes():
        add_node(store, node)
    for index in range(6):
        add_pod(store, make_pod(f"web-{index}", spec=spread()))
    scheduler = Scheduler(store, clock, ControlPlaneSettings(), rng=random.Random(2))
    for key in list(scheduler.all_keys()):
        scheduler.reconcile(key)
    zones = [
        store.get("nodes", "", p["spec"]["nodeName"])["metadata"]["labels"][ZONE_LABEL]
        for p in store.list("pods")
    ]
    assert sorted(zones) == sorted(ZONES * 2)


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(scheduler_module).failed == 0
