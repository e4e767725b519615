"""Endpoints and EndpointSlices: conditions and ports as tables, the controller on the store."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock
from sandbox.kube.controllers import endpoints as endpoints_module
from sandbox.kube.controllers.endpoints import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    SLICES,
    EndpointsController,
    endpoint_conditions,
    endpoints_subsets,
    resolve_target_port,
    should_be_in_endpoints,
    slice_endpoints,
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


def make_service(
    name: str = "web",
    *,
    target_port: int | str = 8080,
    selector: dict[str, str] | None = None,
    headless: bool = False,
    publish_not_ready: bool = False,
    ports: list[KubeObject] | None = None,
) -> KubeObject:
    spec: KubeObject = {
        "selector": {"app": "web"} if selector is None else selector,
        "ports": [{"name": "http", "port": 80, "targetPort": target_port, "protocol": "TCP"}]
        if ports is None
        else ports,
    }
    if headless:
        spec["clusterIP"] = "None"
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {"tier": "front"},
        },
        "spec": spec,
    }


def with_named_port(pod: KubeObject, name: str = "http", number: int = 8080) -> KubeObject:
    pod["spec"]["containers"][0]["ports"] = [
        {"name": name, "containerPort": number, "protocol": "TCP"}
    ]
    return pod


# ---- pure decisions ----


@pytest.mark.parametrize(
    ("pod", "publish", "expected"),
    [
        pytest.param(
            make_pod("p", ready=True, node="n"),
            False,
            {"ready": True, "serving": True, "terminating": False},
            id="ready",
        ),
        pytest.param(
            make_pod("p", ready=False, node="n"),
            False,
            {"ready": False, "serving": False, "terminating": False},
            id="not-ready",
        ),
        pytest.param(
            make_pod("p", ready=True, node="n", deleting=True),
            False,
            {"ready": False, "serving": True, "terminating": True},
            id="terminating-still-serving",
        ),
        pytest.param(
            make_pod("p", ready=False, node="n", deleting=True),
            False,
            {"ready": False, "serving": False, "terminating": True},
            id="terminating-not-serving",
        ),
        pytest.param(
            make_pod("p", ready=False, node="n"),
            True,
            {"ready": True, "serving": False, "terminating": False},
            id="publish-not-ready",
        ),
    ],
)
def test_endpoint_conditions(pod: KubeObject, publish: bool, expected: dict[str, bool]) -> None:
    assert endpoint_conditions(pod, publish) == expected


@pytest.mark.parametrize(
    ("pod", "include_terminating", "expected"),
    [
        pytest.param(make_pod("p", node="n"), False, True, id="running"),
        pytest.param(make_pod("p"), True, False, id="no-pod-ip"),
        pytest.param(make_pod("p", node="n", phase="Succeeded"), True, False, id="succeeded"),
        pytest.param(make_pod("p", node="n", phase="Failed"), True, False, id="failed"),
        pytest.param(
            make_pod("p", node="n", deleting=True),
            False,
            False,
            id="terminating-dropped-from-endpoints",
        ),
        pytest.param(
            make_pod("p", node="n", deleting=True), True, True, id="terminating-kept-in-slices"
        ),
    ],
)
def test_should_be_in_endpoints(pod: KubeObject, include_terminating: bool, expected: bool) -> None:
    assert should_be_in_endpoints(pod, include_terminating) is expected


@pytest.mark.parametrize(
    ("target", "pod", "expected"),
    [
        pytest.param(8080, make_pod("p"), 8080, id="number"),
        pytest.param("http", with_named_port(make_pod("p"), "http", 9090), 9090, id="named"),
        pytest.param(
            "grpc", with_named_port(make_pod("p"), "http", 9090), None, id="named-missing"
        ),
    ],
)
def test_resolve_target_port(target: int | str, pod: KubeObject, expected: int | None) -> None:
    assert (
        resolve_target_port({"port": 80, "targetPort": target, "protocol": "TCP"}, pod) == expected
    )


def test_subsets_split_ready_and_not_ready_and_drop_terminating() -> None:
    pods = [
        make_pod("a", node="n1", ip="127.0.2.3"),
        make_pod("b", ready=False, node="n1", ip="127.0.2.2"),
        make_pod("c", node="n2", ip="127.0.2.4", deleting=True),
    ]
    subsets = endpoints_subsets(make_service(), pods)
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "127.0.2.3",
                    "nodeName": "n1",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "a",
                        "uid": "uid-a",
                    },
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "127.0.2.2",
                    "nodeName": "n1",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "b",
                        "uid": "uid-b",
                    },
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]


def test_subsets_group_pods_by_the_ports_they_serve() -> None:
    service = make_service(target_port="http")
    pods = [
        with_named_port(make_pod("a", node="n", ip="127.0.2.2"), "http", 8080),
        with_named_port(make_pod("b", node="n", ip="127.0.2.3"), "http", 9090),
        make_pod("c", node="n", ip="127.0.2.4"),
    ]  # no port named http: left out
    subsets = endpoints_subsets(service, pods)
    assert [(s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in subsets] == [
        ("127.0.2.2", 8080),
        ("127.0.2.3", 9090),
    ]


def test_headless_service_without_ports_lists_addresses() -> None:
    service = make_service(headless=True, ports=[])
    subsets = endpoints_subsets(service, [make_pod("a", node="n", ip="127.0.2.2")])
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "127.0.2.2",
                    "nodeName": "n",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "a",
                        "uid": "uid-a",
                    },
                }
            ]
        }
    ]


def test_slice_keeps_terminating_pods_and_adds_zones() -> None:
    pods = [
        make_pod("a", node="n1", ip="127.0.2.2"),
        make_pod("b", node="n2", ip="127.0.2.3", deleting=True),
        make_pod("c", node="n2", phase="Failed"),
    ]
    endpoints, ports = slice_endpoints(
        make_service(), pods, {"n1": "us-west-2a", "n2": "us-west-2b"}
    )
    assert [(e["addresses"], e["zone"], e["conditions"]["ready"]) for e in endpoints] == [
        (["127.0.2.2"], "us-west-2a", True),
        (["127.0.2.3"], "us-west-2b", False),
    ]
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]


# ---- the controller against the store ----


def _setup(
    *pods: KubeObject, service: KubeObject | None = None
) -> tuple[Store, EndpointsController]:
    clock = ManualClock()
    store = new_store(clock)
    add_node(store, make_node("node-a1", "us-west-2a"))
    add_node(store, make_node("node-b1", "us-west-2b"))
    for pod in pods:
        add_pod(store, pod)
    store.create("services", service or make_service())
    controller = EndpointsController(store, clock, ControlPlaneSettings())
    controller.all_keys()
    return store, controller


def _slices(store: Store) -> list[KubeObject]:
    return store.list(SLICES, namespace="default", labels=f"{SERVICE_NAME_LABEL}=web")


def test_controller_writes_endpoints_and_one_slice() -> None:
    store, controller = _setup(
        make_pod("web-1", node="node-a1", ip="127.0.2.2"),
        make_pod("web-2", ready=False, node="node-b1", ip="127.0.2.3"),
        make_pod("other", node="node-a1", labels={"app": "db"}),
    )
    controller.reconcile(("default", "web"))

    endpoints = store.get("endpoints", "default", "web")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["127.0.2.2"]
    assert [a["ip"] for a in endpoints["subsets"][0]["notReadyAddresses"]] == ["127.0.2.3"]
    assert endpoints["metadata"]["labels"] == {"tier": "front"}
    (piece,) = _slices(store)
    assert piece["metadata"]["name"].startswith("web-") and len(piece["metadata"]["name"]) == 9
    assert piece["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    assert piece["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert piece["addressType"] == "IPv4"
    assert [
        (e["targetRef"]["name"], e["zone"], e["conditions"]["ready"]) for e in piece["endpoints"]
    ] == [("web-1", "us-west-2a", True), ("web-2", "us-west-2b", False)]


def test_no_write_when_nothing_changed() -> None:
    store, controller = _setup(make_pod("web-1", node="node-a1"))
    controller.reconcile(("default", "web"))
    version = store.resource_version
    controller.reconcile(("default", "web"))
    assert store.resource_version == version


def test_terminating_pod_leaves_endpoints_but_stays_in_the_slice() -> None:
    store, controller = _setup(make_pod("web-1", node="node-a1"))
    controller.reconcile(("default", "web"))
    seen = changes_of(store)
    store.delete("pods", "default", "web-1")  # graceful: deletionTimestamp set
    assert ("default", "web") in controller.keys_for(seen[-1])
    controller.reconcile(("default", "web"))

    assert "subsets" not in store.get("endpoints", "default", "web")
    (piece,) = _slices(store)
    assert piece["endpoints"][0]["conditions"] == {
        "ready": False,
        "serving": True,
        "terminating": True,
    }


def test_headless_service_gets_the_headless_label() -> None:
    store, controller = _setup(
        make_pod("web-1", node="node-a1"), service=make_service(headless=True)
    )
    controller.reconcile(("default", "web"))
    assert (
        store.get("endpoints", "default", "web")["metadata"]["labels"][
            "service.kubernetes.io/headless"
        ]
        == ""
    )
    assert len(_slices(store)[0]["endpoints"]) == 1


def test_service_without_selector_is_left_alone() -> None:
    store, controller = _setup(make_pod("web-1", node="node-a1"), service=make_service(selector={}))
    controller.reconcile(("default", "web"))
    assert store.find("endpoints", "default", "web") is None
    assert _slices(store) == []


def test_deleting_the_service_removes_its_endpoints_and_slices() -> None:
    store, controller = _setup(make_pod("web-1", node="node-a1"))
    controller.reconcile(("default", "web"))
    seen = changes_of(store)
    store.delete("services", "default", "web")
    assert ("default", "web") in controller.keys_for(seen[-1])
    controller.reconcile(("default", "web"))
    assert store.find("endpoints", "default", "web") is None
    assert _slices(store) == []


def test_pod_changes_queue_the_services_that_select_them() -> None:
    store, controller = _setup(make_pod("web-1", node="node-a1"))
    store.create("services", make_service("db", selector={"app": "db"}))
    controller.all_keys()
    seen = changes_of(store)
    store.mutate("pods", "default", "web-1", lambda pod: pod["metadata"]["labels"].update(app="db"))
    assert list(controller.keys_for(seen[-1])) == [("default", "db"), ("default", "web")]


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(endpoints_module).failed == 0
