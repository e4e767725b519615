"""NetworkPolicy semantics (sandbox.cni.netpolicy) as tables of connections, allowed or not.

Upstream's rules, case by case, then the seed's policies as deploy/overlays/sandbox
renders them (and as deploy/base has them) over a small cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pytest

from resilience.manifests import render
from sandbox.cni.netpolicy import (
    AddressBlock,
    Allowance,
    CompiledPolicies,
    PolicyNamespace,
    PolicyPod,
    PortMatch,
    compile_policies,
    connection_allowed,
)
from tests.builders import REPO_ROOT


def policy(name: str, namespace: str = "app", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pod(
    ip: str,
    namespace: str = "app",
    ports: Mapping[str, tuple[int, str]] | None = None,
    **labels: str,
) -> PolicyPod:
    return PolicyPod(namespace, f"pod-{ip}", ip, labels, ports or {})


DB = pod("127.0.2.1", role="db", ports={"pg": (5432, "TCP"), "dns": (53, "UDP")})
WEB = pod("127.0.2.2", role="web")
WEB_ELSEWHERE = pod("127.0.2.3", namespace="other", role="web")
TEAM_WEB = pod("127.0.2.4", namespace="team", role="web")
TEAM_API = pod("127.0.2.5", namespace="team", role="api", ports={"pg": (6543, "TCP")})
PODS = (DB, WEB, WEB_ELSEWHERE, TEAM_WEB, TEAM_API)
NAMESPACES = (PolicyNamespace("team", {"tier": "trusted"}), PolicyNamespace("other"))
OUTSIDE = "127.0.3.1"
DB_ONLY = {"matchLabels": {"role": "db"}}


def ingress_to_db(*rules: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [policy("db-in", podSelector=DB_ONLY, policyTypes=["Ingress"], ingress=list(rules))]


# (policies, source, destination, protocol, port, allowed)
CASES = [
    pytest.param([], WEB.ip, DB.ip, "TCP", 5432, True, id="no-policy-allows-everything"),
    pytest.param(
        ingress_to_db(), WEB.ip, DB.ip, "TCP", 5432, False, id="selected-with-no-rules-is-denied"
    ),
    pytest.param(
        ingress_to_db(), DB.ip, WEB.ip, "TCP", 80, True, id="ingress-isolation-leaves-egress-open"
    ),
    pytest.param(
        ingress_to_db(), WEB.ip, TEAM_API.ip, "TCP", 80, True, id="unselected-pods-stay-open"
    ),
    pytest.param(
        [policy("p", podSelector=DB_ONLY, egress=[{"to": [{"podSelector": {}}]}])],
        DB.ip,
        OUTSIDE,
        "TCP",
        443,
        False,
        id="policytypes-default-adds-egress-when-egress-rules-exist",
    ),
    pytest.param(
        [policy("p", podSelector=DB_ONLY, ingress=[{}])],
        DB.ip,
        OUTSIDE,
        "TCP",
        443,
        True,
        id="policytypes-default-is-ingress-only-without-egress-rules",
    ),
    pytest.param(
        ingress_to_db({}),
        OUTSIDE,
        DB.ip,
        "UDP",
        9,
        True,
        id="empty-rule-allows-all-peers-and-ports",
    ),
    pytest.param(
        ingress_to_db({"from": [{"podSelector": {"matchLabels": {"role": "web"}}}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="podselector-peer-in-the-policys-namespace",
    ),
    pytest.param(
        ingress_to_db({"from": [{"podSelector": {"matchLabels": {"role": "web"}}}]}),
        WEB_ELSEWHERE.ip,
        DB.ip,
        "TCP",
        5432,
        False,
        id="podselector-peer-never-crosses-namespaces",
    ),
    pytest.param(
        ingress_to_db({"from": [{"namespaceSelector": {"matchLabels": {"tier": "trusted"}}}]}),
        TEAM_API.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="namespaceselector-peer-is-every-pod-of-the-namespace",
    ),
    pytest.param(
        ingress_to_db(
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}
                ]
            }
        ),
        WEB_ELSEWHERE.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="metadata-name-label-is-automatic",
    ),
    pytest.param(
        ingress_to_db(
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"tier": "trusted"}},
                        "podSelector": {"matchLabels": {"role": "web"}},
                    }
                ]
            }
        ),
        TEAM_API.ip,
        DB.ip,
        "TCP",
        5432,
        False,
        id="both-selectors-in-one-peer-is-and",
    ),
    pytest.param(
        ingress_to_db(
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"tier": "trusted"}}},
                    {"podSelector": {"matchLabels": {"role": "web"}}},
                ]
            }
        ),
        TEAM_API.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="two-peers-is-or",
    ),
    pytest.param(
        ingress_to_db(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]
                        }
                    }
                ]
            }
        ),
        TEAM_API.ip,
        DB.ip,
        "TCP",
        5432,
        False,
        id="match-expressions",
    ),
    pytest.param(
        ingress_to_db(
            {"from": [{"ipBlock": {"cidr": "127.0.3.0/24", "except": ["127.0.3.0/28"]}}]}
        ),
        "127.0.3.200",
        DB.ip,
        "TCP",
        5432,
        True,
        id="ipblock-allows-its-cidr",
    ),
    pytest.param(
        ingress_to_db(
            {"from": [{"ipBlock": {"cidr": "127.0.3.0/24", "except": ["127.0.3.0/28"]}}]}
        ),
        OUTSIDE,
        DB.ip,
        "TCP",
        5432,
        False,
        id="ipblock-except-is-denied",
    ),
    pytest.param(
        ingress_to_db({"from": [{"ipBlock": {"cidr": "127.0.2.0/24"}}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="ipblock-matches-pod-addresses-too",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"port": 5432}]}),
        WEB.ip,
        DB.ip,
        "UDP",
        5432,
        False,
        id="port-protocol-defaults-to-tcp",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"protocol": "UDP"}]}),
        WEB.ip,
        DB.ip,
        "UDP",
        1234,
        True,
        id="protocol-without-port-is-every-port",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"port": 8000, "endPort": 8100}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        8100,
        True,
        id="endport-range-is-inclusive",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"port": 8000, "endPort": 8100}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        8101,
        False,
        id="endport-range-ends",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"port": "pg"}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="named-port-resolves-on-the-destination-pod",
    ),
    pytest.param(
        ingress_to_db({"ports": [{"port": "dns", "protocol": "TCP"}]}),
        WEB.ip,
        DB.ip,
        "TCP",
        53,
        False,
        id="named-port-of-another-protocol-allows-nothing",
    ),
    pytest.param(
        [
            policy(
                "p",
                podSelector={"matchLabels": {"role": "web"}},
                policyTypes=["Egress"],
                egress=[{"ports": [{"port": "pg"}]}],
            )
        ],
        WEB.ip,
        TEAM_API.ip,
        "TCP",
        6543,
        True,
        id="egress-named-port-resolves-per-destination-pod",
    ),
    pytest.param(
        [
            policy(
                "p",
                podSelector={"matchLabels": {"role": "web"}},
                policyTypes=["Egress"],
                egress=[{"ports": [{"port": "pg"}]}],
            )
        ],
        WEB.ip,
        TEAM_API.ip,
        "TCP",
        5432,
        False,
        id="egress-named-port-is-not-another-pods-number",
    ),
    pytest.param(
        [
            policy(
                "p",
                podSelector={"matchLabels": {"role": "web"}},
                policyTypes=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "127.0.0.0/8"}}], "ports": [{"port": "pg"}]}],
            )
        ],
        WEB.ip,
        OUTSIDE,
        "TCP",
        5432,
        False,
        id="named-port-never-matches-an-ipblock",
    ),
    pytest.param(
        [
            *ingress_to_db({"ports": [{"port": 5432}]}),
            policy("more", podSelector=DB_ONLY, ingress=[{"ports": [{"port": 9187}]}]),
        ],
        WEB.ip,
        DB.ip,
        "TCP",
        9187,
        True,
        id="policies-add-up",
    ),
    pytest.param(
        [
            policy(
                "web-out",
                podSelector={"matchLabels": {"role": "web"}},
                policyTypes=["Egress"],
                egress=[{}],
            ),
            *ingress_to_db(),
        ],
        WEB.ip,
        DB.ip,
        "TCP",
        5432,
        False,
        id="pod-to-pod-needs-the-servers-ingress-too",
    ),
    pytest.param(
        [
            policy("web-out", podSelector={"matchLabels": {"role": "web"}}, policyTypes=["Egress"]),
            *ingress_to_db({}),
        ],
        WEB.ip,
        DB.ip,
        "TCP",
        5432,
        False,
        id="pod-to-pod-needs-the-clients-egress-too",
    ),
    pytest.param(
        ingress_to_db(), "127.0.0.1", DB.ip, "TCP", 5432, True, id="the-node-always-reaches-a-pod"
    ),
    pytest.param(
        [policy("deny-out", podSelector=DB_ONLY, policyTypes=["Egress"])],
        DB.ip,
        "127.0.0.1",
        "TCP",
        6443,
        True,
        id="a-pod-always-reaches-the-node",
    ),
    pytest.param(
        [policy("deny", podSelector=DB_ONLY, policyTypes=["Ingress", "Egress"])],
        DB.ip,
        DB.ip,
        "TCP",
        5432,
        True,
        id="a-pod-always-reaches-itself",
    ),
]


@pytest.mark.parametrize(
    ("policies", "source", "destination", "protocol", "port", "allowed"), CASES
)
def test_a_connection_is_allowed_as_upstream_says(
    policies: list[dict[str, Any]],
    source: str,
    destination: str,
    protocol: str,
    port: int,
    allowed: bool,
) -> None:
    compiled = compile_policies(policies, PODS, NAMESPACES)
    assert connection_allowed(compiled, source, destination, protocol, port) is allowed


def test_only_pods_selected_with_a_policy_type_are_isolated_for_it() -> None:
    compiled = compile_policies(ingress_to_db({"ports": [{"port": "pg"}]}), PODS, NAMESPACES)
    assert [p.ip for p in compiled.ingress] == [DB.ip]
    assert compiled.egress == ()
    assert compiled.ingress[0].allowed == {
        Allowance(AddressBlock("0.0.0.0/0"), PortMatch("TCP", 5432, 5432))
    }


def test_a_pod_without_an_address_is_left_out() -> None:
    pending = PolicyPod("app", "pending", "", {"role": "db"})
    compiled = compile_policies(ingress_to_db(), (pending, DB), NAMESPACES)
    assert [p.name for p in compiled.ingress] == [DB.name]


# ---- the seed's policies ----

SESSION = pod("127.0.2.10", "harmonyflow", {"http": (8080, "TCP")}, app="session-state-service")
SESSION_2 = pod("127.0.2.11", "harmonyflow", app="session-state-service")
UNLABELLED = pod("127.0.2.12", "harmonyflow", app="debug")
COREDNS = pod("127.0.3.10", "kube-system", **{"k8s-app": "kube-dns"})
INGRESS = pod("127.0.2.20", "ingress-nginx")
PROMETHEUS = pod("127.0.2.21", "monitoring")
LINKERD = pod("127.0.2.22", "linkerd")
STRANGER = pod("127.0.2.23", "elsewhere")
SEED_PODS = (SESSION, SESSION_2, UNLABELLED, COREDNS, INGRESS, PROMETHEUS, LINKERD, STRANGER)
SEED_NAMESPACES = tuple(
    PolicyNamespace(name, {"name": name}) for name in ("ingress-nginx", "monitoring", "linkerd")
)
RDS, REDIS, RABBITMQ, VPC_DB = "127.0.3.1", "127.0.3.2", "127.0.3.3", "10.0.1.5"


@cache
def seed(kustomization: str) -> CompiledPolicies:
    rendered = render(REPO_ROOT / "deploy" / kustomization)
    policies = [dict(o.body) for o in rendered.of_kind("NetworkPolicy")]
    assert len(policies) == 4
    return compile_policies(policies, SEED_PODS, SEED_NAMESPACES)


SEED_CASES = [
    pytest.param(SESSION.ip, RDS, "TCP", 5432, True, id="service-to-postgresql"),
    pytest.param(SESSION.ip, REDIS, "TCP", 6379, True, id="service-to-redis"),
    pytest.param(SESSION.ip, RABBITMQ, "TCP", 5672, True, id="service-to-rabbitmq"),
    pytest.param(SESSION.ip, RDS, "TCP", 22, False, id="service-to-another-port-denied"),
    pytest.param(SESSION.ip, REDIS, "UDP", 6379, False, id="service-udp-to-redis-denied"),
    pytest.param(SESSION.ip, COREDNS.ip, "UDP", 53, True, id="service-to-dns-udp"),
    pytest.param(SESSION.ip, COREDNS.ip, "TCP", 53, True, id="service-to-dns-tcp"),
    pytest.param(SESSION.ip, "127.0.3.11", "UDP", 53, False, id="dns-not-in-kube-system-denied"),
    pytest.param(SESSION.ip, SESSION_2.ip, "TCP", 8080, False, id="service-to-its-peer-denied"),
    pytest.param(SESSION.ip, LINKERD.ip, "TCP", 4140, True, id="service-to-linkerd-proxy"),
    pytest.param(SESSION.ip, LINKERD.ip, "TCP", 4143, False, id="service-to-linkerd-wrong-port"),
    pytest.param(INGRESS.ip, SESSION.ip, "TCP", 8080, True, id="ingress-to-service-http"),
    pytest.param(INGRESS.ip, SESSION.ip, "TCP", 8443, True, id="ingress-to-service-tls"),
    pytest.param(INGRESS.ip, SESSION.ip, "TCP", 9090, False, id="ingress-to-another-port-denied"),
    pytest.param(PROMETHEUS.ip, SESSION.ip, "TCP", 8080, True, id="monitoring-scrapes"),
    pytest.param(PROMETHEUS.ip, SESSION.ip, "TCP", 8443, False, id="monitoring-only-on-8080"),
    pytest.param(LINKERD.ip, SESSION.ip, "TCP", 4143, True, id="linkerd-to-service-proxy"),
    pytest.param(STRANGER.ip, SESSION.ip, "TCP", 8080, False, id="other-namespace-denied"),
    pytest.param(UNLABELLED.ip, RDS, "TCP", 5432, False, id="unlabelled-pod-to-postgresql-denied"),
    pytest.param(UNLABELLED.ip, COREDNS.ip, "UDP", 53, False, id="unlabelled-pod-to-dns-denied"),
    pytest.param(INGRESS.ip, UNLABELLED.ip, "TCP", 8080, False, id="ingress-to-unlabelled-denied"),
    pytest.param("127.0.0.1", SESSION.ip, "TCP", 8080, True, id="node-to-service"),
    pytest.param("127.0.0.1", UNLABELLED.ip, "TCP", 8080, True, id="node-to-unlabelled"),
    pytest.param(SESSION.ip, "127.0.0.1", "TCP", 6443, True, id="service-to-node"),
    pytest.param(STRANGER.ip, RDS, "TCP", 5432, True, id="unpoliced-namespace-is-open"),
    pytest.param(SESSION.ip, VPC_DB, "TCP", 5432, False, id="vpc-is-not-the-sandboxs"),
]


@pytest.mark.parametrize(("source", "destination", "protocol", "port", "allowed"), SEED_CASES)
def test_the_seeds_policies_in_the_sandbox_overlay(
    source: str, destination: str, protocol: str, port: int, allowed: bool
) -> None:
    compiled = seed("overlays/sandbox")
    assert connection_allowed(compiled, source, destination, protocol, port) is allowed


@pytest.mark.parametrize(
    ("destination", "allowed"),
    [
        pytest.param(VPC_DB, True, id="vpc-database"),
        pytest.param(RDS, False, id="loopback-database"),
    ],
)
def test_deploy_base_allows_the_vpc_not_loopback(destination: str, allowed: bool) -> None:
    compiled = seed("base")
    assert connection_allowed(compiled, SESSION.ip, destination, "TCP", 5432) is allowed


def test_every_harmonyflow_pod_is_isolated_both_ways_by_default_deny() -> None:
    compiled = seed("overlays/sandbox")
    isolated = [SESSION.ip, SESSION_2.ip, UNLABELLED.ip]
    assert [p.ip for p in compiled.ingress] == isolated
    assert [p.ip for p in compiled.egress] == isolated
