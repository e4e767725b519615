"""`python -m sandbox serve --state-dir DIR`: the sandbox daemon's command line.

Serves (`sandbox.daemon.serve`) until SIGTERM or SIGINT, then stops every pod process
and the API server before it exits. Started and stopped by `resilience sandbox up | down`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
from pathlib import Path

from sandbox.daemon import SandboxOptions, serve
from sandbox.infra.extras import EXTRAS, parse_extras
from sandbox.infra.rds_status import ConnectionFate, RdsTimings
from sandbox.state import ENV_VAR


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the sandbox control plane until signalled")
    run.add_argument("--state-dir", required=True, type=Path)
    run.add_argument("--api-port", type=int, default=0)
    run.add_argument("--node-monitor-grace-period", type=float, default=None)
    run.add_argument("--hpa-sync-period", type=float, default=None)
    # kube-apiserver --default-not-ready-toleration-seconds and
    # --default-unreachable-toleration-seconds, set together
    run.add_argument("--default-unreachable-toleration-seconds", type=int, default=None)
    # ingress-nginx --sync-rate-limit: syncs per second of the ingress (default 0.3)
    run.add_argument("--sync-rate-limit", type=float, default=None)
    # "RDS" timings (sandbox/infra/rds_status.py RdsTimings says where each default is from)
    defaults = RdsTimings()
    for name, default in (
        ("failover", defaults.failover_seconds),
        ("reboot", defaults.reboot_seconds),
        ("stop", defaults.stop_seconds),
        ("start", defaults.start_seconds),
    ):
        run.add_argument(f"--rds-{name}-seconds", type=float, default=default)
    run.add_argument(
        "--rds-failover-connections",
        choices=[fate.value for fate in ConnectionFate],
        default=defaults.failover_connections.value,
    )
    run.add_argument(
        "--no-backing-services",
        action="store_true",
        help="no PostgreSQL, Redis or nginx: the Kubernetes side alone",
    )
    run.add_argument(
        "--with",
        dest="extras",
        action="append",
        choices=EXTRAS,
        default=[],
        help="an optional part of the seed to run too (repeatable)",
    )
    # kubelet --cluster-dns: what ClusterFirst pods resolve with, and where the cluster DNS
    # listens (port 53); a second control plane beside a running sandbox needs its own
    run.add_argument(
        "--cluster-dns",
        dest="cluster_dns",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="cluster DNS address (repeatable; default 127.0.3.53)",
    )
    arguments = parser.parse_args()
    for address in arguments.cluster_dns or ():
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            parser.error(f"--cluster-dns {address!r}: expected an IPv4 address")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ[ENV_VAR] = str(arguments.state_dir)
    options = SandboxOptions.from_flags(
        state_dir=arguments.state_dir.resolve(),
        api_port=arguments.api_port,
        node_monitor_grace_period=arguments.node_monitor_grace_period,
        hpa_sync_period=arguments.hpa_sync_period,
        default_toleration_seconds=arguments.default_unreachable_toleration_seconds,
        sync_rate_limit=arguments.sync_rate_limit,
        backing_services=not arguments.no_backing_services,
        extras=parse_extras(arguments.extras),
        cluster_dns=tuple(arguments.cluster_dns) if arguments.cluster_dns else None,
        rds_timings=RdsTimings(
            failover_seconds=arguments.rds_failover_seconds,
            reboot_seconds=arguments.rds_reboot_seconds,
            stop_seconds=arguments.rds_stop_seconds,
            start_seconds=arguments.rds_start_seconds,
            failover_connections=ConnectionFate(arguments.rds_failover_connections),
        ),
    )
    asyncio.run(serve(options))


if __name__ == "__main__":
    main()
