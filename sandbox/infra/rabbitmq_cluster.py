"""The seed's self-managed RabbitMQ cluster (rabbitmq-1..3 on EC2), three real nodes on loopback.

Debian's rabbitmq-server 3.10 runs as the current user, one node per address
(127.0.3.30..32:5672 by default, mirroring 10.0.3.30..32). Everything a node
writes lives under `<state>/rabbitmq/`: its config, Mnesia and quorum-queue
data (kept across `stop_node`/`start_node`, so a stopped node rejoins with its
data, as an EC2 instance stopped and started does), its log.

Erlang distribution stays on loopback: a private epmd on a non-default port
(`ERL_EPMD_PORT`, 4371) listening on 127.0.0.1 and the node addresses, node
names `rabbit-N@<address>` (long names: epmd keys on the part before `@`, so
the names must differ), each node's distribution listener on its own address
(`inet_dist_use_interface`) and on its own port (RabbitMQ's prelaunch probes
the distribution port on every interface, so the three must differ). A test
cluster on other addresses therefore also passes another `epmd_port` and
`dist_port`.

Cluster formation is classic-config peer discovery: node 1 boots alone, then
nodes 2 and 3 find it first in the list and join it. After a full stop all
three start together (each waits for its peers in Mnesia).

`cluster_partition_handling = pause_minority`: a stopped or cut-off node is a
minority of one and pauses (closes its listeners) instead of accepting writes
it cannot replicate; the two others keep the majority, which is also what
quorum queues (the queue type clients declare, `x-queue-type=quorum`) need. So
losing one node is harmless; losing two stops the service, as on AWS.

The AMQP user `harmonyflow` gets the overlay's `SECRET_AMQP_PASSWORD`
(deploy/overlays/sandbox/sandbox-secrets.env, the value the pods receive through
their Secret), as the database role gets `SECRET_DB_PASSWORD`; only `amqp_urls`
hands it out.

Cold start measured on this machine (2 cores, CI running in parallel): node 1
accepts AMQP after about 11 s, the whole 3-node cluster after 17.9-18.3 s (three
runs); a graceful stop of all three takes about 1 s. Hence `--with rabbitmq`
only (sandbox/infra/extras.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sandbox.infra.postgres import read_sandbox_secret
from sandbox.infra.supervisor import (
    Endpoint,
    InfraError,
    ServerProcess,
    ensure_free,
    wait_until,
)
from sandbox.state import pids_dir

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin/rabbitmq-server")
EPMD = Path("/usr/bin/epmd")
DEFAULT_HOSTS = ("127.0.3.30", "127.0.3.31", "127.0.3.32")
DEFAULT_PORT = 5672
DEFAULT_EPMD_PORT = 4371
DEFAULT_DIST_PORT = 25672
USER = "harmonyflow"
PASSWORD_KEY = "SECRET_AMQP_PASSWORD"
STOP_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 180.0
# Erlang schedulers spin while idle by default; on 2 shared cores that is waste.
ERL_ARGS = "-start_epmd false +sbwt none +sbwtdcpu none +sbwtdio none"


@dataclass(frozen=True)
class RabbitNodeSpec:
    """One node: its instance name (`rabbitmq-1`), Erlang node name and addresses."""

    index: int
    instance_name: str
    nodename: str
    amqp: Endpoint
    dist: Endpoint


# --- pure: plan, configuration, environment ----------------------------------------


def plan_nodes(
    hosts: Sequence[str], port: int, dist_port: int = DEFAULT_DIST_PORT
) -> tuple[RabbitNodeSpec, ...]:
    """The nodes over `hosts`; distribution ports `dist_port`, +1, +2 (see the docstring)."""
    if not hosts or len(set(hosts)) != len(hosts):
        raise ValueError(f"a RabbitMQ cluster needs distinct hosts, not {list(hosts)}")
    return tuple(
        RabbitNodeSpec(
            index,
            f"rabbitmq-{index + 1}",
            f"rabbit-{index + 1}@{host}",
            Endpoint(host, port),
            Endpoint(host, dist_port + index),
        )
        for index, host in enumerate(hosts)
    )


def render_rabbitmq_conf(
    spec: RabbitNodeSpec, nodes: Sequence[RabbitNodeSpec], password: str
) -> str:
    """rabbitmq.conf for one node: its address only, the user, pause_minority, the peers."""
    lines = [
        f"listeners.tcp.1 = {spec.amqp}",
        f"default_user = {USER}",
        f"default_pass = {password}",
        "default_user_tags.administrator = true",
        "loopback_users = none",
        "cluster_partition_handling = pause_minority",
        "cluster_formation.peer_discovery_backend = classic_config",
        *(f"cluster_formation.classic_config.nodes.{n.index + 1} = {n.nodename}" for n in nodes),
        "log.console = false",
        "log.file.level = info",
    ]
    return "\n".join(lines) + "\n"


def erlang_ip_tuple(host: str) -> str:
    """`127.0.3.30` -> `{127,0,3,30}` (for `inet_dist_use_interface`)."""
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"not an IPv4 address: {host!r}")
    return "{" + ",".join(str(int(p)) for p in parts) + "}"


def epmd_env(nodes: Sequence[RabbitNodeSpec], epmd_port: int) -> dict[str, str]:
    """epmd on 127.0.0.1 (implied) and every node's address, on a non-default port."""
    return {
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": ",".join(n.amqp.host for n in nodes),
    }


