"""What every pod worker of one kubelet shares: the node, the store, time, images, processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.images.registry import ImageRegistry
from sandbox.kube.clock import Clock
from sandbox.kube.errors import ApiError
from sandbox.kube.kubelet.backoff import BackoffPolicy
from sandbox.kube.kubelet.cgroups import PodCgroups
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.kubelet.node import NodeConfig
from sandbox.kube.kubelet.runtime import ContainerHandle
from sandbox.kube.kubelet.serviceaccount import TokenIssuer
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store

log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
COMPONENT = "kubelet"


@dataclass
class NodeContext:
    config: NodeConfig
    store: Store
    clock: Clock
    settings: ControlPlaneSettings
    metrics: MetricsStore
    ipam: IpAllocator
    images: ImageRegistry
    state_dir: Path
    rng: random.Random
    powered: bool = True
    cgroups: PodCgroups | None = None  # None: pods run without cgroups of their own
    # the API server's token signer; None: volumes with a serviceAccountToken source are
    # not materialized (sandbox/kube/kubelet/serviceaccount.py)
    token_issuer: TokenIssuer | None = None
    pulled: set[str] = field(default_factory=set)  # images present on the node
    handles: set[ContainerHandle] = field(default_factory=set)  # live containers

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy.from_settings(self.settings)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def event(self, pod: KubeObject, reason: str, message: str, warning: bool = False) -> None:
        """An Event about the pod from this node's kubelet; dropped while powered off."""
        if not self.powered:
            return
        try:
            self.store.record_event(
                pod,
                reason,
                message,
                event_type="Warning" if warning else "Normal",
                component=COMPONENT,
                host=self.config.name,
            )
        except ApiError as error:  # e.g. the namespace is terminating
            log.debug("event %s for %s not recorded: %s", reason, pod["metadata"]["name"], error)

    def kill_all(self) -> None:
        """SIGKILL every container of this node at once (power off, shutdown)."""
        for handle in list(self.handles):
            with contextlib.suppress(ProcessLookupError):
                handle.kill()
