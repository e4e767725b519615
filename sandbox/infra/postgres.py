"""The "RDS" instance `harmonyflow-db`: PostgreSQL 15 Multi-AZ on loopback.

A primary (127.0.3.11, "us-west-2a") and a synchronous hot standby
(127.0.3.12, "us-west-2b") by streaming replication. The endpoint is a DNS name
of RDS's shape (`ENDPOINT_NAME`), answered by the sandbox's cluster DNS with the
current primary's address and a 5 s TTL; the pods' `DB_URL` names it and
resolves it on every connect, as an RDS client does. `RdsInstance.failover()` does
what a Multi-AZ failover does (timings: `RdsTimings`, flags of the sandbox):

1. the primary's host fails: its address goes silent (nftables drops every
   packet to and from it, `hostfaults.py`), so established connections hang and
   new ones time out; or, with `failover_connections=reset`, each gets a RST;
2. the old primary is stopped at once (immediate shutdown, as a failed host
   stops; nothing it sends gets out) and the standby promoted;
3. when the failover duration is over, the standby's address opens to clients (a
   standby serves none), the DNS record flips to it and the status goes back to
   `available`;
4. the failed host, rebooting since it failed, comes back `reboot_seconds` after the
   failure (at the flip with the defaults): its data is discarded and re-based from
   the new primary (`pg_basebackup -R`), and it re-attaches as the synchronous
   standby, its address still closed to clients (a connection left from before the
   failure never gets an answer).

`synchronous_commit = on` with the standby named in `synchronous_standby_names`
means a commit is acknowledged only once the standby has flushed it, so no
acknowledged write is lost by a failover. The setting is made with `ALTER
SYSTEM` on the primary once its standby streams (never copied into a base
backup), so a freshly promoted primary accepts writes before its new standby
exists.

PostgreSQL refuses to run as root: every server and helper runs as the
`postgres` user, on data directories under a `hf-pg-*` temporary directory
owned by it (removed on stop), with unix sockets there. Logs go to
`<state>/rds/`. The password of the `harmonyflow` role is read from the sandbox
overlay's secrets file and never logged.

The pure parts (secrets file, rendered configuration) are at the top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from sandbox.infra.clusterdns import NameRecords
from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.rds_status import (
    DEFAULT_TIMINGS,
    EVENT_MESSAGES,
    ConnectionFate,
    InvalidDBInstanceState,
    RdsAction,
    RdsEvent,
    RdsStatus,
    RdsTimings,
    next_status,
)
from sandbox.infra.supervisor import (
    Endpoint,
    InfraError,
    ServerProcess,
    ensure_free,
    run_command,
    wait_until,
    with_log,
)
from sandbox.kube.clock import utc_now
from sandbox.state import pids_dir

log = logging.getLogger(__name__)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO_ROOT = Path(__file__).resolve().parents[2]
SECRETS_FILE = REPO_ROOT / "deploy" / "overlays" / "sandbox" / "sandbox-secrets.env"
PASSWORD_KEY = "SECRET_DB_PASSWORD"
IDENTIFIER = "harmonyflow-db"
DB_NAME = "harmonyflow"
DB_USER = "harmonyflow"
REPLICATION_USER = "replicator"
OS_USER = "postgres"  # also the superuser, reached through the unix socket only
CLIENT_NETWORK = "127.0.0.0/8"
TEMP_PREFIX = "hf-pg-"
STOP_TIMEOUT_SECONDS = 10.0
RESTARTED_MESSAGE = "DB instance restarted"


@dataclass(frozen=True)
class PgNodeSpec:
    """One PostgreSQL server of the pair; it keeps its address and AZ across failovers."""

    name: str
    endpoint: Endpoint
    az: str

    @property
    def application_name(self) -> str:
        """How its walreceiver names itself to the primary (its `cluster_name`)."""
        return f"harmonyflow_db_{self.name}"


# RDS's shape: <identifier>.<12 characters of the account and region>.<region>.rds.amazonaws.com
ENDPOINT_NAME = "harmonyflow-db.cx7hfsandbox.us-west-2.rds.amazonaws.com"
PORT = 5432
DEFAULT_NODES = (
    PgNodeSpec("a", Endpoint("127.0.3.11", 5432), "us-west-2a"),
    PgNodeSpec("b", Endpoint("127.0.3.12", 5432), "us-west-2b"),
)


# --- pure: secrets and configuration -------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines as kustomize's secretGenerator reads them (value taken verbatim).

    >>> parse_env_file("# comment\\nA=1\\n\\nB = x=y\\n")
    {'A': '1', 'B': ' x=y'}
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, value = line.lstrip().split("=", 1)
        values[key.strip()] = value
    return values


def read_sandbox_secret(key: str, path: Path = SECRETS_FILE) -> str:
    """A value of the overlay's secrets file (never logged): the pods get the same one
    through the Secret the overlay generates from it."""
    try:
        values = parse_env_file(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InfraError(f"cannot read the sandbox secrets file {path}: {error}") from error
    value = values.get(key, "")
    if not value:
        raise InfraError(f"{path} has no {key}")
    return value


def read_db_password(path: Path = SECRETS_FILE) -> str:
    """The `harmonyflow` role's password."""
    return read_sandbox_secret(PASSWORD_KEY, path)


