"""Tiny builders and helpers of the infra tests: the Kubernetes objects the ingress
controller renders nginx configs from, a check for processes a test left behind, and an
RDS instance on a private loopback subnet with short timings.

Test modules import these; no test module imports another.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml

from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.postgres import PgNodeSpec, RdsInstance
from sandbox.infra.rds_status import RdsTimings
from sandbox.infra.supervisor import AddressInUseError, Endpoint, ensure_free
from tests.builders import REPO_ROOT

NGINX = Path("/usr/sbin/nginx")

# ---- the ingress controller's inputs ----

NAMESPACE = "harmonyflow"
SERVICE = "session-state-service"
API_HOST = "api.harmonyflow.io"
WS_HOST = "ws.api.harmonyflow.io"
KubeObject = dict[str, Any]


def deploy_manifest(name: str, namespace: str = NAMESPACE) -> KubeObject:
    """A manifest of deploy/base/ (`ingress`, `service`), placed in `namespace`."""
    obj: KubeObject = yaml.safe_load((REPO_ROOT / "deploy" / "base" / f"{name}.yaml").read_text())
    obj["metadata"]["namespace"] = namespace
    return obj


def make_endpoint(
    ip: str, *, ready: bool = True, serving: bool | None = None, terminating: bool = False
) -> KubeObject:
    """An EndpointSlice endpoint; `serving` defaults to `ready` (the controller's rule)."""
    return {
        "addresses": [ip],
        "conditions": {
            "ready": ready,
            "serving": ready if serving is None else serving,
            "terminating": terminating,
        },
    }


def make_slice(
    endpoints: list[KubeObject],
    *,
    service: str = SERVICE,
    namespace: str = NAMESPACE,
    name: str | None = None,
    ports: list[KubeObject] | None = None,
) -> KubeObject:
    return {
        "metadata": {
            "name": name or f"{service}-x7k2p",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports
        if ports is not None
        else [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "ws", "port": 8443, "protocol": "TCP"},
        ],
    }


def make_service(
    name: str = SERVICE, *, namespace: str = NAMESPACE, ports: list[KubeObject] | None = None
) -> KubeObject:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app": name},
            "ports": ports
            if ports is not None
            else [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def make_path(
    path: str, service: str = SERVICE, port: int | str = 80, path_type: str = "Prefix"
) -> KubeObject:
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {
        "path": path,
        "pathType": path_type,
        "backend": {"service": {"name": service, "port": port_ref}},
    }


def make_ingress(
    name: str = "web",
    rules: dict[str, list[KubeObject]] | None = None,
    *,
    namespace: str = NAMESPACE,
    annotations: dict[str, str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    ingress_class: str | None = "nginx",
) -> KubeObject:
    """`rules` maps host ('' for none) to paths."""
    spec: KubeObject = {
        "rules": [
            {"host": host, "http": {"paths": paths}} if host else {"http": {"paths": paths}}
            for host, paths in (rules or {API_HOST: [make_path("/api")]}).items()
        ]
    }
    if ingress_class is not None:
        spec["ingressClassName"] = ingress_class
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": spec,
    }


# ---- processes a test leaves behind ----


def living(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has exited, it only waits to be reaped)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def our_children() -> set[int]:
    return living({child.pid for child in psutil.Process().children(recursive=True)})


# ---- an RDS instance of the tests ----

# Short, so that the tests take seconds; the sandbox's defaults are AWS's (RdsTimings).
TIMINGS = RdsTimings(failover_seconds=3.0, reboot_seconds=1.0, stop_seconds=1.0, start_seconds=1.0)


class Records:
    """The endpoint's DNS record, as the cluster DNS would hold it."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.flips: list[tuple[float, list[str]]] = []

    def set(self, name: str, addresses: Sequence[str], ttl: int = 5) -> None:
        self.addresses = list(addresses)
        self.flips.append((time.monotonic(), list(addresses)))


def free_subnet() -> str:
    """`127.77.N` with nothing listening on N.10..12:5432."""
    chooser = random.Random(os.getpid())
    for _ in range(50):
        prefix = f"127.77.{chooser.randrange(1, 255)}"
        try:
            ensure_free([Endpoint(f"{prefix}.{host}", 5432) for host in (10, 11, 12)], "test")
        except AddressInUseError:
            continue
        return prefix
    raise RuntimeError("no free 127.77.N.0/24")


def make_instance(
    state_dir: Path, prefix: str | None = None, timings: RdsTimings = TIMINGS
) -> RdsInstance:
    prefix = prefix or free_subnet()
    return RdsInstance(
        state_dir,
        nodes=(
            PgNodeSpec("a", Endpoint(f"{prefix}.11", 5432), "us-west-2a"),
            PgNodeSpec("b", Endpoint(f"{prefix}.12", 5432), "us-west-2b"),
        ),
        timings=timings,
        dns=Records(),
        faults=HostFaults(table=nft_table(prefix)),
        timeout=30.0,
    )


def nft_table(prefix: str) -> str:
    """The test's own nft table, named after its subnet (a crashed run's is replaced)."""
    return f"hf_test_{prefix.replace('.', '_')}"
