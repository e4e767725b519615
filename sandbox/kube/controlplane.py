"""The Kubernetes side of the sandbox: store, API server, controllers and six kubelets in
one event loop.

The node layout mirrors the seed: 6 m5.xlarge nodes, 2 per zone in
us-west-2a/b/c, with node addresses on 127.0.1.0/24 (the seed's subnets
mirrored onto loopback). What EKS adds around a cluster (the cluster DNS, the pod
network, the managed databases, the AWS API, monitoring) is composed around this in
`sandbox/daemon.py`; it plugs its controllers in as `AddOn`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.images.registry import ImageRegistry
from sandbox.kube import customresources, storageclasses
from sandbox.kube.addressclaims import DEFAULT_LOCK_DIR, AddressClaims
from sandbox.kube.apiserver import ApiServer, ApiServerConfig
from sandbox.kube.auth.tokens import PodBoundTokens
from sandbox.kube.clock import Clock, RealClock
from sandbox.kube.clusterips import ClusterIpAllocator
from sandbox.kube.controllers import disruption
from sandbox.kube.controllers.apiservice import ApiServiceController
from sandbox.kube.controllers.clusterroleaggregation import ClusterRoleAggregationController
from sandbox.kube.controllers.cronjob import CronJobController
from sandbox.kube.controllers.deployment.controller import DeploymentController
from sandbox.kube.controllers.disruption import DisruptionController
from sandbox.kube.controllers.endpoints import EndpointsController
from sandbox.kube.controllers.garbagecollector import GarbageCollector
from sandbox.kube.controllers.hpa.controller import HorizontalPodAutoscalerController
from sandbox.kube.controllers.job import JobController
from sandbox.kube.controllers.kubernetesservice import (
    ApiServerAddress,
    KubernetesServiceController,
)
from sandbox.kube.controllers.nodelifecycle import NodeLifecycleController
from sandbox.kube.controllers.persistentvolume import PersistentVolumeController
from sandbox.kube.controllers.replicaset import ReplicaSetController
from sandbox.kube.controllers.replicationcontroller import ReplicationControllerController
from sandbox.kube.controllers.rootcacert import RootCaPublisher
from sandbox.kube.controllers.runtime import Controller, run_controller
from sandbox.kube.controllers.scheduler import Scheduler
from sandbox.kube.controllers.serviceaccount import ServiceAccountsController
from sandbox.kube.kubelet.cgroups import PodCgroups
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.kubelet.kubelet import Kubelet, NodeConfig
from sandbox.kube.kubelet.serviceaccount import TokenIssuer
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store
from sandbox.kube.streaming.targets import ContainerProcess

log = logging.getLogger(__name__)
ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def default_nodes(per_zone: int = 2, zones: tuple[str, ...] = ZONES) -> list[NodeConfig]:
    nodes = []
    for index in range(per_zone * len(zones)):
        zone = zones[index % len(zones)]
        host = 10 + index
        nodes.append(
            NodeConfig(
                name=f"ip-127-0-1-{host}.us-west-2.compute.internal",
                zone=zone,
                instance_id=f"i-0{zone[-1]}{host:015x}",
                internal_ip=f"127.0.1.{host}",
            )
        )
    return nodes


@dataclass(frozen=True)
class ControlPlaneOptions:
    state_dir: Path
    api_port: int = 0
    settings: ControlPlaneSettings = field(default_factory=ControlPlaneSettings)
    nodes: tuple[NodeConfig, ...] = field(default_factory=lambda: tuple(default_nodes()))
    seed: int | None = None


@dataclass(frozen=True)
class AddOn:
    """A controller run beside Kubernetes' own (the cluster DNS's, the pod network's, the
    ingress controller), and what else wakes it: a source of changes that are no API
    objects (the zones FIS cuts off), as `run_controller`'s `wake`."""

    controller: Controller
    wake: Callable[[Callable[[], None]], None] | None = None


