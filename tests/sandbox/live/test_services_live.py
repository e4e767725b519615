"""Services, live: a pod finds a Service by name and reaches every endpoint through its ClusterIP.

What CoreDNS and kube-proxy give a pod on a real cluster (the Locust workers dial
`locust-master` so): the name, through the pod's resolv.conf and search list, is the
ClusterIP (`sandbox.infra.servicedns`); a connection to it lands on one of the
Service's ready endpoints, at random (`sandbox.cni.services`), the pod's own one too;
a Service port without a ready endpoint refuses at once. Runs on a control plane of
its own (the `rest` part), as root with nft.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from kubernetes import client

from sandbox.kube.kubelet.cgroups import sandbox_id
from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for
from tests.sandbox.live.pod_probe import probe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables") is None,
    reason="the pod network needs root, nft and iptables",
)
CONNECTS = 40  # both of two endpoints are chosen in 40 random picks but once in 5e11


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    """A ClusterIP Service on port 80 whose targetPort is the pods' port by name, as
    deploy/locust's locust-master is."""
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "web", "port": 80, "targetPort": "http"}],
        },
    }


@pytest.fixture(scope="module")
def services_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SandboxHarness, str]]:
    directory: Path = tmp_path_factory.mktemp("services")
    harness = SandboxHarness(directory)
    try:
        namespace = harness.new_namespace()
        api = harness.api_client()
        client.AppsV1Api(api).create_namespaced_deployment(
            namespace, app_deployment("web", replicas=2)
        )
        core = client.CoreV1Api(api)
        core.create_namespaced_service(namespace, service("web", {"app": "web"}))
        core.create_namespaced_service(namespace, service("nobody", {"app": "nobody"}))
        wait_for(lambda: len(ready_pods(harness, namespace)) == 2, 60, "two ready web pods")
        yield harness, namespace
    finally:
        harness.close()
    listed = subprocess.run(
        ["nft", "list", "table", "inet", f"hfnet_{sandbox_id(directory)}"],
        check=False,
        capture_output=True,
    )
    assert listed.returncode != 0, "the pod network's table outlived the sandbox"


def ready_pods(harness: SandboxHarness, namespace: str) -> dict[str, str]:
    """Ready pods' names by pod IP."""
    pods = client.CoreV1Api(harness.api_client()).list_namespaced_pod(namespace).items
    return {
        str(pod.status.pod_ip): str(pod.metadata.name)
        for pod in pods
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    }


def cluster_ip(harness: SandboxHarness, namespace: str, name: str) -> str:
    found = client.CoreV1Api(harness.api_client()).read_namespaced_service(name, namespace)
    return str(found.spec.cluster_ip)


def ping_from_node(address: str) -> str:
    """The name of the pod that answered `/api/v1/ping` on `address`:80, from this process."""
    with urllib.request.urlopen(f"http://{address}/api/v1/ping", timeout=5) as answer:
        return str(json.loads(answer.read())["pod"])


def test_the_cluster_dns_answers_a_services_name_with_its_cluster_ip(
    services_cluster: tuple[SandboxHarness, str],
) -> None:
    harness, namespace = services_cluster
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [harness.sandbox.dns.endpoint.host]
    resolver.port = harness.sandbox.dns.endpoint.port
    answer = resolver.resolve(f"web.{namespace}.svc.cluster.local", "A", lifetime=5)
    assert [record.address for record in answer] == [cluster_ip(harness, namespace, "web")]
    assert answer.rrset is not None and answer.rrset.ttl == 5


def test_a_pod_reaches_every_endpoint_of_a_service_by_its_short_name_its_own_too(
    services_cluster: tuple[SandboxHarness, str],
) -> None:
    harness, namespace = services_cluster
    pods = ready_pods(harness, namespace)
    address = cluster_ip(harness, namespace, "web")
    source = sorted(pods)[0]

    def ask() -> dict[str, Any]:
        return probe(source, proto="http", host="web", port=80, path="/api/v1/ping", timeout=2)

    first = wait_for(lambda: ask().get("status") == 200, 30, "the Service to answer the pod")
    assert first
    answers = [ask() for _ in range(CONNECTS)]
    assert {a["address"] for a in answers} == {address}  # the short name, through the search list
    seen = Counter(a["body"]["pod"] for a in answers)
    assert set(seen) == set(pods.values()), seen  # pods[source] among them: the hairpin works


def test_the_node_reaches_every_endpoint_through_the_cluster_ip(
    services_cluster: tuple[SandboxHarness, str],
) -> None:
    harness, namespace = services_cluster
    pods = ready_pods(harness, namespace)
    address = cluster_ip(harness, namespace, "web")
    wait_for(lambda: ping_from_node(address), 30, "the Service to answer the node")
    seen = Counter(ping_from_node(address) for _ in range(CONNECTS))
    assert set(seen) == set(pods.values()), seen


def test_a_service_without_a_ready_endpoint_refuses_at_once(
    services_cluster: tuple[SandboxHarness, str],
) -> None:
    """From a pod, from the node; and once the last endpoint of a served Service goes, it
    refuses too, while its name still resolves (a ClusterIP Service's name never depends
    on its endpoints). A server listens on each ClusterIP's port: only the rejection
    keeps a connection from reaching it."""
    harness, namespace = services_cluster
    source = sorted(ready_pods(harness, namespace))[0]
    nobody, address = (cluster_ip(harness, namespace, name) for name in ("nobody", "web"))
    with contextlib.ExitStack() as stack:
        for listening in (nobody, address):
            stack.enter_context(socket.create_server((listening, 80)))
        started = time.monotonic()
        refused = probe(source, proto="connect", host="nobody", port=80, timeout=5)
        assert refused.get("error") == "ConnectionRefusedError", refused
        assert time.monotonic() - started < 2
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((nobody, 80), timeout=5)

        client.AppsV1Api(harness.api_client()).patch_namespaced_deployment_scale(
            "web", namespace, {"spec": {"replicas": 0}}
        )
        wait_for(lambda: outcome(address) == "ConnectionRefusedError", 60, "web to refuse")
    record = harness.on_loop(
        lambda: harness.sandbox.dns.lookup(f"web.{namespace}.svc.cluster.local")
    )
    assert record is not None and record.addresses == (address,)


def outcome(address: str) -> str:
    """`connected`, or the name of the error a connect from this process to `address`:80
    ended in."""
    try:
        with socket.create_connection((address, 80), timeout=5):
            return "connected"
    except OSError as error:
        return type(error).__name__
