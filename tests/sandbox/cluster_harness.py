"""A whole sandbox control plane (API server, controllers, six kubelets, the cluster DNS and,
where the machine allows it, the pod network) on a loop thread."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config

from sandbox.daemon import Sandbox, SandboxOptions
from sandbox.infra.clusterdns import DNS_PORT
from sandbox.infra.supervisor import AddressInUseError, Endpoint, ensure_free
from sandbox.kube.controlplane import ControlPlane, ControlPlaneOptions
from sandbox.kube.embedding import LoopThread
from sandbox.kube.kubeconfig import write_kubeconfig
from sandbox.kube.settings import ControlPlaneSettings
from tests.cli import run_kubectl

T = TypeVar("T")

# Durations an operator would shorten for a test cluster; upstream defaults otherwise.
FAST = ControlPlaneSettings(
    node_monitor_grace_period_seconds=8.0,
    node_status_update_frequency_seconds=2.0,
    hpa_sync_period_seconds=3.0,
    controller_resync_seconds=5.0,
)


_harnesses = itertools.count()


def private_cluster_dns() -> tuple[str, ...]:
    """A cluster DNS address of this harness's own (127.0.9.N:53), free right now: the full
    sandbox, which may run beside these tests, holds 127.0.3.53."""
    for _ in range(250):
        host = f"127.0.9.{(os.getpid() + next(_harnesses)) % 250 + 1}"
        try:
            ensure_free([Endpoint(host, DNS_PORT)], "cluster DNS")
        except AddressInUseError:
            continue
        return (host,)
    raise RuntimeError("no free 127.0.9.N:53 for a cluster DNS")


class SandboxHarness:
    def __init__(
        self,
        directory: Path,
        settings: ControlPlaneSettings = FAST,
    ) -> None:
        self.directory = directory
        self.thread = LoopThread()
        settings = dataclasses.replace(settings, cluster_dns=private_cluster_dns())
        options = SandboxOptions(
            ControlPlaneOptions(state_dir=directory, settings=settings, seed=7)
        )
        self.sandbox: Sandbox = self.thread.on_loop(lambda: Sandbox(options))
        self.plane: ControlPlane = self.sandbox.plane
        self.url = self.thread.run(self.sandbox.start())
        self.kubeconfig = write_kubeconfig(
            directory / "kubeconfig", self.plane.api.access, "default"
        )

    @property
    def store(self) -> Any:
        return self.plane.store

    def on_loop(self, function: Callable[[], T]) -> T:
        return self.thread.on_loop(function)

    def api_client(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return api

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.directory / "kubecache"),
        }

    def kubectl(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(*args, env=self.env(), timeout=timeout, check=check)

    def new_namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(self.api_client()).create_namespace({"metadata": {"name": name}})
        return name

    def close(self) -> None:
        self.thread.run(self.sandbox.stop(), timeout=120)
        self.thread.close()


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until `condition` returns something truthy; bounded, and says what it waited for."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def app_deployment(
    name: str, replicas: int = 3, image: str = "sandbox.local/testapp:latest", **extra: Any
) -> dict[str, Any]:
    """A small Deployment with fast probes, for tests that need real pods quickly."""
    labels = {"app": name}
    probe = {
        "httpGet": {"path": "/health/ready", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 2,
        "timeoutSeconds": 1,
    }
    container = {
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/health/live", "port": 8080}},
    }
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 5},
            },
        },
    }
    body["spec"].update(extra)
    return body


__all__ = ["FAST", "SandboxHarness", "app_deployment", "wait_for"]