def node_env(
    spec: RabbitNodeSpec, nodes: Sequence[RabbitNodeSpec], base: Path, epmd_port: int
) -> dict[str, str]:
    """The whole environment of one node (nothing inherited: no system rabbitmq-env.conf)."""
    directory = base / spec.instance_name
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(base),  # .erlang.cookie
        **epmd_env(nodes, epmd_port),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_USE_LONGNAME": "true",
        "RABBITMQ_NODENAME": spec.nodename,
        "RABBITMQ_NODE_IP_ADDRESS": spec.amqp.host,
        "RABBITMQ_NODE_PORT": str(spec.amqp.port),
        "RABBITMQ_DIST_PORT": str(spec.dist.port),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        "ERL_CRASH_DUMP": str(directory / "erl_crash.dump"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
            f"-kernel inet_dist_use_interface {erlang_ip_tuple(spec.dist.host)} {ERL_ARGS}"
        ),
    }


# --- I/O -------------------------------------------------------------------------------


def _secret_file(path: Path, mode: int, make: str) -> str:
    """The file's content, created with `make` and `mode` (never group/world-readable)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(make)
    path.chmod(mode)
    return make


async def _amqp_open(endpoint: Endpoint) -> bool:
    """True once the node accepts TCP and answers the AMQP header with Connection.Start."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), 2.0
        )
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"AMQP\x00\x00\x09\x01")
        await writer.drain()
        frame = await asyncio.wait_for(reader.read(7), 2.0)
        return len(frame) == 7 and frame[0] == 1
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


