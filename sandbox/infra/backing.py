"""The sandbox's backing services, started before the pods that need them.

"RDS" `harmonyflow-db` (PostgreSQL primary + synchronous standby behind its
DNS name), "ElastiCache" `harmonyflow-redis` (a 6-node Redis cluster) and
the nginx ingress; with `--with rabbitmq` also the 3-node RabbitMQ cluster
(sandbox/infra/rabbitmq_cluster.py). They start concurrently; if one fails, the others are
stopped before the error goes up, so a failed `up` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sandbox.infra.clusterdns import NameRecords
from sandbox.infra.extras import RABBITMQ
from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.nginx_process import NginxProcess
from sandbox.infra.postgres import RdsInstance
from sandbox.infra.rabbitmq_cluster import RabbitmqCluster
from sandbox.infra.rds_status import DEFAULT_TIMINGS, RdsTimings
from sandbox.infra.redis_cluster import RedisCluster

log = logging.getLogger(__name__)


class BackingServices:
    def __init__(
        self,
        state_dir: Path,
        extras: frozenset[str] = frozenset(),
        *,
        rds_timings: RdsTimings = DEFAULT_TIMINGS,
        dns: NameRecords | None = None,
    ) -> None:
        self.extras = extras
        # one nft table for every silenced host (RDS's and ElastiCache's failed primaries)
        self.faults = HostFaults()
        self.rds = RdsInstance(state_dir, timings=rds_timings, dns=dns, faults=self.faults)
        self.redis = RedisCluster(state_dir, faults=self.faults, dns=dns)
        self.nginx = NginxProcess(state_dir)
        self.rabbitmq: RabbitmqCluster | None = (
            RabbitmqCluster(state_dir) if RABBITMQ in extras else None
        )

    async def start(self) -> None:
        starts = [self.rds.start(), self.redis.start(), self.nginx.start()]
        if self.rabbitmq is not None:
            starts.append(self.rabbitmq.start())
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        stops = [self.nginx.stop(), self.redis.stop(), self.rds.stop()]
        if self.rabbitmq is not None:
            stops.append(self.rabbitmq.stop())
        results = await asyncio.gather(*stops, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("stopping a backing service failed: %r", result)
