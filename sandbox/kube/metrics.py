"""Resource usage samples: written by kubelets, read by the metrics API and the HPA.

This is the sandbox's metrics-server: the latest sample per pod and per node,
each with the window it was measured over, as `metrics.k8s.io/v1beta1` reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    cpu_millicores: int
    memory_bytes: int


@dataclass(frozen=True)
class PodSample:
    namespace: str
    name: str
    timestamp: datetime
    window_seconds: float
    containers: tuple[ContainerUsage, ...]

    @property
    def cpu_millicores(self) -> int:
        return sum(c.cpu_millicores for c in self.containers)

    @property
    def memory_bytes(self) -> int:
        return sum(c.memory_bytes for c in self.containers)


@dataclass(frozen=True)
class NodeSample:
    name: str
    timestamp: datetime
    window_seconds: float
    cpu_millicores: int
    memory_bytes: int


@dataclass
class MetricsStore:
    pods: dict[tuple[str, str], PodSample] = field(default_factory=dict)
    nodes: dict[str, NodeSample] = field(default_factory=dict)

    def record_pod(self, sample: PodSample) -> None:
        self.pods[(sample.namespace, sample.name)] = sample

    def forget_pod(self, namespace: str, name: str) -> None:
        self.pods.pop((namespace, name), None)

    def record_node(self, sample: NodeSample) -> None:
        self.nodes[sample.name] = sample

    def forget_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def pod(self, namespace: str, name: str) -> PodSample | None:
        return self.pods.get((namespace, name))


def format_cpu(millicores: int) -> str:
    """Quantity as metrics-server writes it: nanocores (`12345678n`)."""
    return f"{millicores * 1_000_000}n"


def format_memory(num_bytes: int) -> str:
    return f"{num_bytes // 1024}Ki"
