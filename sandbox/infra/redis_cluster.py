"""The "ElastiCache" replication group `harmonyflow-redis`: a Redis cluster on loopback.

Six redis-server processes on 127.0.3.20..25:6379 (cluster bus 16379), three
shards ("node groups" 0001..0003) of a primary and a replica, created with
`redis-cli --cluster create ... --cluster-replicas 1`. Each node keeps its
address and its AZ (us-west-2a, b, c round-robin over the addresses) for its
whole life; a failover swaps the roles inside a shard, never the membership.
The plan puts every shard's primary and replica on different addresses and in
different AZs, and creation checks (and if need be fixes) that the cluster
matches it.

`RedisCluster.failover(shard)` is ElastiCache's TestFailover for one node group,
which AWS runs as a failure of the shard's primary: its address goes silent
(nftables drops its packets both ways, `hostfaults.py`; every node also sends
from its own address, `bind-source-addr`, so its outgoing bus links go silent
too). Nothing is commanded: the other primaries mark it failing after
`cluster-node-timeout` (15 s, Redis's default, which ElastiCache keeps), the
replica wins the election and takes the slots, and clients meet timeouts, then
`MOVED` to the new primary. The old primary then answers again, learns the newer
configuration and rejoins as the replica ("Recovering cache nodes", "Finished
recovery" in ElastiCache's events).

The pure parts (plan, configuration, parsing `CLUSTER NODES`, checks of a
topology) are at the top; process and network I/O at the bottom.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

import redis.asyncio
import redis.exceptions

from sandbox.infra.clusterdns import NameRecords
from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.supervisor import (
    Endpoint,
    InfraError,
    NotReadyError,
    ServerProcess,
    ensure_free,
    run_command,
    wait_until,
    with_log,
)
from sandbox.kube.clock import utc_now
from sandbox.state import pids_dir

log = logging.getLogger(__name__)

REDIS_SERVER = Path("/usr/bin/redis-server")
REDIS_CLI = Path("/usr/bin/redis-cli")
REPLICATION_GROUP = "harmonyflow-redis"
# ElastiCache's shape for a cluster-mode group: <group>.<6 characters>.clustercfg.<region>...;
# it resolves to the nodes' addresses (the sandbox's cluster DNS answers it).
CONFIGURATION_ENDPOINT = "harmonyflow-redis.hfsbx0.clustercfg.usw2.cache.amazonaws.com"
DEFAULT_HOSTS = tuple(f"127.0.3.{20 + index}" for index in range(6))
DEFAULT_PORT = 6379
BUS_PORT_OFFSET = 10000
AZS = ("us-west-2a", "us-west-2b", "us-west-2c")
# redis.conf's default cluster-node-timeout (Redis Cluster specification, "Failure
# detection"): a silent primary is failed over after it plus an election (about 1-2 s).
NODE_TIMEOUT_MS = 15000
STOP_TIMEOUT_SECONDS = 10.0
CLIENT_TIMEOUT_SECONDS = 5.0


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"


@dataclass(frozen=True)
class RedisNodeSpec:
    """One node: its ElastiCache cache cluster id (`harmonyflow-redis-0001-002`) and place."""

    name: str
    endpoint: Endpoint
    az: str
    shard: str

    @property
    def bus(self) -> Endpoint:
        return Endpoint(self.endpoint.host, self.endpoint.port + BUS_PORT_OFFSET)


@dataclass(frozen=True)
class ShardPlan:
    """A node group as created: which node starts as primary and which as replica."""

    shard: str
    primary: RedisNodeSpec
    replica: RedisNodeSpec

    @property
    def members(self) -> tuple[RedisNodeSpec, RedisNodeSpec]:
        return (self.primary, self.replica)


@dataclass(frozen=True)
class RedisNode:
    """A node as it is now (what `nodes` and DescribeReplicationGroups report)."""

    name: str
    endpoint: Endpoint
    role: Role
    shard: str
    az: str


class RedisEvent(NamedTuple):
    time: datetime
    message: str


# --- pure: plan and configuration ------------------------------------------------------


def plan_shards(
    hosts: Sequence[str] = DEFAULT_HOSTS,
    port: int = DEFAULT_PORT,
    *,
    group: str = REPLICATION_GROUP,
    azs: Sequence[str] = AZS,
) -> tuple[ShardPlan, ...]:
    """Shards of primary + replica over `hosts`; AZs round-robin over the hosts.

    The first half of the hosts are the primaries. Shard k takes as replica the
    first unused host of the second half, counting from its (k + 1)-th, that is
    in another AZ. With the defaults: 0001 = .20 (2a) + .24 (2b),
    0002 = .21 (2b) + .25 (2c), 0003 = .22 (2c) + .23 (2a).
    """
    if len(hosts) < 6 or len(hosts) % 2:
        raise ValueError(f"a cluster needs an even number of at least 6 hosts, not {len(hosts)}")
    count = len(hosts) // 2
    az_of = {host: azs[index % len(azs)] for index, host in enumerate(hosts)}
    primaries, replicas = list(hosts[:count]), list(hosts[count:])
    unused = set(replicas)
    shards: list[ShardPlan] = []
    for index, primary in enumerate(primaries):
        shard = f"{index + 1:04d}"
        candidates = [replicas[(index + 1 + step) % count] for step in range(count)]
        free = [host for host in candidates if host in unused]
        replica = next((host for host in free if az_of[host] != az_of[primary]), free[0])
        unused.discard(replica)
        shards.append(
            ShardPlan(
                shard,
                RedisNodeSpec(
                    f"{group}-{shard}-001", Endpoint(primary, port), az_of[primary], shard
                ),
                RedisNodeSpec(
                    f"{group}-{shard}-002", Endpoint(replica, port), az_of[replica], shard
                ),
            )
        )
    problems = placement_problems(shards)
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(shards)


def placement_problems(shards: Sequence[ShardPlan]) -> list[str]:
    """What is wrong with a plan: a node used twice, a shard on one address or in one AZ."""
    problems: list[str] = []
    seen: set[Endpoint] = set()
    for shard in shards:
        for member in shard.members:
            if member.endpoint in seen:
                problems.append(f"{member.endpoint} is in more than one place")
            seen.add(member.endpoint)
        primary, replica = shard.members
        if primary.endpoint.host == replica.endpoint.host:
            problems.append(
                f"shard {shard.shard}: primary and replica share {primary.endpoint.host}"
            )
        if primary.az == replica.az:
            problems.append(f"shard {shard.shard}: primary and replica are both in {primary.az}")
    return problems


def create_order(shards: Sequence[ShardPlan]) -> list[RedisNodeSpec]:
    """The node order for `redis-cli --cluster create --cluster-replicas 1` giving the plan.

    redis-cli makes the first n nodes primaries and, with every node on its own
    address, hands the others out rotated by one (the first given goes to the
    last primary). Creation still checks the outcome and moves replicas if needed.
    """
    replicas = [shard.replica for shard in shards]
    return [shard.primary for shard in shards] + replicas[-1:] + replicas[:-1]


def render_redis_conf(node: RedisNodeSpec, directory: Path, node_timeout_ms: int) -> str:
    """redis.conf for one node: its own address only, cluster mode, AOF, logs to stdout."""
    host, port = node.endpoint.host, node.endpoint.port
    lines = [
        f"# {node.name} ({node.az}) - rendered by sandbox/infra/redis_cluster.py",
        f"bind {host}",
        # Outgoing links (bus, replication) leave from the node's address, so that a
        # silenced node is cut off both ways, as a failed host is.
        f"bind-source-addr {host}",
        f"port {port}",
        "protected-mode no",
        "daemonize no",
        'logfile ""',
        f"dir {directory}",
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {node_timeout_ms}",
        f"cluster-port {node.bus.port}",
        # The bus and replication connect from 127.0.0.1: announce the node's own address.
        f"cluster-announce-ip {host}",
        f"replica-announce-ip {host}",
        "appendonly yes",
        "appendfsync everysec",
        "repl-diskless-sync-delay 0",
        'save ""',
        "",
    ]
    return "\n".join(lines)


# --- pure: the cluster as the nodes see it ---------------------------------------------


@dataclass(frozen=True)
class ClusterNodeView:
    """One line of `CLUSTER NODES`."""

    node_id: str
    endpoint: Endpoint
    flags: frozenset[str]
    primary_id: str | None
    connected: bool
    slots: tuple[str, ...]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> list[ClusterNodeView]:
    """`<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`"""
    views: list[ClusterNodeView] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        host, _, port = address.rpartition(":")
        views.append(
            ClusterNodeView(
                node_id=fields[0],
                endpoint=Endpoint(host, int(port) if port.isdigit() else 0),
                flags=frozenset(fields[2].split(",")),
                primary_id=None if fields[3] == "-" else fields[3],
                connected=fields[7] == "connected",
                slots=tuple(fields[8:]),
            )
        )
    return views


def parse_info(text: str) -> dict[str, str]:
    """`key:value` lines of `INFO` / `CLUSTER INFO` (section headers skipped)."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def observed_roles(
    shards: Sequence[ShardPlan], views: Sequence[ClusterNodeView]
) -> dict[str, Role] | None:
    """Each node's role, if `views` show every shard as one primary with its partner replicating it.

    None while the topology is anything else (a node unknown, failing, a shard
    with two primaries, a replica of a node outside its shard...).
    """
    by_endpoint = {view.endpoint: view for view in views}
    roles: dict[str, Role] = {}
    for shard in shards:
        pair = [by_endpoint.get(member.endpoint) for member in shard.members]
        if any(view is None or view.failing for view in pair):
            return None
        first, second = (view for view in pair if view is not None)
        for primary, replica in ((first, second), (second, first)):
            if primary.is_primary and replica.is_replica and replica.primary_id == primary.node_id:
                roles[shard.members[pair.index(primary)].name] = Role.PRIMARY
                roles[shard.members[pair.index(replica)].name] = Role.REPLICA
                break
        else:
            return None
    return roles


