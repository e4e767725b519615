"""kube-proxy's ClusterIP routes: which endpoints, as a table; the nft text; nft's verdict on it."""

from __future__ import annotations

import doctest
import os
import shutil
import subprocess
from typing import Any

import pytest

from sandbox.cni import services as services_module
from sandbox.cni.ruleset import NetworkTable, render_table
from sandbox.cni.services import (
    SERVICE_NAME_LABEL,
    Backend,
    ServicePortRoute,
    port_backends,
    proxy_chains,
    service_routes,
)

KubeObject = dict[str, Any]
PODS = {"u5": "127.0.2.5", "u6": "127.0.2.6", "u7": "127.0.2.7"}


def endpoint(uid: str, **conditions: bool) -> KubeObject:
    return {
        "addresses": [PODS.get(uid, "127.0.2.99")],
        "conditions": {"ready": True, **conditions},
        "targetRef": {"kind": "Pod", "uid": uid},
    }


def make_slice(
    *endpoints: KubeObject,
    service: str = "locust-master",
    namespace: str = "load",
    ports: list[KubeObject] | None = None,
    family: str = "IPv4",
) -> KubeObject:
    return {
        "metadata": {"namespace": namespace, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": family,
        "ports": ports
        if ports is not None
        else [
            {"name": "master", "port": 5557, "protocol": "TCP"},
            {"name": "web", "port": 8089, "protocol": "TCP"},
        ],
        "endpoints": list(endpoints),
    }


def make_service(name: str = "locust-master", namespace: str = "load", **spec: Any) -> KubeObject:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "clusterIP": "127.0.4.2",
            "ports": [
                {"name": "master", "port": 5557, "targetPort": "master", "protocol": "TCP"},
                {"name": "web", "port": 8089, "targetPort": "web", "protocol": "TCP"},
            ],
            **spec,
        },
    }


def backends(*uids: str, port: int = 5557) -> tuple[Backend, ...]:
    return tuple(Backend(PODS[uid], port) for uid in uids)


@pytest.mark.parametrize(
    ("slices", "expected"),
    [
        pytest.param(
            [make_slice(endpoint("u6"), endpoint("u5"))], backends("u5", "u6"), id="ready"
        ),
        pytest.param(
            [make_slice(endpoint("u5"), endpoint("u6", ready=False))], backends("u5"), id="unready"
        ),
        pytest.param(
            [
                make_slice(
                    endpoint("u5", ready=False, serving=True, terminating=True),
                    endpoint("u6", ready=False, serving=False, terminating=True),
                    endpoint("u7", ready=False),
                )
            ],
            backends("u5"),
            id="no-ready-one-falls-back-to-serving-terminating",
        ),
        pytest.param(
            [
                make_slice(
                    endpoint("u5"), endpoint("u6", ready=False, serving=True, terminating=True)
                )
            ],
            backends("u5"),
            id="draining-ones-only-without-a-ready-one",
        ),
        pytest.param(
            [make_slice({"addresses": ["127.0.2.5"], "conditions": {}})],
            (Backend("127.0.2.5", 5557),),
            id="nil-ready-is-ready",
        ),
        pytest.param(
            [make_slice(endpoint("gone"))], (), id="a-pod-address-ipam-does-not-hold-is-not-used"
        ),
        pytest.param(
            [make_slice({"addresses": ["10.0.2.15"], "conditions": {"ready": True}})],
            (),
            id="never-off-this-machine",
        ),
        pytest.param(
            [make_slice({"addresses": ["127.0.3.11"], "conditions": {"ready": True}})],
            (Backend("127.0.3.11", 5557),),
            id="a-manual-endpoint-on-loopback",
        ),
        pytest.param(
            [make_slice(endpoint("u5"), ports=[{"name": "web", "port": 8089, "protocol": "TCP"}])],
            (),
            id="the-slice-has-no-such-port",
        ),
        pytest.param(
            [
                make_slice(
                    endpoint("u5"), ports=[{"name": "master", "port": 5557, "protocol": "UDP"}]
                )
            ],
            (),
            id="same-name-other-protocol",
        ),
        pytest.param(
            [
                make_slice(endpoint("u5")),
                make_slice(endpoint("u6"), ports=[{"name": "master", "port": 6000}]),
            ],
            (Backend("127.0.2.5", 5557), Backend("127.0.2.6", 6000)),
            id="named-port-resolved-per-slice",
        ),
        pytest.param(
            [make_slice(endpoint("u5"), family="IPv6")], (), id="ipv6-slices-are-not-proxied"
        ),
    ],
)
def test_a_service_port_balances_over_the_endpoints_kube_proxy_would_use(
    slices: list[KubeObject], expected: tuple[Backend, ...]
) -> None:
    assert port_backends(slices, "master", "TCP", PODS) == expected


