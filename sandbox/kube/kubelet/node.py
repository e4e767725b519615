"""The Node object and its Lease, as an EKS kubelet registers and renews them (pure builders).

>>> node_labels(NodeConfig("ip-10-0-1-10.us-west-2.compute.internal", "us-west-2a",
...                        "i-0abc", "127.0.3.1"))["topology.kubernetes.io/zone"]
'us-west-2a'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.kube.clock import rfc3339, rfc3339_micro

KubeObject = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.4-eks"
GIB = 1024**3


@dataclass(frozen=True)
class NodeConfig:
    name: str
    zone: str
    instance_id: str
    internal_ip: str
    region: str = "us-west-2"
    instance_type: str = "m5.xlarge"
    cpu_millicores: int = 4000
    memory_bytes: int = 16 * GIB
    max_pods: int = 30
    nodegroup: str = "harmonyflow-workers"


# type, status when healthy, reason, message
HEALTHY_CONDITIONS = (
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


def node_labels(config: NodeConfig) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": config.instance_type,
        "topology.kubernetes.io/zone": config.zone,
        "topology.kubernetes.io/region": config.region,
        "failure-domain.beta.kubernetes.io/zone": config.zone,
        "failure-domain.beta.kubernetes.io/region": config.region,
        "node.kubernetes.io/instance-type": config.instance_type,
        "eks.amazonaws.com/nodegroup": config.nodegroup,
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
    }


def resources(config: NodeConfig) -> dict[str, str]:
    cores = config.cpu_millicores / 1000
    cpu = str(int(cores)) if cores.is_integer() else f"{config.cpu_millicores}m"
    return {
        "cpu": cpu,
        "memory": f"{config.memory_bytes // 1024}Ki",
        "pods": str(config.max_pods),
        "ephemeral-storage": "83873772Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }


def node_info(config: NodeConfig, boot_id: str) -> dict[str, str]:
    machine = hashlib.md5(config.instance_id.encode(), usedforsecurity=False).hexdigest()
    return {
        "machineID": machine,
        "systemUUID": f"ec2{machine[3:8]}-{machine[8:12]}-{machine[12:16]}"
        f"-{machine[16:20]}-{machine[20:32]}",
        "bootID": boot_id,
        "kernelVersion": "5.10.234-225.895.amzn2.x86_64",
        "osImage": "Amazon Linux 2",
        "containerRuntimeVersion": "containerd://1.7.27",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": "amd64",
    }


def healthy_conditions(previous: list[KubeObject], now: datetime) -> list[KubeObject]:
    """The four conditions with a fresh heartbeat; lastTransitionTime kept while unchanged."""
    by_type = {c.get("type"): c for c in previous}
    stamp = rfc3339(now)
    conditions = []
    for kind, status, reason, message in HEALTHY_CONDITIONS:
        old = by_type.get(kind) or {}
        transition = old.get("lastTransitionTime") if old.get("status") == status else stamp
        conditions.append(
            {
                "type": kind,
                "status": status,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": transition or stamp,
                "reason": reason,
                "message": message,
            }
        )
    return conditions


def new_node(config: NodeConfig, boot_id: str, now: datetime) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.name,
            "labels": node_labels(config),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "alpha.kubernetes.io/provided-node-ip": config.internal_ip,
            },
        },
        "spec": {"providerID": f"aws:///{config.zone}/{config.instance_id}"},
        "status": node_status(config, {}, boot_id, now),
    }


def node_status(
    config: NodeConfig, previous: KubeObject, boot_id: str, now: datetime
) -> KubeObject:
    return {
        **previous,
        "capacity": resources(config),
        "allocatable": resources(config),
        "conditions": healthy_conditions(previous.get("conditions") or [], now),
        "addresses": [
            {"type": "InternalIP", "address": config.internal_ip},
            {"type": "Hostname", "address": config.name},
            {"type": "InternalDNS", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": node_info(config, boot_id),
    }


def new_lease(config: NodeConfig, node_uid: str, duration: int, now: datetime) -> KubeObject:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": config.name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": config.name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": config.name,
            "leaseDurationSeconds": duration,
            "renewTime": rfc3339_micro(now),
        },
    }
