"""The seed's NetworkPolicies, enforced on real pods: who reaches whom, and what one rule allows.

Testapp pods play the seed's parties: the service (app=session-state-service) and an
unlabelled pod in the policies' namespace, an ingress pod in a namespace labelled
name=ingress-nginx, a Prometheus pod in one labelled name=monitoring, and a stranger
in an unlabelled namespace. Servers on 127.0.9.x stand in for PostgreSQL, Redis and
RabbitMQ on their ports, and listen on one more port no policy names. Each pod reports
whether a TCP connect succeeds or is dropped (`/probe?proto=connect`), and the node
(this process) connects too. The policies are deploy/overlays/sandbox's, as
kustomize renders them.

The whole reachability matrix is asserted at once: with every policy; without
allow-session-state-ingress, where exactly the connections it allowed are dropped
(from the ingress, and the monitoring scrape it allows too); and with it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socketserver
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from resilience.manifests import render
from sandbox.kube.kubelet.cgroups import sandbox_id
from tests.builders import REPO_ROOT
from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for
from tests.sandbox.live.pod_probe import CONNECTED, DROPPED, connect_outcome

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables") is None,
    reason="the pod network needs root, nft and iptables",
)
DEPENDENCY_PORTS = {"postgresql": 5432, "redis": 6379, "rabbitmq": 5672}
DEPENDENCY_HOSTS = tuple(f"127.0.9.{i}" for i in range(200, 240))
INGRESS_POLICY = "allow-session-state-ingress"
# pod -> (namespace role, app label); the roles' namespaces are labelled as the seed expects
PARTIES = {
    "service": ("app", "session-state-service"),
    "debug": ("app", "debug"),
    "ingress": ("ingress", "ingress-controller"),
    "prometheus": ("monitoring", "prometheus"),
    "stranger": ("other", "stranger"),
}
NAMESPACE_LABELS: dict[str, dict[str, str]] = {
    "app": {},
    "ingress": {"name": "ingress-nginx"},
    "monitoring": {"name": "monitoring"},
    "other": {},
}


class _Accept(socketserver.BaseRequestHandler):
    def handle(self) -> None:  # the connect is what counts; close at once
        pass


@dataclass(frozen=True)
class Dependencies:
    """Listeners standing in for the databases: `ports` by name, plus `other_port`."""

    host: str
    ports: dict[str, int]
    other_port: int


@pytest.fixture(scope="module")
def dependencies() -> Iterator[Dependencies]:
    """The dependencies' ports on the first 127.0.9.x where all of them are free, and an
    ephemeral port beside them that no policy allows."""
    servers: list[socketserver.ThreadingTCPServer] = []
    for host in DEPENDENCY_HOSTS:
        try:
            for port in (*DEPENDENCY_PORTS.values(), 0):
                servers.append(socketserver.ThreadingTCPServer((host, port), _Accept))
            break
        except OSError:
            for server in servers:
                server.server_close()
            servers = []
    assert servers, f"no 127.0.9.x in {DEPENDENCY_HOSTS[0]}.. with {DEPENDENCY_PORTS} free"
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Dependencies(host, dict(DEPENDENCY_PORTS), servers[-1].server_address[1])
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@dataclass(frozen=True)
class Cluster:
    harness: SandboxHarness
    app_namespace: str
    ips: dict[str, str]  # party -> pod IP


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("netpolicy")
    harness = SandboxHarness(directory)
    table = f"hfnet_{sandbox_id(directory)}"
    try:
        api = harness.api_client()
        suffix = uuid.uuid4().hex[:6]
        namespaces = {role: f"np-{role}-{suffix}" for role in NAMESPACE_LABELS}
        for role, name in namespaces.items():
            metadata = {"name": name, "labels": NAMESPACE_LABELS[role]}
            client.CoreV1Api(api).create_namespace({"metadata": metadata})
        for role, app in PARTIES.values():
            client.AppsV1Api(api).create_namespaced_deployment(
                namespaces[role], app_deployment(app, replicas=1)
            )
        ips = wait_for(lambda: ready_pod_ips(harness, namespaces), 60, "every party's pod ready")
        for policy in seed_policies():
            create_policy(harness, namespaces["app"], policy)
        yield Cluster(harness, namespaces["app"], ips)
    finally:
        harness.close()
    listed = subprocess.run(
        ["nft", "list", "table", "inet", table], check=False, capture_output=True
    )
    assert listed.returncode != 0, "the pod network's table outlived the sandbox"


def ready_pod_ips(harness: SandboxHarness, namespaces: dict[str, str]) -> dict[str, str]:
    core = client.CoreV1Api(harness.api_client())
    ips = {}
    for party, (role, app) in PARTIES.items():
        for pod in core.list_namespaced_pod(namespaces[role], label_selector=f"app={app}").items:
            conditions = pod.status.conditions or []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                ips[party] = str(pod.status.pod_ip)
    return ips if len(ips) == len(PARTIES) else {}


def seed_policies() -> list[dict[str, Any]]:
    """deploy/overlays/sandbox's NetworkPolicies, as kustomize renders them."""
    rendered = render(REPO_ROOT / "deploy" / "overlays" / "sandbox")
    policies = [dict(o.body) for o in rendered.of_kind("NetworkPolicy")]
    assert INGRESS_POLICY in {p["metadata"]["name"] for p in policies}
    return policies