def render_postgresql_conf() -> str:
    """Settings shared by both servers, appended to `postgresql.conf` (base backups copy it)."""
    return "\n".join(
        [
            "",
            "# --- harmonyflow sandbox (sandbox/infra/postgres.py) ---",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "wal_keep_size = '256MB'",
            "hot_standby = on",
            "synchronous_commit = on",
            "# synchronous_standby_names is set with ALTER SYSTEM once the standby streams",
            "wal_retrieve_retry_interval = '1s'",
            "wal_receiver_status_interval = '1s'",
            "# Durability across OS crashes is not emulated; processes, not machines, fail here.",
            "fsync = off",
            "shared_buffers = '32MB'",
            "max_connections = 200",
            "password_encryption = 'scram-sha-256'",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "",
        ]
    )


def render_pg_hba(network: str = CLIENT_NETWORK) -> str:
    """Superuser by unix socket only; everyone else by password over loopback."""
    return "\n".join(
        [
            "# TYPE  DATABASE     USER        ADDRESS  METHOD",
            f"local   all          {OS_USER}    peer map=sandbox",
            f"local   replication  {OS_USER}    peer map=sandbox",
            f"host    replication  {REPLICATION_USER}  {network}  scram-sha-256",
            f"host    all          all         {network}  scram-sha-256",
            "",
        ]
    )


def render_pg_ident() -> str:
    """Peer map: the OS users root (the sandbox) and postgres may be the superuser."""
    return f"sandbox  root  {OS_USER}\nsandbox  {OS_USER}  {OS_USER}\n"


def server_options(node: PgNodeSpec, socket_dir: Path) -> list[str]:
    """Per-server settings, given on the command line (so base backups do not carry them)."""
    settings = {
        "listen_addresses": node.endpoint.host,
        "port": str(node.endpoint.port),
        "unix_socket_directories": str(socket_dir),
        "cluster_name": node.application_name,
    }
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def synchronous_standby_names(standby: PgNodeSpec) -> str:
    """The standby PostgreSQL waits for, by its application name.

    >>> synchronous_standby_names(DEFAULT_NODES[1])
    'FIRST 1 ("harmonyflow_db_b")'
    """
    return f'FIRST 1 ("{standby.application_name}")'


# --- one server ------------------------------------------------------------------------