def test_every_port_of_a_service_with_a_loopback_cluster_ip_is_routed() -> None:
    routes = service_routes(
        [
            make_service(),
            make_service("headless", clusterIP="None"),
            make_service("external", type="ExternalName", externalName="db.example.org"),
            make_service("far", clusterIP="10.100.0.10"),
            make_service("empty", clusterIP="127.0.4.3", ports=[{"port": 80, "protocol": "TCP"}]),
            make_service(
                "dns", clusterIP="127.0.4.4", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]
            ),
            make_service("odd", clusterIP="127.0.4.5", ports=[{"port": 80, "protocol": "ICMP"}]),
            make_service("twin", clusterIP="127.0.4.2", ports=[{"name": "x", "port": 5557}]),
        ],
        [
            make_slice(endpoint("u5")),
            make_slice(endpoint("u6"), namespace="other"),
            make_slice(
                endpoint("u7"),
                service="dns",
                ports=[{"name": "dns", "port": 5353, "protocol": "UDP"}],
            ),
        ],
        PODS,
    )
    assert [(r.name, r.cluster_ip, r.port, r.backends) for r in routes] == [
        ("load/dns/udp/dns", "127.0.4.4", 53, (Backend("127.0.2.7", 5353),)),
        ("load/empty/tcp/", "127.0.4.3", 80, ()),
        ("load/locust-master/tcp/master", "127.0.4.2", 5557, backends("u5")),
        ("load/locust-master/tcp/web", "127.0.4.2", 8089, backends("u5", port=8089)),
    ]


ROUTES = (
    ServicePortRoute("load", "locust-master", "master", "tcp", "127.0.4.2", 5557,
                     (Backend("127.0.2.5", 5557), Backend("127.0.2.6", 5557))),
    ServicePortRoute("load", "gone", "", "tcp", "127.0.4.3", 80, ()),
)  # fmt: skip


def test_the_rules_dnat_at_random_to_an_endpoint_and_reject_without_one() -> None:
    text = "\n".join(proxy_chains(ROUTES))
    service = "service-FIN27HJX-load/locust-master/tcp/master"
    first = "endpoint-QCOOZ3MR-load/locust-master/tcp/master__127.0.2.5/5557"
    second = "endpoint-ZNXBER64-load/locust-master/tcp/master__127.0.2.6/5557"
    for expected in [
        f"  elements = {{ 127.0.4.2 . tcp . 5557 : goto {service} }}",
        "  elements = { 127.0.4.3 . tcp . 80 : goto reject-chain }",
        f"chain {service} {{\n  numgen random mod 2 vmap {{ 0 : goto {first}, 1 : goto {second} }}",
        f"chain {first} {{\n  meta l4proto tcp dnat ip to 127.0.2.5:5557\n}}",
        f"chain {second} {{\n  meta l4proto tcp dnat ip to 127.0.2.6:5557\n}}",
        "chain filter-output {\n  type filter hook output priority -110; policy accept;\n"
        "  ct state new jump endpoints-check\n}",
        "chain nat-output {\n  type nat hook output priority -100; policy accept;\n"
        "  jump services\n}",
        "chain reject-chain {\n  reject\n}",
    ]:
        assert expected in text


def test_without_services_the_maps_are_empty() -> None:
    text = "\n".join(proxy_chains(()))
    assert "elements" not in text
    assert "dnat" not in text
    assert "map service-ips {" in text


def test_doctests() -> None:
    assert doctest.testmod(services_module).failed == 0


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root and nft"
)
@pytest.mark.parametrize(
    "routes", [pytest.param(ROUTES, id="services"), pytest.param((), id="none")]
)
def test_nft_takes_the_table_with_the_services(routes: tuple[ServicePortRoute, ...]) -> None:
    """`nft -c` parses and checks the whole table against the kernel and applies nothing."""
    # no pod: nft -c would look its cgroup up, and there is none
    table = NetworkTable(f"hftest_svc{os.getpid()}", services=routes)
    checked = subprocess.run(
        ["nft", "-c", "-f", "-"], input=render_table(table), text=True, capture_output=True,
        timeout=10, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    listed = subprocess.run(
        ["nft", "list", "table", "inet", table.name], capture_output=True, timeout=10, check=False
    )
    assert listed.returncode != 0, "nft -c applied the table"
