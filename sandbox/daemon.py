"""The sandbox daemon (`python -m sandbox serve`): the one place where its parts are put
together.

`sandbox.kube.controlplane.ControlPlane` is the Kubernetes side (store, API server,
controllers, kubelets). Around it this module adds what EKS adds around a cluster, in the
order they must start: the cluster DNS (CoreDNS, with its Services' names), the pod
network (the VPC CNI and kube-proxy, where the machine allows it), the backing services
(the "RDS" PostgreSQL pair, the "ElastiCache" Redis cluster, the nginx ingress and its
controller, optional RabbitMQ), monitoring (`--with monitoring`) and the AWS endpoint.
Nothing below this module imports it: `sandbox.kube` knows neither `sandbox.infra` nor
`sandbox.aws`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.aws.effects import ControlPlaneEffects, SandboxParts
from sandbox.aws.endpoint import AwsEndpoint
from sandbox.aws.inventory import REGION
from sandbox.cni.controller import PodNetworkController
from sandbox.cni.faults import NetemParams
from sandbox.cni.infrapeers import infrastructure_peers
from sandbox.cni.netem_process import NetemWorker, start_worker
from sandbox.cni.podnetwork import PodNetwork
from sandbox.cni.zones import ZoneIsolation
from sandbox.infra import monitoring
from sandbox.infra.backing import BackingServices
from sandbox.infra.clusterdns import DEFAULT_ENDPOINT, DNS_PORT, ClusterDns
from sandbox.infra.extras import MONITORING
from sandbox.infra.ingress_controller import IngressController
from sandbox.infra.rds_status import RdsTimings
from sandbox.infra.servicedns import ServiceDnsController
from sandbox.infra.supervisor import Endpoint
from sandbox.kube.clock import Clock
from sandbox.kube.controlplane import AddOn, ControlPlane, ControlPlaneOptions
from sandbox.kube.kubeconfig import write_kubeconfig
from sandbox.kube.kubelet.cgroups import sandbox_id
from sandbox.kube.kubelet.serviceaccount import TokenIssuer
from sandbox.kube.podidentity import PodIdentitySettings
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.state import SandboxState, kubeconfig_path

log = logging.getLogger(__name__)


def cluster_dns_endpoint(settings: ControlPlaneSettings) -> Endpoint:
    """Where the cluster DNS listens: the kubelets' first --cluster-dns address, port 53
    (a resolv.conf cannot name a port)."""
    return Endpoint(settings.cluster_dns[0], DNS_PORT) if settings.cluster_dns else DEFAULT_ENDPOINT


@dataclass(frozen=True)
class SandboxOptions:
    cluster: ControlPlaneOptions
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

    @property
    def state_dir(self) -> Path:
        return self.cluster.state_dir

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
    ) -> SandboxOptions:
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
            cluster=ControlPlaneOptions(state_dir=state_dir, api_port=api_port, settings=settings),
            backing_services=backing_services,
            aws_endpoint=True,
            extras=extras,
            rds_timings=rds_timings or RdsTimings(),
        )


class Sandbox:
    """The control plane with the cluster DNS, the pod network, the backing services,
    monitoring and the AWS endpoint around it."""

    def __init__(
        self,
        options: SandboxOptions,
        clock: Clock | None = None,
        token_issuer: TokenIssuer | None = None,
    ) -> None:
        self.options = options
        self.plane = ControlPlane(options.cluster, clock, token_issuer)
        state_dir, cgroups = options.state_dir, self.plane.cgroups
        self.pod_network = (
            PodNetwork(sandbox_id(state_dir), self._start_netem_worker)
            if cgroups is not None and PodNetwork.available()
            else None
        )
        # its rules are by address: a released address waits until they are gone (ipam)
        self.plane.ipam.defer_release = self.pod_network is not None
        # the zones AWS FIS's disrupt-connectivity cuts off (sandbox.aws.effects sets them)
        self.zone_isolation = ZoneIsolation()
        # kube-system's CoreDNS: there even without backing services; they register their
        # endpoint names in it (sandbox.dns.set(name, addresses)).
        self.dns = ClusterDns(cluster_dns_endpoint(options.cluster.settings))
        self.backing: BackingServices | None = (
            BackingServices(
                state_dir, options.extras, rds_timings=options.rds_timings, dns=self.dns
            )
            if options.backing_services
            else None
        )
        self.aws: AwsEndpoint | None = None
        self.monitoring: monitoring.Monitoring | None = None
        self._aws_effects: ControlPlaneEffects | None = None

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

    def add_ons(self) -> list[AddOn]:
        """The controllers EKS's add-ons run: the ingress controller, the pod network
        (woken by the zones FIS cuts off) and CoreDNS's kubernetes plugin."""
        plane = self.plane
        store, clock, settings = plane.store, plane.clock, self.options.cluster.settings
        add_ons: list[AddOn] = []
        if self.backing is not None:
            add_ons.append(AddOn(IngressController(store, clock, settings, self.backing.nginx)))
        if self.pod_network is not None and plane.cgroups is not None:
            # the cluster DNS and the ingress controller, as NetworkPolicy sees them on EKS
            peers = infrastructure_peers(
                self.dns.endpoint.host,
                self.backing.nginx.upstream_bind if self.backing is not None else None,
            )
            network = PodNetworkController(
                store,
                clock,
                self.pod_network,
                plane.cgroups,
                self.dns,
                self._resolve,
                plane.ipam,
                infrastructure=peers,
                zone_isolation=self.zone_isolation,
            )
            add_ons.append(AddOn(network, wake=self.zone_isolation.subscribe))
        # CoreDNS's kubernetes plugin: the Services' names in the cluster DNS
        add_ons.append(AddOn(ServiceDnsController(store, self.dns, settings.cluster_domain)))
        return add_ons

    async def start(self) -> str:
        await self.dns.start()  # first: a taken address fails the start with nothing running
        self.plane.install_defaults()
        if self.backing is not None:
            await self.backing.start()
        url = await self.plane.serve_api()
        if self.backing is not None:
            rds = self.backing.rds
            self.plane.api.replication_lag = lambda: monitoring.replication_lag(rds)
            if MONITORING in self.options.extras:
                await self._start_monitoring(url)
        self.plane.run(self.add_ons())
        if self.options.aws_endpoint:
            await self._start_aws()
        return url

    async def _start_monitoring(self, api_url: str) -> None:
        """Prometheus and Alertmanager, with a kubeconfig of their own (the sandbox's is
        written by the CLI after start() returns)."""
        state_dir = self.options.state_dir
        access = self.plane.api.access
        kubeconfig = write_kubeconfig(state_dir / "monitoring" / "kubeconfig", access)
        self.monitoring = monitoring.Monitoring(state_dir, api_url, kubeconfig)
        await self.monitoring.start()
        log.info("monitoring started in %.1f s", self.monitoring.start_seconds or 0.0)

    async def _start_aws(self) -> None:
        plane = self.plane
        parts = SandboxParts(
            nodes=plane.options.nodes,
            kubelets=plane.kubelets,
            clock=plane.clock,
            tokens=plane.api.tokens,
            backing=self.backing,
            monitoring=self.monitoring,
            pod_network=self.pod_network,
            zone_isolation=self.zone_isolation,
        )
        self._aws_effects = ControlPlaneEffects(parts, asyncio.get_running_loop())
        self.aws = AwsEndpoint(self._aws_effects)
        await asyncio.to_thread(self.aws.start)
        plane.store.pod_identity = PodIdentitySettings(REGION, self.aws.url)

    async def stop(self) -> None:
        """Monitoring, the AWS endpoint, kubelets (they stop every pod process), controllers,
        the cluster DNS, the pod network, backing services, the API."""
        if self.monitoring is not None:
            await self.monitoring.stop()
        if self.aws is not None:
            await asyncio.to_thread(self.aws.stop)
        if self._aws_effects is not None:
            await self._aws_effects.stop()
        await self.plane.stop_workloads()
        await self.dns.stop()
        if self.pod_network is not None:
            await self.pod_network.stop()
            self.plane.ipam.finish_release(self.plane.ipam.detached())
        await self.plane.release_host()
        if self.backing is not None:
            await self.backing.stop()
        await self.plane.stop_api()

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


async def serve(options: SandboxOptions) -> None:
    """Run the sandbox until SIGTERM or SIGINT, its state file written while it serves."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signo in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signo, stop.set)
    sandbox = Sandbox(options)
    try:
        url = await sandbox.start()
        kubeconfig = write_kubeconfig(kubeconfig_path(options.state_dir), sandbox.plane.api.access)
        SandboxState(
            os.getpid(),
            url,
            str(kubeconfig),
            time.time(),
            ingress_url=sandbox.ingress_url,
            ingress_sources=sandbox.ingress_sources,
            aws_url=sandbox.aws_url,
            amqp_urls=sandbox.amqp_urls,
            prometheus_url=sandbox.prometheus_url,
            alertmanager_url=sandbox.alertmanager_url,
        ).write(options.state_dir)
        logging.info("sandbox serving at %s", url)
        await stop.wait()
    finally:
        logging.info("sandbox stopping")
        await sandbox.stop()
        (options.state_dir / "state.json").unlink(missing_ok=True)
