"""Services' names in the cluster DNS: the records as a table, the controller on the store."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.infra import servicedns
from sandbox.infra.clusterdns import ClusterDns, Record
from sandbox.infra.servicedns import (
    RecordPlan,
    ServiceDnsController,
    ServiceRecord,
    record_plan,
    service_records,
)
from sandbox.infra.supervisor import Endpoint
from sandbox.kube.controllers.endpoints import SERVICE_NAME_LABEL, SLICES
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
DOMAIN = "cluster.local"


def make_service(name: str = "web", **spec: Any) -> KubeObject:
    return {
        "metadata": {"name": name, "namespace": "hf"},
        "spec": {"ports": [{"name": "http", "port": 80}], **spec},
    }


def endpoint(address: str, ready: bool | None = True, hostname: str = "") -> KubeObject:
    found: KubeObject = {"addresses": [address], "conditions": {}}
    if ready is not None:
        found["conditions"]["ready"] = ready
    if hostname:
        found["hostname"] = hostname
    return found


def make_slice(*endpoints: KubeObject, service: str = "web", family: str = "IPv4") -> KubeObject:
    return {
        "metadata": {
            "generateName": f"{service}-",
            "namespace": "hf",
            "labels": {SERVICE_NAME_LABEL: service},
        },
        "addressType": family,
        "endpoints": list(endpoints),
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def a(*addresses: str) -> ServiceRecord:
    return ServiceRecord(tuple(addresses))


BASE = "web.hf.svc.cluster.local"


@pytest.mark.parametrize(
    ("service", "slices", "expected"),
    [
        pytest.param(
            make_service(clusterIP="127.0.4.2", clusterIPs=["127.0.4.2"]),
            [
                make_slice(
                    endpoint("127.0.2.6"), endpoint("127.0.2.5"), endpoint("127.0.2.7", False)
                )
            ],
            {
                BASE: a("127.0.4.2"),
                f"127-0-2-5.{BASE}": a("127.0.2.5"),
                f"127-0-2-6.{BASE}": a("127.0.2.6"),
            },
            id="cluster-ip-and-its-ready-endpoints",
        ),
        pytest.param(
            make_service(clusterIP="127.0.4.2"),
            [],
            {BASE: a("127.0.4.2")},
            id="cluster-ip-without-endpoints-still-answers",
        ),
        pytest.param(make_service(clusterIP="127.0.4.2", ports=[]), [], {}, id="no-port-no-name"),
        pytest.param(
            make_service(clusterIP="None"),
            [
                make_slice(endpoint("127.0.2.9", hostname="web-0"), endpoint("127.0.2.5")),
                make_slice(endpoint("127.0.2.10", ready=None), endpoint("127.0.2.5")),
            ],
            {
                BASE: a("127.0.2.5", "127.0.2.9", "127.0.2.10"),
                f"127-0-2-10.{BASE}": a("127.0.2.10"),
                f"127-0-2-5.{BASE}": a("127.0.2.5"),
                f"web-0.{BASE}": a("127.0.2.9"),
            },
            id="headless-ready-endpoints-a-nil-condition-is-ready",
        ),
        pytest.param(
            make_service(clusterIP="None"),
            [make_slice(endpoint("127.0.2.5", ready=False))],
            {},
            id="headless-without-a-ready-endpoint-is-nxdomain",
        ),
        pytest.param(
            make_service(clusterIP="None"),
            [make_slice({"addresses": ["fd00::5"], "conditions": {"ready": True}}, family="IPv6")],
            {},
            id="ipv6-slices-are-not-served",
        ),
        pytest.param(
            make_service(type="ExternalName", externalName="db.example.org"),
            [],
            {BASE: ServiceRecord(alias="db.example.org")},
            id="external-name-is-a-cname",
        ),
        pytest.param(
            make_service(type="ExternalName", externalName="10.1.2.3"),
            [],
            {},
            id="external-ip-gets-no-record",
        ),
        pytest.param(
            {
                "metadata": {"name": "Web", "namespace": "HF"},
                "spec": {"clusterIP": "127.0.4.3", "ports": [{"port": 1}]},
            },
            [],
            {BASE: a("127.0.4.3")},
            id="lower-case",
        ),
    ],
)
def test_a_service_and_its_slices_give_coredns_records(
    service: KubeObject, slices: list[KubeObject], expected: dict[str, ServiceRecord]
) -> None:
    assert service_records(service, slices, DOMAIN) == expected


@pytest.mark.parametrize(
    ("published", "desired", "taken", "expected"),
    [
        pytest.param(
            {}, {"n": a("127.0.4.2")}, set(), RecordPlan({"n": a("127.0.4.2")}, ()), id="new"
        ),
        pytest.param(
            {"n": a("127.0.4.2")}, {"n": a("127.0.4.2")}, set(), RecordPlan({}, ()), id="same"
        ),
        pytest.param(
            {"n": a("127.0.4.2")},
            {"n": a("127.0.4.3")},
            {"n"},
            RecordPlan({"n": a("127.0.4.3")}, ()),
            id="ours-changed-though-the-table-has-it",
        ),
        pytest.param({}, {"n": a("127.0.4.2")}, {"n"}, RecordPlan({}, ()), id="someone-elses"),
        pytest.param({"n": a("127.0.4.2")}, {}, {"n"}, RecordPlan({}, ("n",)), id="gone"),
    ],
)
def test_the_plan_writes_what_changed_and_never_a_name_it_did_not_publish(
    published: dict[str, ServiceRecord],
    desired: dict[str, ServiceRecord],
    taken: set[str],
    expected: RecordPlan,
) -> None:
    assert record_plan(published, desired, lambda name: name in taken) == expected


def test_doctests() -> None:
    assert doctest.testmod(servicedns).failed == 0


@pytest.fixture
def store() -> Store:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "hf"}})
    return store


def test_the_controller_follows_services_and_slices_and_leaves_other_names_alone(
    store: Store,
) -> None:
    dns = ClusterDns(Endpoint("127.0.9.53", 0))  # never started: only its table is used
    dns.set("kube-dns.kube-system.svc.cluster.local", ["127.0.9.53"])
    dns.set("taken.hf.svc.cluster.local", ["127.0.3.10"])
    controller = ServiceDnsController(store, dns, DOMAIN)
    changes: list[Change] = []
    store.add_listener(changes.append)

    def sync() -> None:
        for key in {k for change in changes for k in controller.keys_for(change)}:
            controller.reconcile(key)
        changes.clear()

    web = store.create("services", make_service())
    piece = store.create(SLICES, make_slice(endpoint("127.0.2.5")))
    store.create("services", make_service("taken"))
    sync()
    cluster_ip = web["spec"]["clusterIP"]
    assert dns.lookup(BASE) == Record((cluster_ip,))
    assert dns.lookup(f"127-0-2-5.{BASE}") == Record(("127.0.2.5",))
    assert dns.lookup("taken.hf.svc.cluster.local") == Record(("127.0.3.10",))

    piece["endpoints"] = [endpoint("127.0.2.5", ready=False), endpoint("127.0.2.6")]
    store.update(SLICES, piece)
    sync()
    assert dns.lookup(f"127-0-2-5.{BASE}") is None
    assert dns.lookup(f"127-0-2-6.{BASE}") == Record(("127.0.2.6",))

    store.delete("services", "hf", "web")
    store.delete("services", "hf", "taken")
    sync()
    assert dns.lookup(BASE) is None
    assert dns.lookup(f"127-0-2-6.{BASE}") is None
    assert dns.lookup("taken.hf.svc.cluster.local") == Record(("127.0.3.10",))
    assert dns.lookup("kube-dns.kube-system.svc.cluster.local") is not None
    assert list(controller.all_keys()) == []


def test_a_resync_removes_the_names_of_a_service_deleted_unseen(store: Store) -> None:
    dns = ClusterDns(Endpoint("127.0.9.53", 0))
    controller = ServiceDnsController(store, dns, DOMAIN)
    store.create("services", make_service())
    for key in controller.all_keys():
        controller.reconcile(key)
    assert dns.lookup(BASE) is not None
    store.delete("services", "hf", "web")
    assert list(controller.all_keys()) == [("hf", "web")]
    for key in controller.all_keys():
        controller.reconcile(key)
    assert dns.lookup(BASE) is None
