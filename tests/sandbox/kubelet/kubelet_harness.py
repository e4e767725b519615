"""Kubelets on a real Store, in one `asyncio.run`, with bounded waits and a survivor check."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sandbox.images.registry import ImageRegistry
from sandbox.kube.clock import RealClock
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.kubelet.kubelet import Kubelet, NodeConfig
from sandbox.kube.kubelet.usage import process_tree
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

T = TypeVar("T")
KubeObject = dict[str, Any]
NAMESPACE = "default"

# Flags an operator would shorten for a test node; semantics unchanged.
FAST = ControlPlaneSettings(
    node_status_update_frequency_seconds=1.0,
    node_lease_duration_seconds=4.0,
    container_backoff_initial_seconds=1.0,
    container_backoff_max_seconds=4.0,
    container_backoff_reset_seconds=8.0,
    metrics_resolution_seconds=1.0,
)


def node_config(index: int = 1, zone: str = "us-west-2a") -> NodeConfig:
    return NodeConfig(
        f"ip-127-0-1-{index}.us-west-2.compute.internal",
        zone,
        f"i-0{index:016x}",
        f"127.0.1.{index}",
    )


def container(
    name: str = "app", image: str = "sandbox.local/testapp:latest", **extra: Any
) -> KubeObject:
    return {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080}],
        **extra,
    }


def http_probe(path: str, period: int = 1, failure: int = 3, timeout: int = 1) -> KubeObject:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failure,
        "timeoutSeconds": timeout,
    }


def env(**values: str) -> list[KubeObject]:
    return [{"name": key, "value": value} for key, value in values.items()]


@dataclass
class Cluster:
    store: Store
    kubelets: list[Kubelet]
    state_dir: Path
    changes: list[Change] = field(default_factory=list)

    @property
    def kubelet(self) -> Kubelet:
        return self.kubelets[0]

    def create_pod(
        self, name: str, *containers: KubeObject, node: int = 0, **spec: Any
    ) -> KubeObject:
        body = {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "nodeName": self.kubelets[node].config.name,
                "containers": list(containers),
                **spec,
            },
        }
        return self.store.create("pods", body)

    def pod(self, name: str) -> KubeObject | None:
        return self.store.find("pods", NAMESPACE, name)

    def container_status(self, name: str) -> KubeObject:
        pod = self.pod(name) or {}
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        return dict(statuses[0])

    def events(self, reason: str) -> list[KubeObject]:
        return [e for e in self.store.list("events") if e["reason"] == reason]

    def pids(self) -> set[int]:
        directory = self.state_dir / "pids"
        return {int(p.name) for p in directory.iterdir()} if directory.is_dir() else set()

    def statuses_of(self, name: str) -> list[KubeObject]:
        """Every status the pod had, from the store's change feed."""
        return [
            c.object.get("status") or {}
            for c in self.changes
            if c.resource == "pods" and c.object["metadata"]["name"] == name
        ]


async def wait_for(
    condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll until `condition` is truthy; bounded, and says what it waited for."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def live_children() -> list[int]:
    """Descendants of this process that are still alive (zombies do not count)."""
    return [pid for pid in process_tree(os.getpid())[1:] if process_state(pid) not in ("", "Z")]


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def assert_no_survivors(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while live_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not live_children(), f"processes outlived the test: {live_children()}"


def run_cluster(
    state_dir: Path,
    body: Callable[[Cluster], Awaitable[None]],
    nodes: int = 1,
    settings: ControlPlaneSettings = FAST,
    ipam: IpAllocator | None = None,
    images: ImageRegistry | None = None,
) -> None:
    """Start `nodes` kubelets on a fresh store, run the test body, stop everything."""

    async def main() -> None:
        store = Store()
        store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        shared_ipam, metrics = ipam or IpAllocator(), MetricsStore()
        registry = images or ImageRegistry()
        kubelets = [
            Kubelet(
                node_config(i + 1),
                store,
                RealClock(),
                settings,
                metrics,
                shared_ipam,
                registry,
                state_dir,
            )
            for i in range(nodes)
        ]
        cluster = Cluster(store, kubelets, state_dir)
        store.add_listener(cluster.changes.append)
        tasks = [asyncio.ensure_future(k.run()) for k in kubelets]
        try:
            await wait_for(lambda: len(store.list("nodes")) == nodes, 10, "nodes registered")
            await body(cluster)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            assert task.cancelled(), task

    try:
        asyncio.run(main())
    finally:
        assert_no_survivors()
