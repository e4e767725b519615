"""What the control plane publishes about its API server: the `kubernetes` Service with its
Endpoints and EndpointSlice, `kube-root-ca.crt` in every namespace, and the certificates
that `ca.crt` verifies (against the real store; the objects are what upstream writes)."""

from __future__ import annotations

import doctest
import ipaddress
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509

from sandbox.kube import servingcert
from sandbox.kube.clock import ManualClock
from sandbox.kube.controllers import kubernetesservice, rootcacert
from sandbox.kube.controllers.kubernetesservice import (
    ApiServerAddress,
    KubernetesServiceController,
    repair,
)
from sandbox.kube.controllers.rootcacert import DESCRIPTION, RootCaPublisher, publish
from sandbox.kube.store import Store

API = ApiServerAddress("127.0.4.2", "127.0.0.1", 36443)
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def sync(controller: Any) -> None:
    for key in controller.all_keys():
        controller.reconcile(key)


def store_with_namespaces(*names: str) -> Store:
    store = Store(ManualClock(NOW))
    for name in names:
        store.create("namespaces", {"metadata": {"name": name}})
    return store


def test_the_kubernetes_service_and_its_endpoints_are_upstreams() -> None:
    store = store_with_namespaces("default")
    sync(KubernetesServiceController(store, API))
    service = store.get("services", "default", "kubernetes")
    assert service["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert service["spec"]["clusterIP"] == "127.0.4.2" and "selector" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 36443}
    ]
    endpoints = store.get("endpoints", "default", "kubernetes")
    assert endpoints["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert endpoints["subsets"] == [
        {
            "addresses": [{"ip": "127.0.0.1"}],
            "ports": [{"name": "https", "port": 36443, "protocol": "TCP"}],
        }
    ]
    piece = store.get("discovery.k8s.io/endpointslices", "default", "kubernetes")
    assert piece["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert piece["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]


def test_a_deleted_or_changed_kubernetes_service_is_put_back() -> None:
    store = store_with_namespaces("default")
    controller = KubernetesServiceController(store, API)
    sync(controller)
    store.delete("endpoints", "default", "kubernetes")
    service = store.get("services", "default", "kubernetes")
    service["spec"]["ports"][0]["port"] = 8443
    service["metadata"]["labels"]["team"] = "platform"
    store.update("services", service)
    sync(controller)
    assert store.get("endpoints", "default", "kubernetes")["subsets"][0]["addresses"] == [
        {"ip": "127.0.0.1"}
    ]
    fixed = store.get("services", "default", "kubernetes")
    assert fixed["spec"]["ports"][0]["port"] == 443
    assert fixed["metadata"]["labels"]["team"] == "platform"  # what it does not own is kept
    version = fixed["metadata"]["resourceVersion"]
    sync(controller)
    assert store.get("services", "default", "kubernetes")["metadata"]["resourceVersion"] == version


def test_repair_leaves_a_right_object_alone() -> None:
    wanted = kubernetesservice.desired("127.0.4.2", "127.0.0.1", 36443)[1]
    assert repair("endpoints", {**wanted, "metadata": dict(wanted["metadata"])}, wanted) is None


def test_every_active_namespace_gets_the_root_ca() -> None:
    store = store_with_namespaces("default", "harmonyflow")
    publisher = RootCaPublisher(store, "CA PEM\n")
    sync(publisher)
    for namespace in ("default", "harmonyflow"):
        found = store.get("configmaps", namespace, "kube-root-ca.crt")
        assert found["data"] == {"ca.crt": "CA PEM\n"}
        assert found["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
    store.create("namespaces", {"metadata": {"name": "late"}})
    publisher.reconcile("late")
    assert store.get("configmaps", "late", "kube-root-ca.crt")["data"] == {"ca.crt": "CA PEM\n"}


def test_an_edited_root_ca_is_put_back_and_a_terminating_namespace_left_alone() -> None:
    store = store_with_namespaces("shop")
    publisher = RootCaPublisher(store, "CA PEM\n")
    sync(publisher)
    edited = store.get("configmaps", "shop", "kube-root-ca.crt")
    edited["data"] = {"ca.crt": "forged"}
    edited["metadata"]["annotations"] = {"mine": "kept"}
    store.update("configmaps", edited)
    publisher.reconcile("shop")
    fixed = store.get("configmaps", "shop", "kube-root-ca.crt")
    assert fixed["data"] == {"ca.crt": "CA PEM\n"}
    assert fixed["metadata"]["annotations"]["mine"] == "kept"
    store.delete("configmaps", "shop", "kube-root-ca.crt")
    store.mutate(
        "namespaces",
        "",
        "shop",
        lambda ns: ns["status"].update(phase="Terminating"),
        subresource="status",
    )
    assert store.get("namespaces", "", "shop")["status"]["phase"] == "Terminating"
    publisher.reconcile("shop")
    assert store.find("configmaps", "shop", "kube-root-ca.crt") is None


@pytest.mark.parametrize(
    ("current", "expected_none"),
    [
        pytest.param(None, False, id="missing"),
        pytest.param(
            {
                "metadata": {"annotations": {"kubernetes.io/description": "x"}},
                "data": {"ca.crt": "C"},
            },
            True,
            id="right",
        ),
        pytest.param({"metadata": {}, "data": {"ca.crt": "C"}}, False, id="no-description"),
    ],
)
def test_publish_decides(current: dict[str, Any] | None, expected_none: bool) -> None:
    assert (publish(current, "C") is None) is expected_none


def test_the_serving_certificate_names_the_kubernetes_service_and_chains_to_the_ca() -> None:
    issued = servingcert.issue(["127.0.0.1", "127.0.4.2"], NOW)
    ca = x509.load_pem_x509_certificate(issued.ca_pem)
    serving = x509.load_pem_x509_certificate(issued.cert_pem)
    serving.verify_directly_issued_by(ca)
    alternative = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(alternative.get_values_for_type(x509.DNSName)) >= {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert alternative.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("127.0.4.2"),
    ]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_worked_examples_hold() -> None:
    for module in (kubernetesservice, rootcacert, servingcert):
        assert doctest.testmod(module).failed == 0
