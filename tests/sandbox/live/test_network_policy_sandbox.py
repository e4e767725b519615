"""The seed's NetworkPolicies on the whole sandbox: the ingress reaches the service because
allow-session-state-ingress says so, and only then.

nginx connects to the pods from the ingress-nginx controller pod's address
(`proxy_bind`, sandbox/cni/infrapeers.py), so deleting the policy drops its new
connections to the pods: requests through the ingress end in 504 once nginx's upstream
connect times out. Connections already established survive a policy change, as
conntrack keeps them on a real node, and nginx keeps idle ones to the pods; so the
test shortens the Ingress's `proxy-connect-timeout`, which reloads nginx, whose new
workers start without them (and time out sooner). The service's own traffic is not
the policy's: its pods stay Ready meanwhile (readiness asks PostgreSQL and Redis, and
the kubelet probes from the node). Creating the policy again brings the ingress back.

Starts the fixed-address sandbox (`resilience sandbox up`): run under
`flock /tmp/hf-sandbox.lock`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.manifests import render
from tests.builders import REPO_ROOT
from tests.live import DEPLOYMENT, NAMESPACE, LiveSandbox
from tests.sandbox.cluster_harness import wait_for
from tests.sandbox.live.traffic import request

pytestmark = [
    pytest.mark.full_sandbox,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables") is None,
        reason="the pod network needs root, nft and iptables",
    ),
]

POLICY = "allow-session-state-ingress"
INGRESS = "session-state-service"
CONNECT_TIMEOUT_ANNOTATION = "nginx.ingress.kubernetes.io/proxy-connect-timeout"
# one ingress sync (about 3.3 s) and a reload, then 3 tries of a 1 s connect: well within
CHANGE_SECONDS = 30


def overlay_policy(name: str) -> dict[str, Any]:
    """The NetworkPolicy as deploy/overlays/sandbox renders it."""
    rendered = render(REPO_ROOT / "deploy" / "overlays" / "sandbox")
    [policy] = [dict(o.body) for o in rendered.of_kind("NetworkPolicy") if o.name == name]
    return {**policy, "metadata": {"name": name, "namespace": NAMESPACE}}


def through_ingress(live: LiveSandbox) -> int:
    """The status of GET /health/ready through the ingress (0: no answer in time)."""
    try:
        status, _ = request(live.ingress, "GET", "/health/ready", timeout=10)
    except OSError:
        return 0
    return status


def all_pods_ready(live: LiveSandbox) -> bool:
    deployment = client.AppsV1Api(live.api).read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    return (deployment.status.ready_replicas or 0) == deployment.spec.replicas


def set_connect_timeout(live: LiveSandbox, seconds: int | None) -> None:
    """The Ingress's proxy-connect-timeout annotation (None: removed, the default 5 s)."""
    value = None if seconds is None else str(seconds)
    client.NetworkingV1Api(live.api).patch_namespaced_ingress(
        INGRESS, NAMESPACE, {"metadata": {"annotations": {CONNECT_TIMEOUT_ANNOTATION: value}}}
    )


@pytest.fixture
def policy_restored(live: LiveSandbox) -> Iterator[None]:
    """Whatever happens: the policy back as the overlay has it, the annotation gone."""
    yield
    networking = client.NetworkingV1Api(live.api)
    try:
        networking.read_namespaced_network_policy(POLICY, NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise
        networking.create_namespaced_network_policy(NAMESPACE, overlay_policy(POLICY))
    set_connect_timeout(live, None)


def test_the_ingress_reaches_the_service_only_while_its_policy_allows_it(
    live: LiveSandbox, policy_restored: None
) -> None:
    networking = client.NetworkingV1Api(live.api)
    networking.read_namespaced_network_policy(POLICY, NAMESPACE)  # applied with the overlay
    assert through_ingress(live) == 200

    networking.delete_namespaced_network_policy(POLICY, NAMESPACE)
    set_connect_timeout(live, 1)  # nginx reloads: no pooled connection to the pods is left
    wait_for(lambda: through_ingress(live) == 504, CHANGE_SECONDS, "the ingress to time out")
    assert [through_ingress(live) for _ in range(3)] == [504, 504, 504]
    assert all_pods_ready(live), "the service lost its dependencies or the node's probes"

    networking.create_namespaced_network_policy(NAMESPACE, overlay_policy(POLICY))
    wait_for(lambda: through_ingress(live) == 200, CHANGE_SECONDS, "the ingress to answer again")
    assert [through_ingress(live) for _ in range(3)] == [200, 200, 200]

    set_connect_timeout(live, None)
    wait_for(lambda: through_ingress(live) == 200, CHANGE_SECONDS, "the ingress after its reload")
