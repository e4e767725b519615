"""A Redis client resolved lazily: `RedisCluster` when the server is in cluster mode,
a plain client otherwise (`INFO cluster` decides). Redis being down at start-up is
normal: `client()` raises until it answers, and each caller decides what that means.

A small breaker keeps a dead Redis from costing every request a timeout: after a
failure, `available()` is False for `cooldown` seconds.

    >>> breaker_allows(failed_at=10.0, now=10.5, cooldown=1.0)
    False
    >>> breaker_allows(failed_at=None, now=10.5, cooldown=1.0)
    True
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from sandbox.images.session_state.config import RedisTarget

log = logging.getLogger("session_state.redis")
AnyRedis = Redis | RedisCluster


def breaker_allows(failed_at: float | None, now: float, cooldown: float) -> bool:
    return failed_at is None or now - failed_at >= cooldown


def client_options(timeout: float | None) -> dict[str, Any]:
    """The client's options: `timeout` bounds every command (`socket_timeout`) and every
    connect (`socket_connect_timeout`). `None` is redis-py's default, no bound at all:
    a command to a Redis whose packets are dropped then waits for TCP to give up
    (`no-request-timeout`, `no-redis-timeout`).

        >>> {k: v for k, v in client_options(None).items() if "timeout" in k}
        {'socket_timeout': None, 'socket_connect_timeout': None}
    """
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 5,
        "decode_responses": True,
    }


def cluster_enabled(info: dict[str, Any]) -> bool:
    """From `INFO cluster`: `{'cluster_enabled': 1}` in cluster mode."""
    return str(info.get("cluster_enabled", "0")) == "1"


class RedisConnector:
    def __init__(self, target: RedisTarget, timeout: float | None, cooldown: float = 1.0) -> None:
        self.target = target
        self.timeout = timeout  # None: no bound (`no-request-timeout`, `no-redis-timeout`)
        self.cooldown = cooldown
        self.mode = "unknown"
        self._client: AnyRedis | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None

    async def client(self) -> AnyRedis:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await self._resolve()
        return self._client

    async def _resolve(self) -> AnyRedis:
        plain = Redis.from_url(self.target.url, **client_options(self.timeout))
        try:
            info = await plain.info("cluster")
        except BaseException:
            await plain.aclose()
            raise
        if not cluster_enabled(info):
            self.mode = "standalone"
            return plain
        await plain.aclose()
        options = client_options(self.timeout)
        options.pop("health_check_interval")
        if self.timeout is not None:
            # One try: redis-py's cluster client retries a timed-out command three times,
            # refreshing its slot map from every node in between, so a silent Redis cost a
            # write 3.5-7 s against a 0.5 s timeout (dependency-partition showed it). The
            # breaker and the cache's repair queue are this service's retry.
            options["retry"] = Retry(NoBackoff(), 0)
        cluster = RedisCluster.from_url(self.target.url, **options)
        await cluster.initialize()
        self.mode = "cluster"
        log.info("redis %s is a cluster", self.target.describe())
        return cluster

    def available(self) -> bool:
        return breaker_allows(self._failed_at, time.monotonic(), self.cooldown)

    def failed(self) -> None:
        self._failed_at = time.monotonic()

    def succeeded(self) -> None:
        self._failed_at = None

    async def ping(self, timeout: float) -> None:
        client = await asyncio.wait_for(self.client(), timeout)
        await asyncio.wait_for(client.ping(), timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (RedisError, RedisClusterException, OSError) as error:
                log.debug("closing redis: %s", error)
