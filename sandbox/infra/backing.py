"""The sandbox's backing services, started before the pods that need them.

"RDS" `harmonyflow-db` (PostgreSQL primary + synchronous standby behind its
endpoint proxy), "ElastiCache" `harmonyflow-redis` (a 6-node Redis cluster) and
the nginx ingress. They start concurrently; if one fails, the others are
stopped before the error goes up, so a failed `up` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sandbox.infra.nginx_process import NginxProcess
from sandbox.infra.postgres import RdsInstance
from sandbox.infra.redis_cluster import RedisCluster

log = logging.getLogger(__name__)


class BackingServices:
    def __init__(self, state_dir: Path, extras: frozenset[str] = frozenset()) -> None:
        self.extras = extras
        self.rds = RdsInstance(state_dir)
        self.redis = RedisCluster(state_dir)
        self.nginx = NginxProcess(state_dir)

    async def start(self) -> None:
        results = await asyncio.gather(
            self.rds.start(), self.redis.start(), self.nginx.start(), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        results = await asyncio.gather(
            self.nginx.stop(), self.redis.stop(), self.rds.stop(), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.error("stopping a backing service failed: %r", result)
