"""The Node object, its heartbeats and Lease, and power off / power on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sandbox.kube.kubelet.node import LEASE_NAMESPACE
from tests.sandbox.kubelet.kubelet_harness import (
    NAMESPACE,
    Cluster,
    container,
    http_probe,
    node_config,
    process_state,
    run_cluster,
    wait_for,
)

LEASES = "coordination.k8s.io/leases"


def renew_time(cluster: Cluster) -> str:
    lease = cluster.store.get(LEASES, LEASE_NAMESPACE, cluster.kubelet.config.name)
    return str(lease["spec"]["renewTime"])


def heartbeat(cluster: Cluster) -> str:
    node = cluster.store.get("nodes", "", cluster.kubelet.config.name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return str(ready["lastHeartbeatTime"])


def alive(pid: int) -> bool:
    return process_state(pid) not in ("", "Z")


def test_node_is_registered_as_an_eks_node(tmp_path: Path) -> None:
    config = node_config(1)

    async def body(cluster: Cluster) -> None:
        node = cluster.store.get("nodes", "", config.name)
        labels = node["metadata"]["labels"]
        assert {
            key: labels[key]
            for key in (
                "kubernetes.io/hostname",
                "kubernetes.io/os",
                "kubernetes.io/arch",
                "topology.kubernetes.io/zone",
                "topology.kubernetes.io/region",
                "node.kubernetes.io/instance-type",
            )
        } == {
            "kubernetes.io/hostname": config.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": "us-west-2a",
            "topology.kubernetes.io/region": "us-west-2",
            "node.kubernetes.io/instance-type": "m5.xlarge",
        }
        assert "eks.amazonaws.com/nodegroup" in labels
        assert node["spec"]["providerID"] == f"aws:///us-west-2a/{config.instance_id}"
        status = node["status"]
        assert status["capacity"]["cpu"] == status["allocatable"]["cpu"] == "4"
        assert status["capacity"]["memory"] == f"{16 * 1024 * 1024}Ki"
        assert status["capacity"]["pods"] == "30"
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "MemoryPressure": "False",
            "DiskPressure": "False",
            "PIDPressure": "False",
            "Ready": "True",
        }
        assert {a["type"]: a["address"] for a in status["addresses"]}["InternalIP"] == "127.0.1.1"
        assert status["nodeInfo"]["kubeletVersion"].startswith("v1.32.4-eks")
        lease = cluster.store.get(LEASES, LEASE_NAMESPACE, config.name)
        assert lease["spec"]["holderIdentity"] == config.name
        assert lease["spec"]["leaseDurationSeconds"] == 4
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first_renew, first_beat = renew_time(cluster), heartbeat(cluster)
        await wait_for(lambda: renew_time(cluster) != first_renew, 5, "a lease renewal")
        await wait_for(lambda: heartbeat(cluster) != first_beat, 5, "a heartbeat")

    run_cluster(tmp_path, body)


def test_power_off_kills_at_once_and_power_on_restarts_the_pods(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("web", container(readinessProbe=http_probe("/health/ready")))
        await wait_for(lambda: cluster.container_status("web").get("ready"), 20, "web ready")
        (pid,) = cluster.pids()
        cluster.kubelet.power_off()
        await wait_for(lambda: not alive(pid), 1, "the process SIGKILLed at once")
        frozen_renew, frozen_beat = renew_time(cluster), heartbeat(cluster)
        await asyncio.sleep(2.5)  # lease renewals every 1 s and heartbeats every 1 s stop
        assert (renew_time(cluster), heartbeat(cluster)) == (frozen_renew, frozen_beat)
        pod = cluster.pod("web") or {}
        assert pod["status"]["phase"] == "Running"  # API objects left as they were
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        cluster.kubelet.power_on()
        status = await wait_for(
            lambda: (
                cluster.container_status("web").get("restartCount")
                and cluster.container_status("web").get("ready")
                and cluster.container_status("web")
            ),
            20,
            "web restarted, ready",
        )
        assert status["restartCount"] == 1
        assert (
            status["lastState"]["terminated"]["reason"],
            status["lastState"]["terminated"]["exitCode"],
        ) == ("Unknown", 255)
        await wait_for(lambda: renew_time(cluster) != frozen_renew, 5, "lease renewals again")
        assert [
            e["reason"]
            for e in cluster.store.list("events")
            if e["involvedObject"]["kind"] == "Node"
        ].count("Rebooted") == 1
        cluster.store.delete("pods", NAMESPACE, "web")
        await wait_for(lambda: cluster.pod("web") is None, 15, "web removed")

    run_cluster(tmp_path, body)


def test_pods_deleted_while_off_are_removed_when_the_node_comes_back(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        cluster.create_pod("web", container(readinessProbe=http_probe("/health/ready")))
        await wait_for(lambda: cluster.container_status("web").get("ready"), 20, "web ready")
        cluster.kubelet.power_off()
        cluster.store.delete("pods", NAMESPACE, "web")
        await asyncio.sleep(1.0)
        assert cluster.pod("web") is not None  # nobody removes it while the node is off
        cluster.kubelet.power_on()
        await wait_for(lambda: cluster.pod("web") is None, 10, "web removed after power on")
        assert not cluster.pids()

    run_cluster(tmp_path, body)


def test_cancelling_the_kubelet_stops_every_process(tmp_path: Path) -> None:
    pids: list[int] = []

    async def body(cluster: Cluster) -> None:
        for index in range(3):
            cluster.create_pod(f"p{index}", container(readinessProbe=http_probe("/health/ready")))
        await wait_for(lambda: len(cluster.pids()) == 3, 20, "three processes")
        pids.extend(cluster.pids())

    run_cluster(tmp_path, body)  # cancels run(); the survivor check is in the harness
    assert not any(alive(pid) for pid in pids)
    assert os.listdir(tmp_path / "pids") == []