class ControlPlane:
    def __init__(
        self,
        options: ControlPlaneOptions,
        clock: Clock | None = None,
        token_issuer: TokenIssuer | None = None,
    ) -> None:
        self.options = options
        # the kubelets' service-account tokens (default: the API server's TokenRequest)
        self.token_issuer = token_issuer
        # where pods reach the API server (the `kubernetes` Service), set by serve_api()
        self.kubernetes_api: ApiServerAddress | None = None
        self.clock: Clock = clock or RealClock()
        self.rng = random.Random(options.seed)
        self.store = Store(self.clock, self.rng, options.settings.watch_history_events)
        self.store.default_toleration_seconds = options.settings.default_toleration_seconds
        # ClusterIPs are claimed machine-wide: the pod network's kube-proxy rules act on
        # every process of the machine (sandbox.kube.clusterips)
        self.store.cluster_ips = ClusterIpAllocator(AddressClaims(DEFAULT_LOCK_DIR))
        self.metrics = MetricsStore()
        self.ipam = IpAllocator()
        self.images = ImageRegistry()
        self.kubelets: dict[str, Kubelet] = {}
        # The pods' cgroups: what tells the pod network whose packet it is (sandbox/cni).
        self.cgroups = PodCgroups.discover(options.state_dir)
        self._tasks: list[asyncio.Task[None]] = []
        self._kubelet_tasks: dict[str, asyncio.Task[None]] = {}
        settings = options.settings
        self.api = ApiServer(
            self.store,
            self.metrics,
            ApiServerConfig(port=options.api_port, log_root=options.state_dir),
            evict=lambda namespace, name, body: disruption.evict(
                self.store, self.clock, settings, namespace, name, body
            ),
        )
        self.api.container_process = self.container_process
        if self.token_issuer is None:  # the API server's own signer, as the kubelet asks it
            self.token_issuer = PodBoundTokens(self.api.tokens)

    def container_process(
        self, namespace: str, uid: str, container: str
    ) -> ContainerProcess | None:
        """The process of a pod's container on whichever node runs it (None: no node does)."""
        for kubelet in self.kubelets.values():
            worker = kubelet.workers.get(uid)
            if worker is None or worker.namespace != namespace:
                continue
            for candidate in worker.containers:
                if candidate.name != container:
                    continue
                if candidate.virtual:
                    return ContainerProcess(None, virtual=True)
                handle = candidate.handle
                if handle is None or handle.returncode is not None:
                    return ContainerProcess(None)
                return ContainerProcess(
                    handle.pid, attachments=getattr(handle, "attachments", None)
                )
        return None

    @property
    def volume_root(self) -> Path:
        """Where provisioned PersistentVolumes keep their data, one directory each."""
        return self.options.state_dir / "volumes"

    def controllers(self) -> list[Controller]:
        store, clock, settings = self.store, self.clock, self.options.settings
        return [
            *self._api_publishers(),
            DeploymentController(store, clock, settings),
            ReplicaSetController(store, clock, settings),
            ReplicationControllerController(store, clock, settings),
            JobController(store, clock, settings),
            CronJobController(store, clock, settings),
            # claims, volumes and their directories (<state>/volumes/<pv name>/)
            PersistentVolumeController(store, clock, settings, self.volume_root),
            ApiServiceController(store, clock, settings),
            Scheduler(store, clock, settings, rng=self.rng),
            EndpointsController(store, clock, settings),
            DisruptionController(store, clock, settings),
            NodeLifecycleController(store, clock, settings),
            GarbageCollector(store, clock, settings),
            HorizontalPodAutoscalerController(store, clock, settings, self.metrics),
            ServiceAccountsController(store, clock, settings),
            ClusterRoleAggregationController(store, clock, settings),
        ]

    def _api_publishers(self) -> list[Controller]:
        """The `kubernetes` Service and `kube-root-ca.crt` (none before serve_api())."""
        if self.kubernetes_api is None:
            return []
        return [
            KubernetesServiceController(self.store, self.kubernetes_api),
            RootCaPublisher(self.store, self.api.certificate.ca_pem.decode()),
        ]

    def _claim_kubernetes_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP, claimed before the API server starts: its
        serving certificate names it (ApiServerConfig.service_addresses)."""
        existing = self.store.find("services", "default", "kubernetes")
        cluster_ip = str((existing or {}).get("spec", {}).get("clusterIP") or "")
        if not cluster_ip:
            used = {str(s.get("spec", {}).get("clusterIP")) for s in self.store.list("services")}
            cluster_ip = self.store.cluster_ips.allocate(used) or ""
        if not cluster_ip:
            raise RuntimeError("no ClusterIP left for the kubernetes Service")
        self.api.config.service_addresses = (cluster_ip,)
        return cluster_ip

    async def start(self, add_ons: Sequence[AddOn] = ()) -> str:
        """The whole start: defaults, then the API server, then controllers and kubelets."""
        self.install_defaults()
        url = await self.serve_api()
        self.run(add_ons)
        return url

    def install_defaults(self) -> None:
        """What a new cluster has before anyone writes: its namespaces, the CRDs it serves
        and EKS's StorageClass."""
        for namespace in NAMESPACES:
            if self.store.find("namespaces", "", namespace) is None:
                self.store.create("namespaces", {"metadata": {"name": namespace}})
        customresources.install(self.store)  # discovery serves them; their CRDs say so
        storageclasses.install(self.store)  # EKS's gp2 (not the default class since EKS 1.30)

    async def serve_api(self) -> str:
        """Start the API server and publish how pods reach it; its URL."""
        cluster_ip = self._claim_kubernetes_ip()
        url = await self.api.start()
        self.kubernetes_api = ApiServerAddress(cluster_ip, self.api.config.host, self.api.port)
        for publisher in self._api_publishers():  # in place before any pod starts
            for key in publisher.all_keys():
                publisher.reconcile(key)
        return url

    def run(self, add_ons: Sequence[AddOn] = ()) -> None:
        """Every controller, the add-ons' first, then a kubelet per node."""
        resync = self.options.settings.controller_resync_seconds
        for add_on in add_ons:
            controller = add_on.controller
            self._spawn(
                run_controller(controller, self.store, resync, add_on.wake), controller.name
            )
        for controller in self.controllers():
            self._spawn(run_controller(controller, self.store, resync), controller.name)
        for node in self.options.nodes:
            self.start_kubelet(node)

    def start_kubelet(self, node: NodeConfig) -> Kubelet:
        kubelet = Kubelet(
            node,
            self.store,
            self.clock,
            self.options.settings,
            self.metrics,
            self.ipam,
            self.images,
            self.options.state_dir,
            cgroups=self.cgroups,
            token_issuer=self.token_issuer,
        )
        self.kubelets[node.name] = kubelet
        self._kubelet_tasks[node.name] = self._spawn(kubelet.run(), f"kubelet {node.name}")
        return kubelet

    async def stop(self) -> None:
        """The whole stop: workloads, then what they held of the machine, then the API."""
        await self.stop_workloads()
        await self.release_host()
        await self.stop_api()

    async def stop_workloads(self) -> None:
        """Kubelets (they stop every pod process), then controllers."""
        for task in self._kubelet_tasks.values():
            task.cancel()
        await asyncio.gather(*self._kubelet_tasks.values(), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def release_host(self) -> None:
        """The pods' cgroups and the machine-wide ClusterIP claims (after the pod network
        has stopped, when the sandbox runs one: no rule names them then)."""
        if self.cgroups is not None:
            await self.cgroups.remove_all()
        self.store.cluster_ips.release_all()

    async def stop_api(self) -> None:
        with contextlib.suppress(Exception):
            await self.api.stop()

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)
        return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
