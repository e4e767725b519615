"""Drift of the live NetworkPolicies against deploy/base (resilience.suites.networkpolicy).

"Live" objects are deploy/'s own renderings as an API server returns them (metadata
filled in, upstream defaults applied), changed the way an operator's mistake would.
"""

from __future__ import annotations

import copy
import doctest
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import resilience.suites.networkpolicy
from resilience.manifests import RenderedManifests, render
from resilience.suites.networkpolicy import (
    IntendedNetworkPolicies,
    intended_network_policies,
    network_policy_drift,
)
from resilience.targets.live import LiveTarget
from tests.builders import REPO_ROOT
from tests.sandbox.harness import ApiHarness

DEPLOY = REPO_ROOT / "deploy"


@cache
def rendered(kustomization: str) -> RenderedManifests:
    return render(DEPLOY / kustomization)


def intended() -> IntendedNetworkPolicies:
    overlays = [rendered("overlays/sandbox"), rendered("overlays/staging")]
    return intended_network_policies(rendered("base"), overlays, "harmonyflow")


def as_served(kustomization: str) -> list[dict[str, Any]]:
    """The kustomization's NetworkPolicies as the API server gives them back."""
    served = []
    for obj in rendered(kustomization).of_kind("NetworkPolicy"):
        body: dict[str, Any] = copy.deepcopy(dict(obj.body))
        body["metadata"].update(uid="u-1", resourceVersion="7", namespace="harmonyflow")
        spec = body["spec"]
        spec.setdefault("policyTypes", ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    port.setdefault("protocol", "TCP")
        served.append(body)
    return served


Change = Callable[[dict[str, dict[str, Any]]], None]


def named(policies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in policies}


def remove_ingress_allow(policies: dict[str, dict[str, Any]]) -> None:
    del policies["allow-session-state-ingress"]


def add_allow_all(policies: dict[str, dict[str, Any]]) -> None:
    policies["allow-all"] = {
        "metadata": {"name": "allow-all"},
        "spec": {"podSelector": {}, "ingress": [{}]},
    }


def widen_egress_cidr(policies: dict[str, dict[str, Any]]) -> None:
    policies["allow-session-state-egress"]["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"] = (
        "0.0.0.0/0"
    )


def move_tls_port(policies: dict[str, dict[str, Any]]) -> None:
    policies["allow-session-state-ingress"]["spec"]["ingress"][0]["ports"][1]["port"] = 9443


def drop_egress_isolation(policies: dict[str, dict[str, Any]]) -> None:
    policies["default-deny"]["spec"]["policyTypes"] = ["Ingress"]


def empty_lists_and_selectors(policies: dict[str, dict[str, Any]]) -> None:
    """What a client may send for "nothing": empty lists, null, {} -- the same policy."""
    deny = policies["default-deny"]["spec"]
    deny.update(ingress=[], egress=None, podSelector={"matchLabels": {}})


def nothing(policies: dict[str, dict[str, Any]]) -> None:
    return None


CASES = [
    pytest.param("overlays/sandbox", nothing, [], id="sandbox-overlay-as-applied"),
    pytest.param("overlays/staging", nothing, [], id="staging-overlay-as-applied"),
    pytest.param("base", nothing, [], id="base-as-applied"),
    pytest.param("overlays/sandbox", empty_lists_and_selectors, [], id="empty-is-absent"),
    pytest.param(
        "overlays/sandbox",
        remove_ingress_allow,
        [
            "NetworkPolicy harmonyflow/allow-session-state-ingress: (the object) is absent "
            "on the cluster, deploy/base says present"
        ],
        id="allow-rule-removed",
    ),
    pytest.param(
        "overlays/sandbox",
        add_allow_all,
        [
            "NetworkPolicy harmonyflow/allow-all: (the object) is present on the cluster, "
            "deploy/base says absent"
        ],
        id="extra-policy",
    ),
    pytest.param(
        "overlays/sandbox",
        widen_egress_cidr,
        [
            "NetworkPolicy harmonyflow/allow-session-state-egress: "
            "spec.egress[1].to[0].ipBlock.cidr is 0.0.0.0/0 on the cluster, "
            "deploy/base says 10.0.0.0/16 (an overlay may set 127.0.0.0/8)"
        ],
        id="egress-cidr-widened",
    ),
    pytest.param(
        "overlays/sandbox",
        move_tls_port,
        [
            "NetworkPolicy harmonyflow/allow-session-state-ingress: "
            "spec.ingress[0].ports[port=8443].port is absent on the cluster, deploy/base says 8443",
            "NetworkPolicy harmonyflow/allow-session-state-ingress: "
            "spec.ingress[0].ports[port=8443].protocol is absent on the cluster, "
            "deploy/base says TCP",
            "NetworkPolicy harmonyflow/allow-session-state-ingress: "
            "spec.ingress[0].ports[port=9443].port is 9443 on the cluster, deploy/base says absent",
            "NetworkPolicy harmonyflow/allow-session-state-ingress: "
            "spec.ingress[0].ports[port=9443].protocol is TCP on the cluster, "
            "deploy/base says absent",
        ],
        id="port-moved",
    ),
    pytest.param(
        "overlays/sandbox",
        drop_egress_isolation,
        [
            "NetworkPolicy harmonyflow/default-deny: spec.policyTypes is [Ingress] on the "
            "cluster, deploy/base says [Egress, Ingress]"
        ],
        id="default-deny-without-egress",
    ),
]


@pytest.mark.parametrize(("kustomization", "change", "messages"), CASES)
def test_network_policy_drift_names_the_policy_and_the_difference(
    kustomization: str, change: Change, messages: list[str]
) -> None:
    live = named(as_served(kustomization))
    change(live)
    drift = network_policy_drift(list(live.values()), intended())
    assert [d.message for d in drift] == messages


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(resilience.suites.networkpolicy).failed == 0


def test_policies_read_back_from_an_api_server_are_no_drift_until_one_is_deleted(
    tmp_path: Path,
) -> None:
    """The live path end to end: deploy/overlays/sandbox's policies created through the
    Kubernetes client, read back by `LiveTarget.read_network_policies`, then one deleted."""
    harness = ApiHarness(tmp_path)
    try:
        api = harness.api_client()
        networking = client.NetworkingV1Api(api)
        for obj in rendered("overlays/sandbox").of_kind("NetworkPolicy"):
            networking.create_namespaced_network_policy("harmonyflow", dict(obj.body))
        target = LiveTarget(
            api=api,
            kubeconfig=harness.kubeconfig,
            context="test",
            server=harness.url,
            namespace="harmonyflow",
            deployment="session-state-service",
            service="session-state-service",
            base_url="http://127.0.0.1:9",
        )
        assert network_policy_drift(target.read_network_policies(), intended()) == ()
        networking.delete_namespaced_network_policy("allow-linkerd", "harmonyflow")
        [drift] = network_policy_drift(target.read_network_policies(), intended())
        assert drift.object == "NetworkPolicy harmonyflow/allow-linkerd"
    finally:
        harness.close()
