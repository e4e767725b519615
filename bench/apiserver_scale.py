"""List and watch latency of the sandbox API server with 1,000 virtual pods on 100 nodes.

Baseline, measured in the same run against the same server: `GET /version`,
the cheapest request it serves. Printed, never asserted; targets: list-pods
p99 50 ms or less, watch delivery to 20 watchers p99 100 ms or less.

    .venv/bin/python bench/apiserver_scale.py [--pods 1000] [--nodes 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.kube.controlplane import ControlPlane, ControlPlaneOptions, default_nodes
from sandbox.kube.embedding import LoopThread, https_connection
from sandbox.kube.kubeconfig import ApiAccess

NAMESPACE = "bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def request_latencies(access: ApiAccess, path: str, count: int) -> list[float]:
    connection = https_connection(access, timeout=30)
    token = access.token
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        latencies.append((time.perf_counter() - began) * 1000)
    connection.close()
    return latencies


def watch_delays(
    access: ApiAccess, watchers: int, updates: int, plane: ControlPlane, loop: LoopThread
) -> list[float]:
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)

    def follow() -> None:
        connection = https_connection(access, timeout=60)
        connection.request(
            "GET",
            f"/api/v1/namespaces/{NAMESPACE}/configmaps?watch=true"
            f"&resourceVersion={plane.store.resource_version}"
            f"&timeoutSeconds=120",
            headers={"Authorization": f"Bearer {access.token}"},
        )
        response = connection.getresponse()
        ready.wait()
        seen = 0
        while seen < updates:
            line = response.readline()
            if not line:
                break
            event = json.loads(line)
            sent = float(event["object"]["data"]["sent"])
            with lock:
                delays.append((time.perf_counter() - sent) * 1000)
            seen += 1
        connection.close()

    threads = [threading.Thread(target=follow, daemon=True) for _ in range(watchers)]
    for thread in threads:
        thread.start()
    ready.wait()
    for index in range(updates):
        body = {
            "metadata": {"name": f"cm-{index}", "namespace": NAMESPACE},
            "data": {"sent": repr(time.perf_counter())},
        }
        loop.on_loop(partial(plane.store.create, "configmaps", body))
        time.sleep(0.01)
    for thread in threads:
        thread.join(60)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    arguments = parser.parse_args()
    loop = LoopThread()
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as scratch:
        nodes = tuple(default_nodes(per_zone=-(-arguments.nodes // 3)))[: arguments.nodes]
        options = ControlPlaneOptions(state_dir=Path(scratch), nodes=nodes, seed=1)
        plane = loop.on_loop(partial(ControlPlane, options))
        url = loop.run(plane.start())
        try:
            run(arguments, plane, loop, url)
        finally:
            loop.run(plane.stop(), timeout=300)
            loop.close()


def run(arguments: Any, plane: ControlPlane, loop: LoopThread, url: str) -> None:
    loop.on_loop(lambda: plane.store.create("namespaces", {"metadata": {"name": NAMESPACE}}))
    labels = {"app": "virtual"}
    loop.on_loop(
        lambda: plane.store.create(
            "apps/deployments",
            {
                "metadata": {"name": "virtual", "namespace": NAMESPACE},
                "spec": {
                    "replicas": arguments.pods,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": "v",
                                    "image": "sandbox.local/virtual:latest",
                                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                                }
                            ]
                        },
                    },
                },
            },
        )
    )
    began = time.perf_counter()
    deadline = began + 600
    while time.perf_counter() < deadline:
        ready = loop.on_loop(
            lambda: sum(
                1
                for pod in plane.store.snapshot("pods", NAMESPACE)
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in pod.get("status", {}).get("conditions") or []
                )
            )
        )
        if ready >= arguments.pods:
            break
        time.sleep(1)
    print(
        f"{arguments.pods} virtual pods Ready on {arguments.nodes} nodes after "
        f"{time.perf_counter() - began:.1f}s"
    )
    # over TLS as the kubeconfig's user, as kubectl's requests are
    access = plane.api.access
    version = request_latencies(access, "/version", 200)
    pods = request_latencies(access, f"/api/v1/namespaces/{NAMESPACE}/pods", 50)
    delays = watch_delays(access, 20, 100, plane, loop)
    print(
        f"baseline GET /version      p50 {percentile(version, 0.5):7.2f} ms  "
        f"p99 {percentile(version, 0.99):7.2f} ms"
    )
    print(
        f"list {arguments.pods} pods            p50 {percentile(pods, 0.5):7.2f} ms  "
        f"p99 {percentile(pods, 0.99):7.2f} ms  "
        f"({statistics.median(pods) / statistics.median(version):.0f}x baseline; "
        f"target p99 <= 50 ms)"
    )
    print(
        f"watch delivery, 20 watchers p50 {percentile(delays, 0.5):7.2f} ms  "
        f"p99 {percentile(delays, 0.99):7.2f} ms  ({len(delays)} deliveries; "
        f"target p99 <= 100 ms)"
    )


if __name__ == "__main__":
    main()
