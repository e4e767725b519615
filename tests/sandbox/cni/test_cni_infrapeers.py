"""The infrastructure NetworkPolicy sees as pods: the cluster DNS and the ingress controller.

The seed's policies as deploy/overlays/sandbox renders them, over API pods and
namespaces plus `infrastructure_peers`, through `cluster_policies` (what the pod
network's controller compiles).
"""

from __future__ import annotations

import doctest
from functools import cache
from typing import Any

import pytest

from resilience.manifests import render
from sandbox.cni import infrapeers
from sandbox.cni.controller import cluster_policies
from sandbox.cni.infrapeers import InfrastructurePeers, infrastructure_peers
from sandbox.cni.netpolicy import connection_allowed
from sandbox.infra.nginx_config import INGRESS_POD_ADDRESS
from tests.builders import REPO_ROOT

DNS = "127.0.3.53"
SESSION, DEBUG = "127.0.2.10", "127.0.2.11"
NODE = "127.0.0.1"


def api_pod(namespace: str, name: str, ip: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": ip},
    }


def api_namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


PODS = [
    api_pod("harmonyflow", "session-state-0", SESSION, app="session-state-service"),
    api_pod("harmonyflow", "debug", DEBUG, app="debug"),
]
NAMESPACES = [api_namespace("harmonyflow"), api_namespace("kube-system")]


@cache
def seed_policies() -> tuple[dict[str, Any], ...]:
    rendered = render(REPO_ROOT / "deploy" / "overlays" / "sandbox")
    return tuple(dict(o.body) for o in rendered.of_kind("NetworkPolicy"))


def allowed(
    peers: InfrastructurePeers,
    source: str,
    destination: str,
    protocol: str,
    port: int,
    namespaces: list[dict[str, Any]] = NAMESPACES,
) -> bool:
    compiled = cluster_policies(seed_policies(), PODS, namespaces, peers)
    return connection_allowed(compiled, source, destination, protocol, port)


WITH_INGRESS = infrastructure_peers(DNS, INGRESS_POD_ADDRESS)
WITHOUT_INGRESS = infrastructure_peers(DNS, None)


@pytest.mark.parametrize(
    ("peers", "source", "destination", "protocol", "port", "expected"),
    [
        pytest.param(
            WITH_INGRESS, INGRESS_POD_ADDRESS, SESSION, "TCP", 8080, True, id="ingress-http"
        ),
        pytest.param(
            WITH_INGRESS, INGRESS_POD_ADDRESS, SESSION, "TCP", 8443, True, id="ingress-ws"
        ),
        pytest.param(
            WITH_INGRESS, INGRESS_POD_ADDRESS, SESSION, "TCP", 9090, False, id="ingress-other-port"
        ),
        pytest.param(
            WITH_INGRESS, INGRESS_POD_ADDRESS, DEBUG, "TCP", 8080, False, id="ingress-to-unlabelled"
        ),
        pytest.param(
            WITHOUT_INGRESS,
            INGRESS_POD_ADDRESS,
            SESSION,
            "TCP",
            8080,
            False,
            id="no-ingress-no-pod",
        ),
        pytest.param(WITH_INGRESS, SESSION, DNS, "UDP", 53, True, id="service-to-coredns"),
        pytest.param(WITH_INGRESS, DEBUG, DNS, "UDP", 53, False, id="unlabelled-to-coredns"),
        pytest.param(WITH_INGRESS, NODE, DEBUG, "TCP", 8080, True, id="the-node-always"),
    ],
)
def test_the_seeds_policies_see_the_ingress_and_the_dns_as_pods(
    peers: InfrastructurePeers,
    source: str,
    destination: str,
    protocol: str,
    port: int,
    expected: bool,
) -> None:
    assert allowed(peers, source, destination, protocol, port) is expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({"name": "ingress-nginx"}, True, id="labelled-as-upstream"),
        pytest.param({}, False, id="unlabelled-denied"),
    ],
)
def test_a_namespace_the_api_has_wins_over_the_infrastructures(
    labels: dict[str, str], expected: bool
) -> None:
    namespaces = [*NAMESPACES, api_namespace("ingress-nginx", labels)]
    got = allowed(WITH_INGRESS, INGRESS_POD_ADDRESS, SESSION, "TCP", 8080, namespaces)
    assert got is expected


def test_doctests() -> None:
    assert doctest.testmod(infrapeers).failed == 0