class RabbitmqCluster:
    """`await RabbitmqCluster(state_dir).start()`; `stop_node(1)`, `start_node(1)`, `stop()`."""

    def __init__(
        self,
        state_dir: Path,
        hosts: tuple[str, ...] = DEFAULT_HOSTS,
        port: int = DEFAULT_PORT,
        *,
        epmd_port: int = DEFAULT_EPMD_PORT,
        dist_port: int = DEFAULT_DIST_PORT,
        timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.nodes = plan_nodes(hosts, port, dist_port)
        self.epmd_port = epmd_port
        self.timeout = timeout
        self._state_dir = state_dir
        self._epmd: ServerProcess | None = None
        self._processes: dict[int, ServerProcess] = {}
        self._lock = asyncio.Lock()

    @property
    def base(self) -> Path:
        return self._state_dir / "rabbitmq"

    @property
    def instance_names(self) -> tuple[str, ...]:
        return tuple(n.instance_name for n in self.nodes)

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """Clients' URLs (they hold the password; never log them)."""
        password = self._password()
        return tuple(f"amqp://{USER}:{quote(password, safe='')}@{n.amqp}/" for n in self.nodes)

    def node_running(self, index: int) -> bool:
        process = self._processes.get(self._spec(index).index)
        return process is not None and process.running

    def process_ids(self) -> list[int]:
        pids = [p.pid for p in self._processes.values()]
        return pids + ([self._epmd.pid] if self._epmd is not None else [])

    # -- lifecycle --

    async def start(self) -> None:
        """epmd, then node 1, then the others joining it (all together after a full stop)."""
        async with self._lock:
            ensure_free(
                [Endpoint("127.0.0.1", self.epmd_port)]
                + [e for n in self.nodes for e in (n.amqp, n.dist)],
                "rabbitmq",
            )
            try:
                self._prepare()
                await self._start_epmd()
                fresh = not (self.base / self.nodes[0].instance_name / "mnesia").exists()
                if fresh:
                    await self._boot([self.nodes[0]])
                    await self._boot(self.nodes[1:])
                else:
                    await self._boot(self.nodes)
            except BaseException:
                await self._stop_all()
                raise

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_all()

    async def stop_node(self, index: int) -> None:
        """Stop one node gracefully (its data stays); the others carry on."""
        async with self._lock:
            spec = self._spec(index)
            process = self._processes.pop(spec.index, None)
            if process is not None:
                await process.stop(signal.SIGTERM, STOP_TIMEOUT_SECONDS)

    async def start_node(self, index: int) -> None:
        """Start a stopped node again; it rejoins the cluster with its data."""
        async with self._lock:
            spec = self._spec(index)
            if self.node_running(spec.index):
                return
            if self._epmd is None or not self._epmd.running:
                raise InfraError("rabbitmq: the cluster is not running (start() first)")
            await self._spawn(spec)
            server = self._processes[spec.index]
        # Waited for outside the lock: after a full stop a node waits for its peers
        # (Mnesia), so the peers' own starts must be able to proceed meanwhile.
        await self._wait_amqp(spec, server)

    async def __aenter__(self) -> RabbitmqCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- steps --

    def _spec(self, index: int) -> RabbitNodeSpec:
        if not 0 <= index < len(self.nodes):
            raise InfraError(f"rabbitmq has nodes 0..{len(self.nodes) - 1}, not {index}")
        return self.nodes[index]

    def _password(self) -> str:
        return read_sandbox_secret(PASSWORD_KEY)

    def _prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        _secret_file(self.base / ".erlang.cookie", 0o400, secrets.token_hex(20))
        (self.base / "rabbitmq-env.conf").write_text("# the sandbox sets everything per node\n")
        password = self._password()
        for spec in self.nodes:
            directory = self.base / spec.instance_name
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "rabbitmq.conf"
            conf.touch(mode=0o600)
            conf.write_text(render_rabbitmq_conf(spec, self.nodes, password))
            (directory / "advanced.config").write_text("[].\n")
            (directory / "enabled_plugins").write_text("[].\n")

    async def _start_epmd(self) -> None:
        env = {"PATH": "/usr/bin:/bin", **epmd_env(self.nodes, self.epmd_port)}
        self._epmd = await ServerProcess.start(
            "epmd",
            [str(EPMD)],
            log_path=self.base / "epmd.log",
            pids_dir=pids_dir(self._state_dir),
            env=env,
        )

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.epmd_port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_until(listening, what="epmd listening", timeout=10.0, server=self._epmd)

    async def _boot(self, specs: Sequence[RabbitNodeSpec]) -> None:
        for spec in specs:
            await self._spawn(spec)
        await asyncio.gather(*(self._wait_amqp(spec) for spec in specs))

    async def _spawn(self, spec: RabbitNodeSpec) -> None:
        env: Mapping[str, str] = node_env(spec, self.nodes, self.base, self.epmd_port)
        directory = self.base / spec.instance_name
        self._processes[spec.index] = await ServerProcess.start(
            f"rabbitmq-server {spec.instance_name}",
            [str(RABBITMQ_SERVER)],
            log_path=self.base / f"{spec.instance_name}.log",
            pids_dir=pids_dir(self._state_dir),
            env=env,
            cwd=directory,
        )

    async def _wait_amqp(self, spec: RabbitNodeSpec, server: ServerProcess | None = None) -> None:
        async def answers() -> bool:
            return await _amqp_open(spec.amqp)

        await wait_until(
            answers,
            what=f"{spec.instance_name} ({spec.nodename}) accepting AMQP on {spec.amqp}",
            timeout=self.timeout,
            server=server or self._processes[spec.index],
            interval=0.3,
        )

    async def _stop_all(self) -> None:
        await asyncio.gather(
            *(p.stop(signal.SIGTERM, STOP_TIMEOUT_SECONDS) for p in self._processes.values())
        )
        self._processes.clear()
        if self._epmd is not None:
            await self._epmd.stop(signal.SIGTERM, 5.0)
            self._epmd = None
