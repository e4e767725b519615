"""Control-plane durations: flags with the upstream defaults.

A test or the sandbox CLI may shorten them the way an operator would pass
`--node-monitor-grace-period` or `--horizontal-pod-autoscaler-sync-period`;
nothing here is a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ControlPlaneSettings:
    # kube-controller-manager
    node_monitor_period_seconds: float = 5.0
    node_monitor_grace_period_seconds: float = 50.0  # 1.32 default (was 40 s before)
    hpa_sync_period_seconds: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_downscale_stabilization_seconds: float = 300.0
    hpa_cpu_initialization_period_seconds: float = 300.0
    hpa_initial_readiness_delay_seconds: float = 30.0
    pdb_deletion_timeout_seconds: float = 120.0
    controller_resync_seconds: float = 30.0
    # kubelet
    node_status_update_frequency_seconds: float = 10.0
    node_lease_duration_seconds: float = 40.0
    container_backoff_initial_seconds: float = 10.0
    container_backoff_max_seconds: float = 300.0
    container_backoff_reset_seconds: float = 600.0
    metrics_resolution_seconds: float = 15.0
    # --cluster-dns / --cluster-domain: what a ClusterFirst pod's resolv.conf names. The
    # sandbox's cluster DNS (sandbox.infra.clusterdns) listens on the first address, port 53.
    cluster_dns: tuple[str, ...] = ("127.0.3.53",)
    cluster_domain: str = "cluster.local"
    # ingress-nginx --sync-rate-limit (cmd/nginx/flags.go, default 0.3): its sync queue is a
    # token bucket of one refilled at this rate, so an EndpointSlice change reaches nginx at
    # once after a quiet spell and up to 1/0.3 = 3.3 s late while others keep coming.
    ingress_sync_rate_limit: float = 0.3
    # API server
    default_toleration_seconds: int = 300  # --default-unreachable-toleration-seconds
    watch_history_events: int = 20_000
