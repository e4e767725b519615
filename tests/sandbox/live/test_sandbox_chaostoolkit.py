"""chaostoolkit-kubernetes, unchanged, against the sandbox."""

from __future__ import annotations

import pytest
from chaosk8s.deployment.probes import deployment_available_and_healthy
from chaosk8s.node.actions import drain_nodes, uncordon_node
from chaosk8s.pod.actions import terminate_pods
from chaosk8s.pod.probes import pods_in_phase, read_pod_logs
from kubernetes import client
from kubernetes.config import kube_config

from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for


@pytest.fixture
def namespace(sandbox: SandboxHarness, monkeypatch: pytest.MonkeyPatch) -> str:
    # `chaos run` gets KUBECONFIG from the shell before anything imports the client;
    # in this process the client has read its default location already.
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(sandbox.kubeconfig))
    namespace = sandbox.new_namespace()
    client.AppsV1Api(sandbox.api_client()).create_namespaced_deployment(
        namespace, app_deployment("web", 3)
    )
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s")
    return namespace


def test_probes_and_terminate_pods(sandbox: SandboxHarness, namespace: str) -> None:
    assert deployment_available_and_healthy("web", ns=namespace) is True
    assert pods_in_phase("app=web", "Running", ns=namespace) is True
    logs = read_pod_logs(label_selector="app=web", ns=namespace)
    assert len(logs) == 3 and all("GET /health" in text for text in logs.values())
    killed = terminate_pods(label_selector="app=web", ns=namespace, qty=1, grace_period=0)
    assert len(killed) == 1
    core = client.CoreV1Api(sandbox.api_client())
    wait_for(
        lambda: (
            len(
                [
                    p
                    for p in core.list_namespaced_pod(namespace).items
                    if p.metadata.name not in killed
                ]
            )
            == 3
        ),
        30,
        "a replacement pod",
    )
    wait_for(
        lambda: deployment_available_and_healthy("web", ns=namespace, raise_on_unavailable=False),
        60,
        "the deployment to be healthy again",
    )


def test_drain_and_uncordon(sandbox: SandboxHarness, namespace: str) -> None:
    core = client.CoreV1Api(sandbox.api_client())
    node = core.list_namespaced_pod(namespace).items[0].spec.node_name
    try:
        drained = drain_nodes(name=node, timeout=120)
        assert drained == [node]
        assert core.read_node(node).spec.unschedulable is True
        assert not [
            p
            for p in core.list_namespaced_pod(namespace).items
            if p.spec.node_name == node and not p.metadata.deletion_timestamp
        ]
    finally:
        uncordon_node(name=node)
    assert not core.read_node(node).spec.unschedulable
