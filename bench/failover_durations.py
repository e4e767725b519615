"""Dependency failovers, measured against their configured durations.

    .venv/bin/python bench/failover_durations.py [--rds 10,30,60] [--redis-node-timeout-ms 15000]

For each configured RDS failover duration an "RDS" pair starts on its own loopback
subnet (never the sandbox's 127.0.3.x) and three writers insert rows through the
endpoint's current address, with 1 s connect and query timeouts, as the pods do. The
longest pause between acknowledged writes is the unavailability a client measured;
the script prints it next to the configured duration, and the ratio. Then a Redis
cluster fails over one shard's silenced primary and the script prints how long that
took against `cluster-node-timeout`. It never asserts: tests/sandbox/infra/test_infra_rds.py
holds the RDS figure to +-20 %.

Needs root, PostgreSQL 15, redis-server and nft (what `make setup` installs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.postgres import PgNodeSpec, RdsInstance, read_db_password
from sandbox.infra.rds_status import RdsTimings
from sandbox.infra.redis_cluster import RedisCluster
from sandbox.infra.supervisor import Endpoint

CLIENT_TIMEOUT = 1.0
WRITERS = 3


class Records:
    """The endpoint's record as the cluster DNS would hold it."""

    def __init__(self) -> None:
        self.address = ""

    def set(self, name: str, addresses: Sequence[str], ttl: int = 5) -> None:
        self.address = next(iter(addresses))


async def writer(records: Records, port: int, stop: asyncio.Event, acks: list[float]) -> None:
    password = read_db_password()
    connection: asyncpg.Connection | None = None
    while not stop.is_set():
        try:
            if connection is None:
                connection = await asyncpg.connect(
                    host=records.address,
                    port=port,
                    user="harmonyflow",
                    password=password,
                    database="harmonyflow",
                    timeout=CLIENT_TIMEOUT,
                    command_timeout=CLIENT_TIMEOUT,
                )
            await connection.execute("INSERT INTO bench DEFAULT VALUES")
            acks.append(time.monotonic())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if connection is not None:
                connection.terminate()
            connection = None
            await asyncio.sleep(0.05)
    if connection is not None:
        connection.terminate()


async def rds_failover(configured: float, prefix: str) -> float:
    records = Records()
    with tempfile.TemporaryDirectory() as state:
        db = RdsInstance(
            Path(state),
            nodes=(
                PgNodeSpec("a", Endpoint(f"{prefix}.11", 5432), "us-west-2a"),
                PgNodeSpec("b", Endpoint(f"{prefix}.12", 5432), "us-west-2b"),
            ),
            timings=RdsTimings(failover_seconds=configured, reboot_seconds=1.0),
            dns=records,
            faults=HostFaults(table=f"hf_bench_{os.getpid()}"),
        )
        await db.start()
        try:
            setup = await asyncpg.connect(
                host=records.address,
                port=db.port,
                user="harmonyflow",
                password=read_db_password(),
                database="harmonyflow",
            )
            await setup.execute("CREATE TABLE bench (id serial PRIMARY KEY)")
            await setup.close()
            stop = asyncio.Event()
            acks: list[list[float]] = [[] for _ in range(WRITERS)]
            tasks = [asyncio.create_task(writer(records, db.port, stop, a)) for a in acks]
            await asyncio.sleep(2.0)
            await db.failover()
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            await db.stop()
    return max(max(b - a for a, b in itertools.pairwise(times)) for times in acks)


async def redis_failover(node_timeout_ms: int, prefix: str) -> float:
    with tempfile.TemporaryDirectory() as state:
        cluster = RedisCluster(
            Path(state),
            hosts=[f"{prefix}.{20 + index}" for index in range(6)],
            node_timeout_ms=node_timeout_ms,
            faults=HostFaults(table=f"hf_bench_{os.getpid()}"),
        )
        await cluster.start()
        try:
            began = time.monotonic()
            await cluster.failover("0002")
            return time.monotonic() - began
        finally:
            await cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rds", default="10,30,60", help="failover seconds to try")
    parser.add_argument("--redis-node-timeout-ms", type=int, default=15000)
    arguments = parser.parse_args()
    prefix = f"127.81.{os.getpid() % 250 + 1}"
    print(f"{'fault':<34}{'configured':>12}{'measured':>12}{'ratio':>8}")
    for text in arguments.rds.split(","):
        configured = float(text)
        measured = asyncio.run(rds_failover(configured, prefix))
        print(
            f"{'RDS failover (write gap)':<34}{configured:>11.1f}s{measured:>11.1f}s"
            f"{measured / configured:>8.2f}"
        )
    node_timeout = arguments.redis_node_timeout_ms / 1000
    measured = asyncio.run(redis_failover(arguments.redis_node_timeout_ms, prefix))
    print(
        f"{'ElastiCache failover (rejoined)':<34}{node_timeout:>11.1f}s{measured:>11.1f}s"
        f"{measured / node_timeout:>8.2f}"
    )


if __name__ == "__main__":
    main()
