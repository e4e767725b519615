"""Real kubectl against a whole sandbox: get, describe, logs, top, scale, rollout, drain."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter

from kubernetes import client

from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for


def deploy(sandbox: SandboxHarness, namespace: str, name: str = "web", replicas: int = 3) -> None:
    client.AppsV1Api(sandbox.api_client()).create_namespaced_deployment(
        namespace, app_deployment(name, replicas)
    )
    sandbox.kubectl("rollout", "status", f"deploy/{name}", "-n", namespace, "--timeout=120s")


def test_six_nodes_in_three_zones(sandbox: SandboxHarness) -> None:
    out = sandbox.kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone").stdout
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    assert len(rows) == 6
    assert all(row[1] == "Ready" for row in rows), out
    assert Counter(row[-1] for row in rows) == {"us-west-2a": 2, "us-west-2b": 2, "us-west-2c": 2}


def test_get_describe_logs_top(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    deploy(sandbox, namespace)
    pods = sandbox.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    rows = [line.split() for line in pods.strip().splitlines()[1:]]
    assert len(rows) == 3 and all(row[1] == "1/1" and row[2] == "Running" for row in rows), pods
    assert all(re.fullmatch(r"127\.0\.2\.\d+", row[5]) for row in rows), pods
    described = sandbox.kubectl("describe", "deploy/web", "-n", namespace).stdout
    assert "NewReplicaSet:" in described and "(3/3 replicas created)" in described, described
    assert "ScalingReplicaSet" in described
    logs = wait_for(
        lambda: sandbox.kubectl("logs", "deploy/web", "-n", namespace, "--tail=5").stdout.strip(),
        30,
        "log lines from the pod",
    )
    assert "GET /health" in logs

    def top_rows() -> str:
        """Every pod's row: each pod has a sample once its kubelet sampled it (CI once
        listed one of three when the first sample was in)."""
        out = sandbox.kubectl("top", "pods", "-n", namespace, check=False).stdout.strip()
        return out if len(out.splitlines()) == 4 else ""

    top = wait_for(top_rows, 60, "kubectl top pods rows for the three pods")
    assert len(top.splitlines()) == 4 and "CPU(cores)" in top, top


def test_scale_and_rollout_restart_status_undo(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    deploy(sandbox, namespace)
    sandbox.kubectl("scale", "deploy/web", "--replicas=4", "-n", namespace)
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s")
    apps = client.AppsV1Api(sandbox.api_client())
    assert apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 4
    sandbox.kubectl("rollout", "restart", "deploy/web", "-n", namespace)
    status = sandbox.kubectl(
        "rollout", "status", "deploy/web", "-n", namespace, "--timeout=180s"
    ).stdout
    assert 'deployment "web" successfully rolled out' in status
    sets = apps.list_namespaced_replica_set(namespace).items
    assert len(sets) == 2
    undone = sandbox.kubectl("rollout", "undo", "deploy/web", "-n", namespace).stdout
    assert "rolled back" in undone
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=180s")
    revisions = sorted(
        int(rs.metadata.annotations["deployment.kubernetes.io/revision"])
        for rs in apps.list_namespaced_replica_set(namespace).items
    )
    assert revisions == [2, 3]


def test_drain_waits_on_the_pdb_retries_then_completes_and_uncordon(
    sandbox: SandboxHarness,
) -> None:
    namespace = sandbox.new_namespace()
    deploy(sandbox, namespace)
    policy = client.PolicyV1Api(sandbox.api_client())
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    core = client.CoreV1Api(sandbox.api_client())
    node = core.list_namespaced_pod(namespace).items[0].spec.node_name
    drain = subprocess.Popen(
        ["kubectl", "drain", node, "--ignore-daemonsets", "--timeout=180s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=sandbox.env(),
    )
    try:
        wait_for(lambda: core.read_node(node).spec.unschedulable, 30, "the node to be cordoned")
        time.sleep(7)  # long enough for a 429 and kubectl's 5 s retry
        policy.patch_namespaced_pod_disruption_budget(
            "web", namespace, {"spec": {"minAvailable": 2}}
        )
        output, _ = drain.communicate(timeout=180)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait(10)
    assert drain.returncode == 0, output
    assert "will retry after 5s" in output and "Cannot evict pod" in output, output
    assert f"node/{node} drained" in output, output
    sandbox.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s")
    pods = core.list_namespaced_pod(namespace).items
    assert all(p.spec.node_name != node for p in pods if not p.metadata.deletion_timestamp)
    sandbox.kubectl("uncordon", node)
    assert not core.read_node(node).spec.unschedulable


def test_deleting_a_namespace_removes_its_content_then_itself(sandbox: SandboxHarness) -> None:
    namespace = sandbox.new_namespace()
    deploy(sandbox, namespace, replicas=1)
    deleted = sandbox.kubectl("delete", "namespace", namespace, "--timeout=120s").stdout
    assert f'namespace "{namespace}" deleted' in deleted
    core = client.CoreV1Api(sandbox.api_client())
    assert namespace not in [ns.metadata.name for ns in core.list_namespace().items]
    assert not sandbox.on_loop(lambda: sandbox.store.list("pods", namespace))