class PgServer:
    """One PostgreSQL server: its data directory, socket directory, process and log."""

    def __init__(
        self, spec: PgNodeSpec, root: Path, log_path: Path, pids: Path, pg_bin: Path
    ) -> None:
        self.spec = spec
        self.data_dir = root / spec.name
        self.socket_dir = root / f"{spec.name}.sock"
        self.log_path = log_path
        self._root, self._pids, self._pg_bin = root, pids, pg_bin
        self.process: ServerProcess | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self._pg_bin}:/usr/bin:/bin",
            "LC_ALL": "C",
            "TZ": "UTC",
            "HOME": str(self._root),
            **extra,
        }

    async def _run(self, what: str, argv: list[str], timeout: float, **env: str) -> None:
        await run_command(
            f"{what} ({self.spec.name})",
            argv,
            log_path=self.log_path,
            pids_dir=self._pids,
            timeout=timeout,
            user=OS_USER,
            env=self._env(**env),
            cwd=self._root,
        )

    async def initdb(self, timeout: float) -> None:
        argv = [
            str(self._pg_bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            OS_USER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
        ]
        await self._run("initdb", argv, timeout)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(render_postgresql_conf())
        _write_owned(self.data_dir / "pg_hba.conf", render_pg_hba())
        _write_owned(self.data_dir / "pg_ident.conf", render_pg_ident())

    async def basebackup(self, source: PgNodeSpec, password: str, timeout: float) -> None:
        """Discard the data directory and copy the primary's, set up as its standby."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        argv = [
            str(self._pg_bin / "pg_basebackup"),
            "-h",
            source.endpoint.host,
            "-p",
            str(source.endpoint.port),
            "-U",
            REPLICATION_USER,
            "-D",
            str(self.data_dir),
            "-X",
            "stream",
            "-R",
            "-c",
            "fast",
            "--no-sync",
            "-w",
        ]
        await self._run("pg_basebackup", argv, timeout, PGPASSWORD=password)

    async def start(self, timeout: float) -> None:
        _make_owned_dir(self.socket_dir)
        argv = [
            str(self._pg_bin / "postgres"),
            "-D",
            str(self.data_dir),
            *server_options(self.spec, self.socket_dir),
        ]
        self.process = await ServerProcess.start(
            f"postgres {self.spec.application_name}",
            argv,
            log_path=self.log_path,
            pids_dir=self._pids,
            user=OS_USER,
            env=self._env(),
            cwd=self._root,
        )
        await wait_until(
            self._accepts_connections,
            what=f"PostgreSQL {self.spec.name} on {self.spec.endpoint} accepting connections",
            timeout=timeout,
            server=self.process,
        )

    async def stop(self, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT) or immediate (SIGQUIT, as a crash); SIGKILL after a bound."""
        if self.process is not None:
            signo = signal.SIGQUIT if immediate else signal.SIGINT
            await self.process.stop(signo, STOP_TIMEOUT_SECONDS)
            self.process = None

    async def promote(self, timeout: float) -> None:
        argv = [
            str(self._pg_bin / "pg_ctl"),
            "promote",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(max(1, int(timeout))),
        ]
        await self._run("pg_ctl promote", argv, timeout + 5)
        # A standby has no standby of its own yet: commits must not wait for one.
        await self.set_synchronous_standby(None)
        await wait_until(
            self.accepts_writes,
            what=f"promoted PostgreSQL {self.spec.name} accepting writes",
            timeout=timeout,
            server=self.process,
        )

    @contextlib.asynccontextmanager
    async def admin(self, timeout: float = 5.0) -> AsyncIterator[asyncpg.Connection]:
        """A superuser connection through the unix socket."""
        connection = await asyncpg.connect(
            host=str(self.socket_dir),
            port=self.spec.endpoint.port,
            user=OS_USER,
            database="postgres",
            timeout=timeout,
            command_timeout=timeout,
        )
        try:
            yield connection
        finally:
            await connection.close(timeout=timeout)

    async def _accepts_connections(self) -> bool:
        try:
            async with self.admin() as connection:
                await connection.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        return True

    async def accepts_writes(self) -> bool:
        """Out of recovery, and a transaction with an xid commits."""
        try:
            async with self.admin() as connection:
                if await connection.fetchval("SELECT pg_is_in_recovery()"):
                    return False
                await connection.fetchval("SELECT txid_current()")
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        return True

    async def replication_state(self, standby: PgNodeSpec) -> tuple[str, str] | None:
        """(state, sync_state) of `standby`'s walsender on this primary, if connected."""
        try:
            async with self.admin() as connection:
                row = await connection.fetchrow(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1",
                    standby.application_name,
                )
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return None
        return None if row is None else (str(row["state"]), str(row["sync_state"]))

    async def set_synchronous_standby(self, standby: PgNodeSpec | None) -> None:
        async with self.admin() as connection:
            if standby is None:
                await connection.execute("ALTER SYSTEM RESET synchronous_standby_names")
            else:
                names = synchronous_standby_names(standby)
                await connection.execute(
                    await connection.fetchval(
                        "SELECT format('ALTER SYSTEM SET synchronous_standby_names = %L',"
                        " $1::text)",
                        names,
                    )
                )
            await connection.execute("SELECT pg_reload_conf()")


def _write_owned(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    shutil.chown(path, OS_USER, OS_USER)
    path.chmod(0o600)


def _make_owned_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(path, OS_USER, OS_USER)


def traversable_by_others(path: Path) -> bool:
    """Whether a user other than root can reach into `path` (o+x on it and every parent)."""
    try:
        return all(part.stat().st_mode & 0o001 for part in (path, *path.parents))
    except OSError:
        return False


def _temp_parent() -> Path:
    """The temporary directory if the postgres user can reach it, else /tmp."""
    preferred = Path(tempfile.gettempdir())
    return preferred if traversable_by_others(preferred) else Path("/tmp")


# --- the instance ----------------------------------------------------------------------


class RdsInstance:
    """`harmonyflow-db`: a Multi-AZ pair behind its DNS name.

    >>> db = RdsInstance(state_dir, dns=records)  # doctest: +SKIP
    >>> await db.start(); await db.failover()     # doctest: +SKIP
    >>> db.primary.az, db.standby.az, db.status   # doctest: +SKIP
    ('us-west-2b', 'us-west-2a', 'available')
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        identifier: str = IDENTIFIER,
        endpoint_name: str = ENDPOINT_NAME,
        nodes: tuple[PgNodeSpec, PgNodeSpec] = DEFAULT_NODES,
        timings: RdsTimings = DEFAULT_TIMINGS,
        dns: NameRecords | None = None,
        faults: HostFaults | None = None,
        secrets_file: Path = SECRETS_FILE,
        pg_bin: Path = PG_BIN,
        timeout: float = 60.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.identifier = identifier
        self.endpoint_name = endpoint_name
        self.timings = timings
        self.timeout = timeout
        self._state_dir = state_dir
        self._specs = nodes
        self._dns = dns
        self._faults = faults if faults is not None else HostFaults()
        self._secrets_file = secrets_file
        self._pg_bin = pg_bin
        self._now = now
        self._status = RdsStatus.STOPPED
        self._events: list[RdsEvent] = []
        self._lock = asyncio.Lock()
        self._root: Path | None = None
        self._primary: PgServer | None = None
        self._standby: PgServer | None = None
        self._standby_attached = False
        self._replication_password = ""
        self._halted = False  # StopDBInstance: the servers are down, the data stays

    # -- what DescribeDBInstances / DescribeEvents would show --

    @property
    def status(self) -> RdsStatus:
        return self._status

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def events(self) -> list[RdsEvent]:
        return list(self._events)

    @property
    def primary(self) -> PgNodeSpec:
        return self._primary.spec if self._primary is not None else self._specs[0]

    @property
    def standby(self) -> PgNodeSpec:
        return self._standby.spec if self._standby is not None else self._specs[1]

    @property
    def port(self) -> int:
        return self.primary.endpoint.port

    @property
    def url(self) -> str:
        """The clients' URL (without the password), as in the pods' `DB_URL`."""
        return f"postgresql://{DB_USER}@{self.endpoint_name}:{self.port}/{DB_NAME}"

    @property
    def log_dir(self) -> Path:
        return self._state_dir / "rds"

    @property
    def standby_attached(self) -> bool:
        """False from a failover until the failed host is back as the synchronous standby."""
        return self._standby_attached

    async def standby_sync_state(self) -> str | None:
        """`sync_state` of the standby on the primary (`sync` when healthy), None if detached."""
        primary = self._primary
        if primary is None or not primary.running:
            return None
        state = await primary.replication_state(self.standby)
        return None if state is None or state[0] != "streaming" else state[1]

    def process_ids(self) -> list[int]:
        servers = (self._primary, self._standby)
        return [s.process.pid for s in servers if s is not None and s.process is not None]

    # -- lifecycle --

    async def start(self) -> None:
        """Create the pair and publish the name; returns once the standby is synchronous."""
        async with self._lock:
            self._transition(RdsAction.CREATE)
            try:
                ensure_free([spec.endpoint for spec in self._specs], self.identifier)
                await self._faults.start()
                await self._create(read_db_password(self._secrets_file))
            except BaseException:
                self._transition(RdsAction.FAIL)
                await self._teardown()
                raise
            self._transition(RdsAction.CREATED)

    async def stop(self) -> None:
        """Stop both servers (gracefully, then killed); discard the data."""
        async with self._lock:
            if self._status is RdsStatus.STOPPED and self._root is None:
                return
            if self._status is not RdsStatus.STOPPED:
                self._transition(RdsAction.STOP)
            await self._teardown()
            if self._status is RdsStatus.STOPPING:
                self._transition(RdsAction.STOPPED)

    async def failover(self) -> None:
        """A Multi-AZ failover (see the module docstring); status `rebooting` meanwhile."""
        async with self._lock:
            if self._status is RdsStatus.AVAILABLE and not self._standby_attached:
                raise InvalidDBInstanceState(
                    f"cannot fail over {self.identifier}: its standby is not in sync yet"
                )
            self._transition(RdsAction.FAILOVER)
            began = asyncio.get_running_loop().time()
            try:
                failed = await self._failover()
            except BaseException:
                self._transition(RdsAction.FAIL)
                raise
            self._transition(RdsAction.FAILOVER_COMPLETED)
            await self._return_as_standby(failed, began)

    async def reboot(self) -> None:
        """A reboot without failover: the primary shuts down, stays down, starts in place."""
        async with self._lock:
            self._transition(RdsAction.REBOOT)
            try:
                await self._reboot()
            except BaseException:
                self._transition(RdsAction.FAIL)
                raise
            self._transition(RdsAction.REBOOT_COMPLETED)

    async def halt(self) -> None:
        """StopDBInstance: `stopping` (both servers shut down), then `stopped`; data kept."""
        async with self._lock:
            if self._status is not RdsStatus.AVAILABLE:
                raise InvalidDBInstanceState(
                    f"Instance {self.identifier} is not in available state."
                )
            self._transition(RdsAction.STOP_INSTANCE)
            self._halted = True
            began = asyncio.get_running_loop().time()
            for server in (self._primary, self._standby):
                if server is not None:
                    await server.stop()
            self._standby_attached = False
            await _sleep_until(began + self.timings.stop_seconds)
            self._transition(RdsAction.INSTANCE_STOPPED)

    async def unhalt(self) -> None:
        """StartDBInstance after `halt`: `starting` for the start duration, then `available`."""
        async with self._lock:
            if not self._halted or self._status is not RdsStatus.STOPPED:
                raise InvalidDBInstanceState(
                    f"Instance {self.identifier} is not stopped, it cannot be started."
                )
            self._transition(RdsAction.START_INSTANCE)
            began = asyncio.get_running_loop().time()
            try:
                primary, standby = self._servers()
                await primary.start(self.timeout)
                await self._attach_standby(standby, primary, rebase=False)
                await _sleep_until(began + self.timings.start_seconds)
            except BaseException:
                self._transition(RdsAction.FAIL)
                raise
            self._halted = False
            self._transition(RdsAction.INSTANCE_STARTED)

    async def __aenter__(self) -> RdsInstance:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- steps --

    def _servers(self) -> tuple[PgServer, PgServer]:
        if self._primary is None or self._standby is None:
            raise InfraError(f"{self.identifier} is not running")
        return self._primary, self._standby

    def _publish(self, primary: PgServer) -> None:
        """Point the endpoint's name at `primary` (clients see it within the TTL)."""
        if self._dns is not None:
            self._dns.set(
                self.endpoint_name, [primary.spec.endpoint.host], self.timings.dns_ttl_seconds
            )
        log.info("%s: %s -> %s", self.identifier, self.endpoint_name, primary.spec.endpoint.host)

    async def _create(self, password: str) -> None:
        root = self._make_root()
        pids = pids_dir(self._state_dir)
        first, second = (
            PgServer(
                spec, root, self.log_dir / f"{self.identifier}-{spec.name}.log", pids, self._pg_bin
            )
            for spec in self._specs
        )
        self._primary, self._standby = first, second
        self._replication_password = secrets.token_urlsafe(24)
        await first.initdb(self.timeout)
        await first.start(self.timeout)
        await self._bootstrap(first, password)
        await self._attach_standby(second, first)
        # A Multi-AZ standby serves no client (RDS User Guide, "Multi-AZ DB instance
        # deployments": "you can't use a standby replica to serve read traffic"), and the
        # endpoint never names it: its address takes no connection until it is promoted.
        await self._faults.silence(second.spec.endpoint.host)
        self._publish(first)

    async def _bootstrap(self, primary: PgServer, password: str) -> None:
        """Roles and database; statements holding passwords are kept out of the server log."""
        async with primary.admin(self.timeout) as connection:
            await connection.execute("SET log_min_error_statement = panic")
            await connection.execute("SET log_statement = none")
            for role, secret, attributes in (
                (DB_USER, password, "LOGIN"),
                (REPLICATION_USER, self._replication_password, "LOGIN REPLICATION"),
            ):
                statement = await connection.fetchval(
                    f"SELECT format('CREATE ROLE %I {attributes} PASSWORD %L', $1::text, $2::text)",
                    role,
                    secret,
                )
                await connection.execute(statement)
            await connection.execute(f'CREATE DATABASE "{DB_NAME}" OWNER "{DB_USER}"')

    async def _attach_standby(
        self, standby: PgServer, primary: PgServer, *, rebase: bool = True
    ) -> None:
        """Start `standby` (re-based from `primary` unless it already follows it) and make
        it the synchronous standby."""
        if rebase:
            await standby.basebackup(primary.spec, self._replication_password, self.timeout)
        await standby.start(self.timeout)

        async def streaming() -> bool:
            state = await primary.replication_state(standby.spec)
            return state is not None and state[0] == "streaming"

        async def synchronous() -> bool:
            return await primary.replication_state(standby.spec) == ("streaming", "sync")

        what = (
            f"standby {standby.spec.name} ({standby.spec.endpoint})"
            f" streaming from {primary.spec.name}"
        )
        await wait_until(streaming, what=what, timeout=self.timeout, server=standby.process)
        await primary.set_synchronous_standby(standby.spec)
        await wait_until(
            synchronous,
            what=f"standby {standby.spec.name} synchronous",
            timeout=self.timeout,
            server=standby.process,
        )
        self._standby_attached = True

    async def _failover(self) -> PgServer:
        """Steps 1-3 of the module docstring; returns the failed server (now fenced)."""
        old, new = self._servers()
        began = asyncio.get_running_loop().time()
        self._standby_attached = False
        host = old.spec.endpoint.host
        if self.timings.failover_connections is ConnectionFate.BLACKHOLE:
            await self._faults.silence(host)
        else:
            await self._faults.reset_connections(host, old.spec.endpoint.port)
        # Fenced as a failed host is: at once, nothing more sent to the standby. Only what
        # the standby already confirmed was acknowledged to clients (synchronous commit).
        await old.stop(immediate=True)
        if self.timings.failover_connections is ConnectionFate.RESET:
            await self._faults.silence(host)  # the fenced host takes nothing new
        await new.promote(self.timeout)
        await _sleep_until(began + self.timings.failover_seconds)
        self._primary, self._standby = new, old
        await self._faults.restore(new.spec.endpoint.host)
        self._publish(new)
        log.info(
            "%s: failover to %s after %.1fs",
            self.identifier,
            new.spec.name,
            asyncio.get_running_loop().time() - began,
        )
        return old

    async def _return_as_standby(self, failed: PgServer, failed_at: float) -> None:
        """Step 4: the failed host, rebooting since it failed, follows the new primary. Its
        address stays closed to clients, as a standby's is, so a connection left from
        before it failed never gets an answer (the client's own timeout ends it)."""
        await _sleep_until(failed_at + self.timings.reboot_seconds)
        primary, _ = self._servers()
        await self._attach_standby(failed, primary)
        self._record(RESTARTED_MESSAGE)

    async def _reboot(self) -> None:
        primary, _ = self._servers()
        began = asyncio.get_running_loop().time()
        await primary.stop()
        await _sleep_until(began + self.timings.reboot_seconds)
        await primary.start(self.timeout)

    async def _teardown(self) -> None:
        errors: list[str] = []
        for server in (self._standby, self._primary):  # the standby first: no reconnect noise
            if server is None:
                continue
            try:
                await server.stop()
            except OSError as error:  # still stop the other one, then report
                errors.append(with_log(f"stopping {server.spec.name}: {error}", server.log_path))
        try:
            await self._faults.stop()
        except InfraError as error:
            errors.append(str(error))
        if self._root is not None:  # ours (a crashed run's stays marked for the next start)
            shutil.rmtree(self._root, ignore_errors=True)
            self._marker.unlink(missing_ok=True)
            self._root = None
        self._primary = self._standby = None
        self._standby_attached = False
        self._halted = False
        if errors:
            raise InfraError("; ".join(errors))

    # -- helpers --

    @property
    def _marker(self) -> Path:
        return self.log_dir / f"{self.identifier}.datadir"

    def _make_root(self) -> Path:
        """A postgres-owned temporary directory (a previous crashed run's is removed)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            stale = Path(self._marker.read_text(encoding="utf-8").strip())
            if stale.name.startswith(TEMP_PREFIX) and stale.parent == _temp_parent():
                shutil.rmtree(stale, ignore_errors=True)
        root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=_temp_parent()))
        shutil.chown(root, OS_USER, OS_USER)
        self._root = root
        self._marker.write_text(f"{root}\n", encoding="utf-8")
        return root

    def _transition(self, action: RdsAction) -> None:
        self._status = next_status(self._status, action)
        if action in EVENT_MESSAGES:
            self._record(EVENT_MESSAGES[action])

    def _record(self, message: str) -> None:
        self._events.append(RdsEvent(self._now(), message))
        log.info("%s: %s", self.identifier, message)


async def _sleep_until(deadline: float) -> None:
    """Sleep until the loop time `deadline` (not at all when it has passed)."""
    await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))


def is_postgres_user_available() -> bool:
    """Whether this machine can run the servers (a `postgres` user and we may switch to it)."""
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return False
    return os.geteuid() == 0
