"""The "ElastiCache" Redis cluster for real: six redis-server processes, three shards.

Each test runs on its own free 127.78.N.0/24 (not the sandbox's 127.0.3.x), so
that it neither meets a running sandbox nor another test run.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from sandbox import processes
from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.redis_cluster import (
    REDIS_CLI,
    REDIS_SERVER,
    RedisCluster,
    RedisNode,
    Role,
    parse_info,
)
from sandbox.infra.supervisor import (
    AddressInUseError,
    Endpoint,
    InfraError,
    NotReadyError,
    ensure_free,
)

pytestmark = pytest.mark.skipif(
    not (REDIS_SERVER.exists() and REDIS_CLI.exists()), reason="needs redis-server and redis-cli"
)

SLOTS = 16384

# shorter than the sandbox default (15 s, Redis's), so that the test takes seconds
NODE_TIMEOUT_MS = 3000


def free_hosts() -> list[str]:
    """Six addresses `127.78.N.20..25` with ports 6379 and 16379 free."""
    chooser = random.Random(os.getpid())
    for _ in range(50):
        hosts = [f"127.78.{chooser.randrange(1, 255)}.{20 + index}" for index in range(6)]
        try:
            ensure_free([Endpoint(h, p) for h in hosts for p in (6379, 16379)], "test")
        except AddressInUseError:
            continue
        return hosts
    raise RuntimeError("no free 127.78.N.0/24")


def key_per_slot() -> dict[int, str]:
    """One key for every hash slot."""
    keys: dict[int, str] = {}
    index = 0
    while len(keys) < SLOTS:
        key = f"session:{index}"
        keys.setdefault(key_slot(key.encode()), key)
        index += 1
    return keys


KEYS = list(dict(sorted(key_per_slot().items())).values())  # KEYS[n] hashes to slot n


@pytest.fixture(autouse=True)
def no_process_survives() -> Iterator[None]:
    yield
    survivors = [
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]
    assert not survivors, f"processes outlived the test: {survivors}"


async def cluster_state(endpoint: Endpoint) -> str:
    async with redis.asyncio.Redis(host=endpoint.host, port=endpoint.port) as client:
        info = await client.execute_command("CLUSTER", "INFO")
        return parse_info(info.decode())["cluster_state"]


async def write_all(client: ClusterClient) -> None:
    pipe = client.pipeline()
    for key in KEYS:
        pipe.set(key, f"value of {key}")
    await pipe.execute()


async def read_all(client: ClusterClient) -> list[str | None]:
    values = await client.mget_nonatomic(KEYS)
    return [None if value is None else value.decode() for value in values]


def check_layout(nodes: list[RedisNode]) -> None:
    assert sorted(node.role for node in nodes) == [Role.PRIMARY] * 3 + [Role.REPLICA] * 3
    assert len({node.endpoint for node in nodes}) == 6
    for shard in ("0001", "0002", "0003"):
        pair = [node for node in nodes if node.shard == shard]
        assert sorted(node.role for node in pair) == [Role.PRIMARY, Role.REPLICA]
        assert pair[0].endpoint.host != pair[1].endpoint.host
        assert pair[0].az != pair[1].az


def test_cluster_serves_every_slot_and_a_shard_fails_over(tmp_path: Path) -> None:
    seen_pids: list[int] = []

    async def main() -> None:
        hosts = free_hosts()
        cluster = RedisCluster(
            tmp_path,
            hosts=hosts,
            timeout=30.0,
            node_timeout_ms=NODE_TIMEOUT_MS,
            faults=(faults := HostFaults(table=f"hf_test_{hosts[0].replace('.', '_')}")),
        )
        await cluster.start()
        try:
            seen_pids.extend(cluster.process_ids())
            assert len(seen_pids) == 6
            nodes = cluster.nodes
            check_layout(nodes)
            assert [node.az for node in nodes] == [
                "us-west-2a",
                "us-west-2b",
                "us-west-2b",
                "us-west-2c",
                "us-west-2c",
                "us-west-2a",
            ]
            for endpoint in cluster.endpoints:
                assert await cluster_state(endpoint) == "ok"

            first = cluster.endpoints[0]
            client = ClusterClient(host=first.host, port=first.port)
            await write_all(client)
            expected = [f"value of {key}" for key in KEYS]
            assert await read_all(client) == expected

            old_primary, old_replica = cluster.primary_of("0002"), cluster.replica_of("0002")
            began = time.monotonic()
            messages = await cluster.failover("0002")
            took = time.monotonic() - began
            # the primary was silent until the cluster itself declared it failed
            assert took >= NODE_TIMEOUT_MS / 1000, f"the failover took only {took:.1f}s"
            assert messages == [
                "Test Failover API called for node group 0002",
                f"Failover from primary node {old_primary.name} to replica node"
                f" {old_replica.name} completed",
                f"Recovering cache nodes {old_primary.name}",
                f"Finished recovery for cache nodes {old_primary.name}",
            ]
            assert cluster.primary_of("0002").name == old_replica.name
            assert cluster.replica_of("0002").name == old_primary.name
            check_layout(cluster.nodes)
            assert [event.message for event in cluster.events][-4:] == messages
            assert await cluster.refresh() == cluster.nodes

            assert await read_all(client) == expected  # the old client follows MOVED
            await client.set(KEYS[SLOTS // 2], "written after the failover")  # slot 8192: 0002
            await client.aclose()
            fresh = ClusterClient(host=first.host, port=first.port)
            assert await fresh.get(KEYS[SLOTS // 2]) == b"written after the failover"
            await fresh.aclose()

            with pytest.raises(InfraError, match="no node group '0009'"):
                await cluster.failover("0009")
        finally:
            await cluster.stop()
            await faults.stop()
        assert cluster.process_ids() == []

    asyncio.run(main())
    assert all(processes.wait_gone(pid, None, 1.0) for pid in seen_pids)
    assert list((tmp_path / "pids").iterdir()) == []


def test_a_taken_address_fails_fast_and_starts_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        hosts = free_hosts()
        cluster = RedisCluster(tmp_path, hosts=hosts)
        blocker = await asyncio.start_server(lambda r, w: None, hosts[4], 16379)
        try:
            with pytest.raises(AddressInUseError, match=rf"{hosts[4]}:16379 is already in use"):
                await cluster.start()
        finally:
            blocker.close()
        assert cluster.process_ids() == []

    asyncio.run(main())


def test_a_server_that_does_not_come_up_is_named_with_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho '*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***'\nexit 1\n")
    broken.chmod(0o755)

    async def main() -> None:
        cluster = RedisCluster(tmp_path, hosts=free_hosts(), redis_server=broken, timeout=10)
        with pytest.raises(NotReadyError) as raised:
            await cluster.start()
        message = str(raised.value)
        assert "harmonyflow-redis-0001-001" in message
        assert "answering PING" in message
        assert "exited with code 1" in message
        assert "FATAL CONFIG FILE ERROR" in message
        assert cluster.process_ids() == []

    asyncio.run(main())


def test_redis_binaries_are_where_the_sandbox_expects() -> None:
    assert shutil.which("redis-server") == str(REDIS_SERVER)