def create_policy(harness: SandboxHarness, namespace: str, policy: dict[str, Any]) -> None:
    body = {**policy, "metadata": {"name": policy["metadata"]["name"]}}
    client.NetworkingV1Api(harness.api_client()).create_namespaced_network_policy(namespace, body)


# ---- the matrix ----

Connection = tuple[str, str, str]  # (source party or "node", destination, port name)


def connections(deps: Dependencies) -> list[Connection]:
    to_deps = [(src, "deps", name) for src in ("service", "debug") for name in DEPENDENCY_PORTS]
    return [
        ("ingress", "service", "8080"),
        ("ingress", "service", "8443"),
        ("prometheus", "service", "8080"),
        ("prometheus", "service", "8443"),
        ("stranger", "service", "8080"),
        ("debug", "service", "8080"),
        ("ingress", "debug", "8080"),
        *to_deps,
        ("service", "deps", "other"),
        ("stranger", "deps", "postgresql"),
        ("node", "service", "8080"),
        ("node", "debug", "8080"),
    ]


WITH_EVERY_POLICY: dict[Connection, str] = {
    ("ingress", "service", "8080"): CONNECTED,  # allow-session-state-ingress
    ("ingress", "service", "8443"): CONNECTED,  # allow-session-state-ingress
    ("prometheus", "service", "8080"): CONNECTED,  # allow-session-state-ingress
    ("prometheus", "service", "8443"): DROPPED,  # monitoring scrapes 8080 only
    ("stranger", "service", "8080"): DROPPED,  # default-deny
    ("debug", "service", "8080"): DROPPED,  # default-deny, both ways
    ("ingress", "debug", "8080"): DROPPED,  # the ingress rule selects the service only
    ("service", "deps", "postgresql"): CONNECTED,  # allow-session-state-egress
    ("service", "deps", "redis"): CONNECTED,
    ("service", "deps", "rabbitmq"): CONNECTED,
    ("debug", "deps", "postgresql"): DROPPED,  # default-deny
    ("debug", "deps", "redis"): DROPPED,
    ("debug", "deps", "rabbitmq"): DROPPED,
    ("service", "deps", "other"): DROPPED,  # egress names three ports
    ("stranger", "deps", "postgresql"): CONNECTED,  # no policy in its namespace
    ("node", "service", "8080"): CONNECTED,  # the node, always
    ("node", "debug", "8080"): CONNECTED,
}
ALLOWED_BY_THE_INGRESS_POLICY = (
    ("ingress", "service", "8080"),
    ("ingress", "service", "8443"),
    ("prometheus", "service", "8080"),
)


def outcome(cluster: Cluster, deps: Dependencies, connection: Connection) -> str:
    source, destination, port_name = connection
    if destination == "deps":
        host = deps.host
        port = deps.other_port if port_name == "other" else deps.ports[port_name]
    else:
        host, port = cluster.ips[destination], int(port_name)
    return connect_outcome(None if source == "node" else cluster.ips[source], host, port)


def matrix(cluster: Cluster, deps: Dependencies) -> dict[Connection, str]:
    """Every connection's outcome, tried side by side (a dropped one waits 1 s)."""
    wanted = connections(deps)
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        found = pool.map(lambda c: outcome(cluster, deps, c), wanted)
        return dict(zip(wanted, found, strict=True))


def becomes(cluster: Cluster, deps: Dependencies, connection: Connection, wanted: str) -> None:
    """Wait (bounded) until the pod network applied a policy change that decides `connection`."""
    wait_for(
        lambda: outcome(cluster, deps, connection) == wanted,
        20,
        f"{connection} to end {wanted}",
        interval=0.1,
    )


@contextlib.contextmanager
def without_policy(cluster: Cluster, name: str) -> Iterator[None]:
    """The policy deleted, then created again as it was."""
    networking = client.NetworkingV1Api(cluster.harness.api_client())
    [policy] = [p for p in seed_policies() if p["metadata"]["name"] == name]
    networking.delete_namespaced_network_policy(name, cluster.app_namespace)
    try:
        yield
    finally:
        create_policy(cluster.harness, cluster.app_namespace, policy)


def test_the_seeds_policies_allow_exactly_what_they_say_and_one_rule_exactly_its_traffic(
    cluster: Cluster, dependencies: Dependencies
) -> None:
    becomes(cluster, dependencies, ("stranger", "service", "8080"), DROPPED)  # in force
    assert matrix(cluster, dependencies) == WITH_EVERY_POLICY

    without_ingress_rule = {
        **WITH_EVERY_POLICY,
        **dict.fromkeys(ALLOWED_BY_THE_INGRESS_POLICY, DROPPED),
    }
    with without_policy(cluster, INGRESS_POLICY):
        becomes(cluster, dependencies, ("ingress", "service", "8080"), DROPPED)
        assert matrix(cluster, dependencies) == without_ingress_rule

    becomes(cluster, dependencies, ("ingress", "service", "8080"), CONNECTED)
    assert matrix(cluster, dependencies) == WITH_EVERY_POLICY
