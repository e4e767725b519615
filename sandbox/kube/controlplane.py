"""One sandbox cluster: store, API server, controllers and six kubelets in one event loop.

The node layout mirrors the seed: 6 m5.xlarge nodes, 2 per zone in
us-west-2a/b/c, with node addresses on 127.0.1.0/24 (the seed's subnets
mirrored onto loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.aws.effects import ControlPlaneEffects
from sandbox.aws.endpoint import AwsEndpoint
from sandbox.aws.inventory import REGION
from sandbox.cni.controller import PodNetworkController
from sandbox.cni.faults import NetemParams
from sandbox.cni.infrapeers import infrastructure_peers
from sandbox.cni.netem_process import NetemWorker, start_worker
from sandbox.cni.podnetwork import PodNetwork
from sandbox.cni.zones import ZoneIsolation
from sandbox.images.registry import ImageRegistry
from sandbox.infra import monitoring
from sandbox.infra.backing import BackingServices
from sandbox.infra.clusterdns import DEFAULT_ENDPOINT, DNS_PORT, ClusterDns
from sandbox.infra.extras import MONITORING
from sandbox.infra.ingress_controller import IngressController
from sandbox.infra.rds_status import RdsTimings
from sandbox.infra.servicedns import ServiceDnsController
from sandbox.infra.supervisor import Endpoint
from sandbox.kube import customresources, storageclasses
from sandbox.kube.apiserver import ApiServer, ApiServerConfig
from sandbox.kube.auth.tokens import PodBoundTokens
from sandbox.kube.clock import Clock, RealClock
from sandbox.kube.clusterips import ClusterIpAllocator
from sandbox.kube.controllers import disruption
from sandbox.kube.controllers.apiservice import ApiServiceController
from sandbox.kube.controllers.clusterroleaggregation import ClusterRoleAggregationController
from sandbox.kube.controllers.cronjob import CronJobController
from sandbox.kube.controllers.deployment import DeploymentController
from sandbox.kube.controllers.disruption import DisruptionController
from sandbox.kube.controllers.endpoints import EndpointsController
from sandbox.kube.controllers.garbagecollector import GarbageCollector
from sandbox.kube.controllers.hpa import HorizontalPodAutoscalerController
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
from sandbox.kube.kubeconfig import write_kubeconfig
from sandbox.kube.kubelet.cgroups import PodCgroups, sandbox_id
from sandbox.kube.kubelet.ipam import DEFAULT_LOCK_DIR, AddressClaims, IpAllocator
from sandbox.kube.kubelet.kubelet import Kubelet, NodeConfig
from sandbox.kube.kubelet.serviceaccount import TokenIssuer
from sandbox.kube.metrics import MetricsStore
from sandbox.kube.podidentity import PodIdentitySettings
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store
from sandbox.kube.streaming.targets import ContainerProcess

log = logging.getLogger(__name__)
ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def cluster_dns_endpoint(settings: ControlPlaneSettings) -> Endpoint:
    """Where the cluster DNS listens: the kubelets' first --cluster-dns address, port 53
    (a resolv.conf cannot name a port)."""
    return Endpoint(settings.cluster_dns[0], DNS_PORT) if settings.cluster_dns else DEFAULT_ENDPOINT


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
    # "RDS" PostgreSQL pair, "ElastiCache" Redis cluster and the nginx ingress; off for
    # tests of the Kubernetes side alone, on for `resilience sandbox up`.
    backing_services: bool = False
    # EC2 / RDS / ElastiCache API on loopback (moto with the sandbox's hooks); on for
    # `resilience sandbox up`, off for tests of the Kubernetes side alone.
    aws_endpoint: bool = False
    # Optional parts of the seed, off unless asked for (`--with rabbitmq`,
    # `--with monitoring`): see sandbox/infra/extras.py for why.
    extras: frozenset[str] = frozenset()
    # How long the "RDS" instance's failover, reboot, stop and start take (AWS's figures)
    rds_timings: RdsTimings = field(default_factory=RdsTimings)

    @classmethod
    def from_flags(
        cls,
        state_dir: Path,
        api_port: int = 0,
        node_monitor_grace_period: float | None = None,
        hpa_sync_period: float | None = None,
        default_toleration_seconds: int | None = None,
        sync_rate_limit: float | None = None,
        backing_services: bool = True,
        extras: frozenset[str] = frozenset(),
        rds_timings: RdsTimings | None = None,
        cluster_dns: tuple[str, ...] | None = None,
    ) -> ControlPlaneOptions:
        overrides: dict[str, Any] = {}
        if node_monitor_grace_period is not None:
            overrides["node_monitor_grace_period_seconds"] = node_monitor_grace_period
        if hpa_sync_period is not None:
            overrides["hpa_sync_period_seconds"] = hpa_sync_period
        if default_toleration_seconds is not None:
            overrides["default_toleration_seconds"] = default_toleration_seconds
        if sync_rate_limit is not None:
            overrides["ingress_sync_rate_limit"] = sync_rate_limit
        if cluster_dns is not None:
            overrides["cluster_dns"] = cluster_dns
        settings = dataclasses.replace(ControlPlaneSettings(), **overrides)
        return cls(
            state_dir=state_dir,
            api_port=api_port,
            settings=settings,
            backing_services=backing_services,
            aws_endpoint=True,
            extras=extras,
            rds_timings=rds_timings or RdsTimings(),
        )


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
        # where pods reach the API server (the `kubernetes` Service), set by start()
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
        self.pod_network = (
            PodNetwork(sandbox_id(options.state_dir), self._start_netem_worker)
            if self.cgroups is not None and PodNetwork.available()
            else None
        )
        # its rules are by address: a released address waits until they are gone (ipam)
        self.ipam.defer_release = self.pod_network is not None
        # the zones AWS FIS's disrupt-connectivity cuts off (sandbox.aws.effects sets them)
        self.zone_isolation = ZoneIsolation()
        # kube-system's CoreDNS: there even without backing services; they register their
        # endpoint names in it (plane.dns.set(name, addresses)).
        self.dns = ClusterDns(cluster_dns_endpoint(options.settings))
        self.backing: BackingServices | None = (
            BackingServices(
                options.state_dir,
                options.extras,
                rds_timings=options.rds_timings,
                dns=self.dns,
            )
            if options.backing_services
            else None
        )
        self.aws: AwsEndpoint | None = None
        self.monitoring: monitoring.Monitoring | None = None
        self._aws_effects: ControlPlaneEffects | None = None
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

    async def _start_netem_worker(self, queue: int, params: NetemParams) -> NetemWorker:
        state_dir = self.options.state_dir
        return await start_worker(
            queue,
            params,
            pids_dir=state_dir / "pids",
            log_path=state_dir / "netem" / f"queue-{queue}.log",
        )

    def _resolve(self, name: str) -> tuple[str, ...]:
        record = self.dns.lookup(name)
        return tuple(record.addresses) if record is not None else ()

    @property
    def volume_root(self) -> Path:
        """Where provisioned PersistentVolumes keep their data, one directory each."""
        return self.options.state_dir / "volumes"

    def controllers(self) -> list[Controller]:
        store, clock, settings = self.store, self.clock, self.options.settings
        ingress: list[Controller] = []
        if self.backing is not None:
            ingress.append(IngressController(store, clock, settings, self.backing.nginx))
        if self.pod_network is not None and self.cgroups is not None:
            # the cluster DNS and the ingress controller, as NetworkPolicy sees them on EKS
            peers = infrastructure_peers(
                self.dns.endpoint.host,
                self.backing.nginx.upstream_bind if self.backing is not None else None,
            )
            ingress.append(
                PodNetworkController(
                    store,
                    clock,
                    self.pod_network,
                    self.cgroups,
                    self.dns,
                    self._resolve,
                    self.ipam,
                    infrastructure=peers,
                    zone_isolation=self.zone_isolation,
                )
            )
        return [
            *ingress,
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
            # CoreDNS's kubernetes plugin: the Services' names in the cluster DNS
            ServiceDnsController(store, self.dns, settings.cluster_domain),
            DisruptionController(store, clock, settings),
            NodeLifecycleController(store, clock, settings),
            GarbageCollector(store, clock, settings),
            HorizontalPodAutoscalerController(store, clock, settings, self.metrics),
            ServiceAccountsController(store, clock, settings),
            ClusterRoleAggregationController(store, clock, settings),
        ]

    def _api_publishers(self) -> list[Controller]:
        """The `kubernetes` Service and `kube-root-ca.crt` (none before start())."""
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

    async def start(self) -> str:
        await self.dns.start()  # first: a taken address fails the start with nothing running
        for namespace in NAMESPACES:
            if self.store.find("namespaces", "", namespace) is None:
                self.store.create("namespaces", {"metadata": {"name": namespace}})
        customresources.install(self.store)  # discovery serves them; their CRDs say so
        storageclasses.install(self.store)  # EKS's gp2 (not the default class since EKS 1.30)
        if self.backing is not None:
            await self.backing.start()
        cluster_ip = self._claim_kubernetes_ip()
        url = await self.api.start()
        self.kubernetes_api = ApiServerAddress(cluster_ip, self.api.config.host, self.api.port)
        for publisher in self._api_publishers():  # in place before any pod starts
            for key in publisher.all_keys():
                publisher.reconcile(key)
        if self.backing is not None:
            rds = self.backing.rds
            self.api.replication_lag = lambda: monitoring.replication_lag(rds)
            if MONITORING in self.options.extras:
                await self._start_monitoring(url)
        resync = self.options.settings.controller_resync_seconds
        for controller in self.controllers():
            wake = (
                self.zone_isolation.subscribe
                if isinstance(controller, PodNetworkController)
                else None
            )
            self._spawn(run_controller(controller, self.store, resync, wake), controller.name)
        for node in self.options.nodes:
            self.start_kubelet(node)
        if self.options.aws_endpoint:
            self._aws_effects = ControlPlaneEffects(self, asyncio.get_running_loop())
            self.aws = AwsEndpoint(self._aws_effects)
            await asyncio.to_thread(self.aws.start)
            self.store.pod_identity = PodIdentitySettings(REGION, self.aws.url)
        return url

    async def _start_monitoring(self, api_url: str) -> None:
        """Prometheus and Alertmanager, with a kubeconfig of their own (the sandbox's is
        written by the CLI after start() returns)."""
        state_dir = self.options.state_dir
        kubeconfig = write_kubeconfig(state_dir / "monitoring" / "kubeconfig", self.api.access)
        self.monitoring = monitoring.Monitoring(state_dir, api_url, kubeconfig)
        await self.monitoring.start()
        log.info("monitoring started in %.1f s", self.monitoring.start_seconds or 0.0)

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
        """Monitoring, the AWS endpoint, kubelets (they stop every pod process), controllers,
        the cluster DNS, backing services, the API."""
        if self.monitoring is not None:
            await self.monitoring.stop()
        if self.aws is not None:
            await asyncio.to_thread(self.aws.stop)
        if self._aws_effects is not None:
            await self._aws_effects.stop()
        for task in self._kubelet_tasks.values():
            task.cancel()
        await asyncio.gather(*self._kubelet_tasks.values(), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dns.stop()
        if self.pod_network is not None:
            await self.pod_network.stop()
            self.ipam.finish_release(self.ipam.detached())
        if self.cgroups is not None:
            await self.cgroups.remove_all()
        self.store.cluster_ips.release_all()  # after the pod network: no rule names them now
        if self.backing is not None:
            await self.backing.stop()
        with contextlib.suppress(Exception):
            await self.api.stop()

    @property
    def ingress_sources(self) -> str:
        """The address the ingress controller connects to the pods from ('' without one)."""
        if self.backing is None:
            return ""
        return self.backing.nginx.upstream_bind or self.backing.nginx.listen_host

    @property
    def aws_url(self) -> str:
        return self.aws.url if self.aws is not None else ""

    @property
    def ingress_url(self) -> str:
        return self.backing.nginx.url if self.backing is not None else ""

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """The RabbitMQ nodes' AMQP URLs (none unless started `--with rabbitmq`)."""
        rabbitmq = self.backing.rabbitmq if self.backing is not None else None
        return rabbitmq.amqp_urls if rabbitmq is not None else ()

    @property
    def prometheus_url(self) -> str:
        """Prometheus's URL ('' unless started `--with monitoring`)."""
        return self.monitoring.prometheus_url if self.monitoring is not None else ""

    @property
    def alertmanager_url(self) -> str:
        """Alertmanager's URL ('' unless started `--with monitoring`)."""
        return self.monitoring.alertmanager_url if self.monitoring is not None else ""

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)
        return task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