def misplaced_replicas(
    shards: Sequence[ShardPlan], views: Sequence[ClusterNodeView]
) -> list[tuple[RedisNodeSpec, str]]:
    """(replica, id of the primary it should follow) for planned replicas following another node."""
    by_endpoint = {view.endpoint: view for view in views}
    fixes: list[tuple[RedisNodeSpec, str]] = []
    for shard in shards:
        primary = by_endpoint.get(shard.primary.endpoint)
        replica = by_endpoint.get(shard.replica.endpoint)
        if primary is None or replica is None:
            continue
        if replica.primary_id is not None and replica.primary_id != primary.node_id:
            fixes.append((shard.replica, primary.node_id))
    return fixes


def failover_messages(shard: str, old_primary: str, new_primary: str) -> list[str]:
    """The events ElastiCache emits for TestFailover of one node group."""
    return [
        f"Test Failover API called for node group {shard}",
        f"Failover from primary node {old_primary} to replica node {new_primary} completed",
        f"Recovering cache nodes {old_primary}",
        f"Finished recovery for cache nodes {old_primary}",
    ]


# --- I/O -------------------------------------------------------------------------------


async def _command(client: redis.asyncio.Redis, *args: str) -> str:
    """A command's reply as text (`INFO`'s parsed reply is turned back into `key:value` lines)."""
    execute: Callable[..., Awaitable[object]] = client.execute_command
    reply = await execute(*args)
    if isinstance(reply, dict):
        return "\n".join(f"{key}:{value}" for key, value in reply.items())
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class RedisCluster:
    """`harmonyflow-redis`: `await RedisCluster(state_dir).start()`; `failover("0002")`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        group: str = REPLICATION_GROUP,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        port: int = DEFAULT_PORT,
        redis_server: Path = REDIS_SERVER,
        redis_cli: Path = REDIS_CLI,
        timeout: float = 60.0,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
        faults: HostFaults | None = None,
        dns: NameRecords | None = None,
        configuration_endpoint: str = CONFIGURATION_ENDPOINT,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.group = group
        self.shards = plan_shards(hosts, port, group=group)
        self.timeout = timeout
        self._state_dir = state_dir
        self._redis_server, self._redis_cli = redis_server, redis_cli
        self._node_timeout_ms = node_timeout_ms
        self._faults = faults if faults is not None else HostFaults()
        self._dns = dns
        self.configuration_endpoint = configuration_endpoint
        self._now = now
        self._specs = [member for shard in self.shards for member in shard.members]
        self._processes: dict[str, ServerProcess] = {}
        self._roles = self._planned_roles()
        self._events: list[RedisEvent] = []
        self._lock = asyncio.Lock()

    # -- what DescribeReplicationGroups / DescribeEvents would show --

    @property
    def nodes(self) -> list[RedisNode]:
        """Every node with its role as last observed (after start, failover or refresh)."""
        return [
            RedisNode(spec.name, spec.endpoint, self._roles[spec.name], spec.shard, spec.az)
            for spec in self._specs
        ]

    @property
    def events(self) -> list[RedisEvent]:
        return list(self._events)

    @property
    def endpoints(self) -> list[Endpoint]:
        """Where a cluster client may start (the first is the pods' REDIS_URL)."""
        return [spec.endpoint for spec in self._specs]

    @property
    def log_dir(self) -> Path:
        return self._state_dir / "redis"

    def primary_of(self, shard: str) -> RedisNode:
        return next(n for n in self.nodes if n.shard == shard and n.role is Role.PRIMARY)

    def replica_of(self, shard: str) -> RedisNode:
        return next(n for n in self.nodes if n.shard == shard and n.role is Role.REPLICA)

    def process_ids(self) -> list[int]:
        return [process.pid for process in self._processes.values()]

    # -- lifecycle --

    async def start(self) -> None:
        """Start the six servers and create the cluster; returns once `cluster_state:ok`."""
        async with self._lock:
            ensure_free(
                [endpoint for spec in self._specs for endpoint in (spec.endpoint, spec.bus)],
                self.group,
            )
            try:
                for spec in self._specs:
                    await self._start_node(spec)
                await self._wait_all_answering()
                await self._create()
            except BaseException:
                await self._stop_all()
                raise
            if self._dns is not None:
                hosts = [spec.endpoint.host for spec in self._specs]
                self._dns.set(self.configuration_endpoint, hosts)
            self._record(f"Replication group {self.group} created")

    async def stop(self) -> None:
        """SIGTERM every server (Redis writes its AOF and exits), SIGKILL after a bound."""
        async with self._lock:
            await self._stop_all()
            await self._faults.stop()

    async def failover(self, shard: str) -> list[str]:
        """TestFailover of node group `shard`: its replica takes over; returns the events."""
        async with self._lock:
            if shard not in {plan.shard for plan in self.shards}:
                raise InfraError(f"{self.group} has no node group {shard!r}")
            await self._refresh()
            old, new = self.primary_of(shard), self.replica_of(shard)
            messages = failover_messages(shard, old.name, new.name)
            self._record(messages[0])
            await self._faults.silence(old.endpoint.host)
            try:
                await self._wait(
                    lambda: self._promoted(new, old),
                    f"{new.name} elected for node group {shard} while {old.name} is silent",
                    self.timeout + self._node_timeout_ms / 1000,
                )
            finally:
                await self._faults.restore(old.endpoint.host)
            # what DescribeReplicationGroups shows from now on, while the old one rejoins
            self._roles = {**self._roles, new.name: Role.PRIMARY, old.name: Role.REPLICA}
            self._record(messages[1])
            self._record(messages[2])

            async def rejoined() -> bool:
                roles = await self._agreed_roles()
                return roles is not None and roles[old.name] is Role.REPLICA

            await self._wait(rejoined, f"{old.name} back as the replica of {new.name}")
            await self._refresh()
            self._record(messages[3])
            return messages

    async def _promoted(self, new: RedisNode, old: RedisNode) -> bool:
        """Every node but the silent one sees `new` as a primary with slots, `old` failing."""
        for spec in self._specs:
            if spec.name == old.name:
                continue
            try:
                views = {view.endpoint: view for view in await self._views(spec.endpoint)}
            except (OSError, redis.exceptions.RedisError):
                return False
            now_primary, failed = views.get(new.endpoint), views.get(old.endpoint)
            if now_primary is None or not now_primary.is_primary or not now_primary.slots:
                return False
            if failed is not None and not failed.failing:
                return False
        return True

    async def refresh(self) -> list[RedisNode]:
        """Observe the roles again (a replica may have taken over by itself)."""
        async with self._lock:
            await self._refresh()
            return self.nodes

    async def __aenter__(self) -> RedisCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- steps --

    def _node_dir(self, spec: RedisNodeSpec) -> Path:
        return self.log_dir / spec.name

    def _log_path(self, spec: RedisNodeSpec) -> Path:
        return self.log_dir / f"{spec.name}.log"

    async def _start_node(self, spec: RedisNodeSpec) -> None:
        directory = self._node_dir(spec)
        shutil.rmtree(directory, ignore_errors=True)  # a fresh node: no old nodes.conf, no AOF
        directory.mkdir(parents=True)
        conf = directory / "redis.conf"
        conf.write_text(render_redis_conf(spec, directory, self._node_timeout_ms))
        process = await ServerProcess.start(
            f"redis-server {spec.name}",
            [str(self._redis_server), str(conf)],
            log_path=self._log_path(spec),
            pids_dir=pids_dir(self._state_dir),
            cwd=directory,
        )
        self._processes[spec.name] = process

    async def _wait_answering(self, spec: RedisNodeSpec) -> None:
        async def answers() -> bool:
            return await self._ping(spec.endpoint)

        await wait_until(
            answers,
            what=f"{spec.name} on {spec.endpoint} answering PING",
            timeout=self.timeout,
            server=self._processes[spec.name],
        )

    async def _wait_all_answering(self) -> None:
        """Wait for every node at once; the first that does not come up is the error."""
        try:
            async with asyncio.TaskGroup() as waits:
                for spec in self._specs:
                    waits.create_task(self._wait_answering(spec))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None

    async def _create(self) -> None:
        await run_command(
            "redis-cli --cluster create",
            [
                str(self._redis_cli),
                "--cluster",
                "create",
                *(str(spec.endpoint) for spec in create_order(self.shards)),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            log_path=self.log_dir / "cluster-create.log",
            pids_dir=pids_dir(self._state_dir),
            timeout=self.timeout,
            env={"PATH": "/usr/bin:/bin"},
        )
        # Each node knows its own role at once; the others learn it by gossip.
        own_views = [
            view
            for spec in self._specs
            for view in await self._views(spec.endpoint)
            if "myself" in view.flags
        ]
        for replica, primary_id in misplaced_replicas(self.shards, own_views):
            log.info("%s: %s follows another primary; moving it", self.group, replica.name)
            async with self._client(replica.endpoint) as client:
                await _command(client, "CLUSTER", "REPLICATE", primary_id)

        async def as_planned() -> bool:
            return await self._agreed_roles() == self._planned_roles()

        await self._wait(as_planned, "cluster_state:ok with every shard as planned")
        self._roles = self._planned_roles()

    def _planned_roles(self) -> dict[str, Role]:
        return {
            member.name: role
            for shard in self.shards
            for member, role in zip(shard.members, (Role.PRIMARY, Role.REPLICA), strict=True)
        }

    async def _refresh(self) -> None:
        roles = await self._agreed_roles()
        if roles is None:
            raise InfraError(f"{self.group}: the nodes do not agree on a healthy topology")
        self._roles = roles

    async def _agreed_roles(self) -> dict[str, Role] | None:
        """The roles every node agrees on, with `cluster_state:ok` and replicas in sync."""
        seen: list[dict[str, Role] | None] = []
        for spec in self._specs:
            try:
                views = await self._views(spec.endpoint)
                async with self._client(spec.endpoint) as client:
                    cluster = parse_info(await _command(client, "CLUSTER", "INFO"))
                    replication = parse_info(await _command(client, "INFO", "replication"))
            except (OSError, redis.exceptions.RedisError):
                return None
            if cluster.get("cluster_state") != "ok":
                return None
            roles = observed_roles(self.shards, views)
            if roles is None:
                return None
            if roles[spec.name] is Role.REPLICA and replication.get("master_link_status") != "up":
                return None
            seen.append(roles)
        return seen[0] if all(roles == seen[0] for roles in seen) else None

    async def _wait(
        self, check: Callable[[], Awaitable[bool]], what: str, timeout: float | None = None
    ) -> None:
        """`wait_until` over the whole cluster; the error names nodes that exited."""
        try:
            await wait_until(
                check,
                what=f"{self.group}: {what}",
                timeout=self.timeout if timeout is None else timeout,
                interval=0.2,
            )
        except NotReadyError as error:
            dead = [name for name, process in self._processes.items() if not process.running]
            spec = next((s for s in self._specs if s.name in dead), self._specs[0])
            detail = f"{error}; exited: {', '.join(dead) or 'none'}"
            raise NotReadyError(with_log(detail, self._log_path(spec))) from None

    async def _views(self, endpoint: Endpoint) -> list[ClusterNodeView]:
        async with self._client(endpoint) as client:
            return parse_cluster_nodes(await _command(client, "CLUSTER", "NODES"))

    async def _ping(self, endpoint: Endpoint) -> bool:
        try:
            async with self._client(endpoint) as client:
                return bool(await client.ping())
        except (OSError, redis.exceptions.RedisError):
            return False

    def _client(self, endpoint: Endpoint) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(
            host=endpoint.host,
            port=endpoint.port,
            decode_responses=True,
            socket_timeout=CLIENT_TIMEOUT_SECONDS,
            socket_connect_timeout=CLIENT_TIMEOUT_SECONDS,
        )

    async def _stop_all(self) -> None:
        processes = list(self._processes.values())
        await asyncio.gather(
            *(process.stop(signal.SIGTERM, STOP_TIMEOUT_SECONDS) for process in processes)
        )
        self._processes.clear()

    def _record(self, message: str) -> None:
        self._events.append(RedisEvent(self._now(), message))
        log.info("%s: %s", self.group, message)
