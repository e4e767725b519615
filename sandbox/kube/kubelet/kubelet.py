"""The kubelet of one node: registration, heartbeats, pod workers, usage, power.

`Kubelet.run()` registers the Node (if absent), then keeps it alive: the Ready
condition's heartbeat every `node_status_update_frequency_seconds` and a Lease
in `kube-node-lease` renewed every quarter of its duration. Pods bound to the
node are found through a store listener plus a periodic resync, and each runs
in a `PodWorker`. `power_off()` is a pulled plug: every process is SIGKILLed,
heartbeats and status writes stop, API objects stay as they are. `power_on()`
boots again: pods still bound here restart, as after a reboot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.images.registry import ImageRegistry
from sandbox.kube.clock import Clock, rfc3339_micro
from sandbox.kube.errors import ApiError
from sandbox.kube.kubelet.cgroups import PodCgroups
from sandbox.kube.kubelet.context import NodeContext
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.kubelet.node import (
    LEASE_NAMESPACE,
    NodeConfig,
    new_lease,
    new_node,
    node_status,
)
from sandbox.kube.kubelet.pods import PodWorker
from sandbox.kube.kubelet.serviceaccount import TokenIssuer
from sandbox.kube.kubelet.usage import (
    NODE_OVERHEAD_CPU_MILLICORES,
    NODE_OVERHEAD_MEMORY_BYTES,
    VIRTUAL_CPU_MILLICORES,
    VIRTUAL_MEMORY_BYTES,
    CpuTracker,
    Reading,
    read_tree,
)
from sandbox.kube.metrics import ContainerUsage, MetricsStore, NodeSample, PodSample
from sandbox.kube.quantity import parse_quantity, whole_value
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

__all__ = ["Kubelet", "NodeConfig"]
log = logging.getLogger(__name__)
KubeObject = dict[str, Any]
RESYNC_SECONDS = 10.0
OOM_CHECK_SECONDS = 1.0
SHUTDOWN_WAIT_SECONDS = 5.0
PodKey = tuple[str, str]


def is_bound_to(pod: KubeObject | None, node: str) -> bool:
    return pod is not None and (pod.get("spec") or {}).get("nodeName") == node


class Kubelet:
    def __init__(
        self,
        config: NodeConfig,
        store: Store,
        clock: Clock,
        settings: ControlPlaneSettings,
        metrics: MetricsStore,
        ipam: IpAllocator,
        images: ImageRegistry,
        state_dir: Path,
        *,
        rng: random.Random | None = None,
        cgroups: PodCgroups | None = None,
        token_issuer: TokenIssuer | None = None,
    ) -> None:
        self.ctx = NodeContext(
            config, store, clock, settings, metrics, ipam, images, state_dir, rng or random.Random()
        )
        self.ctx.cgroups = cgroups
        self.ctx.token_issuer = token_issuer
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._session: list[asyncio.Task[None]] = []
        self._dirty: set[PodKey] = set()
        self._wake = asyncio.Event()
        self._boot_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        self._powered_off_at: datetime | None = None
        self._cpu = CpuTracker()

    @property
    def config(self) -> NodeConfig:
        return self.ctx.config

    @property
    def powered(self) -> bool:
        return self.ctx.powered

    # ---- lifecycle ----

    async def run(self) -> None:
        """Register, heartbeat and run pods until cancelled; then stop every process."""
        self._register_node()
        self.ctx.store.add_listener(self._on_change)
        self._start_session()
        try:
            await asyncio.Event().wait()
        finally:
            self.ctx.store.remove_listener(self._on_change)
            await self._shutdown()

    def power_off(self) -> None:
        """Pull the plug: SIGKILL every process at once; no more heartbeats or status writes."""
        if not self.ctx.powered:
            return
        log.info("node %s: power off", self.config.name)
        self.ctx.powered = False
        self._powered_off_at = self.ctx.clock.now()
        self.ctx.kill_all()
        self.ctx.handles.clear()  # their reapers still remove the pid files
        for task in [*self._session, *self._tasks.values()]:
            task.cancel()
        for uid in self.workers:
            self.ctx.ipam.release(uid)
        self.ctx.metrics.forget_node(self.config.name)
        self._session, self._tasks, self.workers = [], {}, {}

    def power_on(self) -> None:
        """Boot again: heartbeats resume and pods still bound here restart (restartCount + 1)."""
        if self.ctx.powered:
            return
        log.info("node %s: power on", self.config.name)
        self.ctx.powered = True
        self._boot_id = str(uuid.UUID(int=self.ctx.rng.getrandbits(128), version=4))
        self._register_node()
        self._node_event(
            "Rebooted",
            f"Node {self.config.name} has been rebooted, boot id: {self._boot_id}",
            warning=True,
        )
        self._start_session()

    def _start_session(self) -> None:
        self._session = [
            asyncio.ensure_future(loop())
            for loop in (
                self._heartbeat_loop,
                self._lease_loop,
                self._sync_loop,
                self._usage_loop,
                self._oom_loop,
            )
        ]

    async def _shutdown(self) -> None:
        handles = list(self.ctx.handles)
        self.ctx.kill_all()
        tasks = [*self._session, *self._tasks.values()]
        for task in tasks:
            task.cancel()
        waits = [asyncio.ensure_future(h.wait()) for h in handles]
        if tasks or waits:
            await asyncio.wait([*tasks, *waits], timeout=SHUTDOWN_WAIT_SECONDS)
        self.ctx.handles.clear()

    # ---- the Node and its Lease ----

    def _register_node(self) -> None:
        store, now = self.ctx.store, self.ctx.clock.now()
        if store.find("nodes", "", self.config.name) is None:
            store.create("nodes", new_node(self.config, self._boot_id, now))
            self._node_event("Starting", "Starting kubelet.")
        else:
            self._heartbeat()
        if store.find("namespaces", "", LEASE_NAMESPACE) is None:
            with contextlib.suppress(ApiError):
                store.create("namespaces", {"metadata": {"name": LEASE_NAMESPACE}})

    def _heartbeat(self) -> None:
        def beat(node: KubeObject) -> None:
            node["status"] = node_status(
                self.config, node.get("status") or {}, self._boot_id, self.ctx.clock.now()
            )

        try:
            self.ctx.store.mutate("nodes", "", self.config.name, beat, subresource="status")
        except ApiError as error:
            if error.code != 404:
                raise
            self._register_node()  # deleted while we were running: register again

    def _renew_lease(self) -> None:
        store, now = self.ctx.store, self.ctx.clock.now()
        duration = int(self.ctx.settings.node_lease_duration_seconds)
        lease = store.find("coordination.k8s.io/leases", LEASE_NAMESPACE, self.config.name)
        if lease is None:
            node = store.get("nodes", "", self.config.name)
            store.create(
                "coordination.k8s.io/leases",
                new_lease(self.config, node["metadata"]["uid"], duration, now),
            )
            return
        lease["spec"].update(
            holderIdentity=self.config.name,
            leaseDurationSeconds=duration,
            renewTime=rfc3339_micro(now),
        )
        store.update("coordination.k8s.io/leases", lease)

    async def _heartbeat_loop(self) -> None:
        await self._every(self.ctx.settings.node_status_update_frequency_seconds, self._heartbeat)

    async def _lease_loop(self) -> None:
        await self._every(self.ctx.settings.node_lease_duration_seconds / 4, self._renew_lease)

    async def _every(self, period: float, action: Callable[[], None]) -> None:
        while True:
            try:
                action()
            except ApiError as error:
                log.warning("node %s: %s failed: %s", self.config.name, action.__name__, error)
            await asyncio.sleep(period)

    def _node_event(self, reason: str, message: str, warning: bool = False) -> None:
        node = self.ctx.store.find("nodes", "", self.config.name)
        if node is not None:
            self.ctx.event(node, reason, message, warning)

    # ---- pods ----

    def _on_change(self, change: Change) -> None:
        if change.resource != "pods" or not self.ctx.powered:
            return
        name = self.config.name
        if is_bound_to(change.object, name) or is_bound_to(change.old, name):
            metadata = change.object["metadata"]
            self._dirty.add((metadata.get("namespace", ""), metadata["name"]))
            self._wake.set()

    async def _sync_loop(self) -> None:
        while True:
            self._mark_all_dirty()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_SECONDS):
                    while True:
                        await self._wake.wait()
                        self._wake.clear()
                        self._sync_dirty()

    def _mark_all_dirty(self) -> None:
        mine = self.ctx.store.snapshot("pods", fields=f"spec.nodeName={self.config.name}")
        self._dirty |= {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in mine}
        self._dirty |= {(w.namespace, w.name) for w in self.workers.values()}
        self._wake.set()

    def _sync_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for key in sorted(dirty):
            try:
                self._sync_pod(key)
            except ApiError as error:
                log.warning("node %s: sync of pod %s/%s: %s", self.config.name, *key, error)
            except Exception:  # the outermost loop logs and keeps serving
                log.exception("node %s: sync of pod %s/%s failed", self.config.name, *key)

    def _sync_pod(self, key: PodKey) -> None:
        pod = self.ctx.store.find("pods", *key)
        for worker in [w for w in self.workers.values() if (w.namespace, w.name) == key]:
            if pod is None or pod["metadata"]["uid"] != worker.uid:
                worker.observe(None)  # gone (or replaced by a new pod of the same name)
        if pod is None or not is_bound_to(pod, self.config.name):
            return
        current = self.workers.get(pod["metadata"]["uid"])
        if current is not None:
            current.observe(pod)
        elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self._remove_finished(pod)
        else:
            self._start_worker(pod)

    def _remove_finished(self, pod: KubeObject) -> None:
        metadata = pod["metadata"]
        if metadata.get("deletionTimestamp"):
            self.ctx.store.delete(
                "pods",
                metadata["namespace"],
                metadata["name"],
                grace_period_seconds=0,
                uid=metadata["uid"],
            )

    def _start_worker(self, pod: KubeObject) -> None:
        worker = PodWorker(self.ctx, pod, rebooted_at=self._powered_off_at)
        worker.observe(pod)
        uid = worker.uid
        self.workers[uid] = worker
        task = asyncio.ensure_future(self._run_worker(worker))
        self._tasks[uid] = task

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except Exception:
            log.exception(
                "node %s: pod worker %s/%s failed", self.config.name, worker.namespace, worker.name
            )
        finally:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
                self._tasks.pop(worker.uid, None)

    # ---- usage and OOM ----

    async def _usage_loop(self) -> None:
        while True:
            self._record_usage()
            await asyncio.sleep(self.ctx.settings.metrics_resolution_seconds)

    def _record_usage(self) -> None:
        now, at = self.ctx.clock.now(), self.ctx.monotonic()
        node_cpu, node_memory = NODE_OVERHEAD_CPU_MILLICORES, NODE_OVERHEAD_MEMORY_BYTES
        seen: set[str] = set()
        for worker in list(self.workers.values()):
            sample = self._pod_sample(worker, now, at, seen)
            if sample is not None:
                self.ctx.metrics.record_pod(sample)
                node_cpu += sample.cpu_millicores
                node_memory += sample.memory_bytes
        self._cpu.forget_except(seen)
        window = self.ctx.settings.metrics_resolution_seconds
        self.ctx.metrics.record_node(
            NodeSample(self.config.name, now, window, node_cpu, node_memory)
        )

    def _pod_sample(
        self, worker: PodWorker, now: datetime, at: float, seen: set[str]
    ) -> PodSample | None:
        usages, window = [], self.ctx.settings.metrics_resolution_seconds
        for container in worker.containers:
            handle = container.handle
            if handle is None:
                continue
            if handle.pid is None:
                usages.append(
                    ContainerUsage(container.name, VIRTUAL_CPU_MILLICORES, VIRTUAL_MEMORY_BYTES)
                )
                continue
            tree = read_tree(handle.pid)
            key = handle.container_id
            seen.add(key)
            rate = self._cpu.rate(key, Reading(tree.cpu_ticks, at)) if tree else None
            if tree is None or rate is None:
                return None  # metrics-server needs two readings of every container
            usages.append(ContainerUsage(container.name, rate[0], tree.rss_bytes))
            window = rate[1]
        if not usages:
            return None
        return PodSample(worker.namespace, worker.name, now, window, tuple(usages))

    async def _oom_loop(self) -> None:
        while True:
            await asyncio.sleep(OOM_CHECK_SECONDS)
            self._kill_over_limit()

    def _kill_over_limit(self) -> None:
        for worker in list(self.workers.values()):
            for container in worker.containers:
                limit = memory_limit(container.spec)
                handle = container.handle
                if limit is None or handle is None or handle.pid is None:
                    continue
                tree = read_tree(handle.pid)
                if tree is not None and tree.rss_bytes > limit:
                    log.info(
                        "node %s: %s/%s %s over its memory limit: OOM kill",
                        self.config.name,
                        worker.namespace,
                        worker.name,
                        container.name,
                    )
                    handle.kill(oom=True)


def memory_limit(container: Mapping[str, Any]) -> int | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return whole_value(parse_quantity(limit)) if limit is not None else None
