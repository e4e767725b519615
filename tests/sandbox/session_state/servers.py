"""Real PostgreSQL and Redis on loopback, and session-state processes on 127.0.2.x.

The servers and fixtures the session-state integration tests import (and the
load tests of idle WebSockets). PostgreSQL refuses to run as root, so initdb and postgres
run as the `postgres` user, in a data directory under /tmp chowned to it. Every
process started here is stopped at teardown, and the teardown checks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import websocket

from sandbox.images.registry import REPO_ROOT
from sandbox.kube.kubelet.ipam import IpAllocator

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
DB_USER, DB_NAME = "harmonyflow", "harmonyflow"
DB_PASSWORD = "test-only-db-password-6c1f"
SIGNING_KEY = "test-only-signing-key-91ab"
SUPERUSER_PASSWORD = "test-only-superuser-password"
LOOPBACK = "127.0.0.1"
ADDRESSES = IpAllocator()

# `make setup` installs both; on a machine without them the fixture in
# tests/conftest.py fails loudly rather than skipping.
needs_servers = pytest.mark.usefixtures("servers_installed")


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def free_cluster_port() -> int:
    """A port whose cluster-bus twin (port + 10000) is a valid port and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as probe:
                probe.bind((LOOPBACK, port + 10000))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a redis cluster node")


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def _stop(process: subprocess.Popen[Any], signo: int, timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signo)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ---- PostgreSQL ----


@dataclass
class Postgres:
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hf-pg-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@{LOOPBACK}:{self.port}/{DB_NAME}"

    def init(self) -> None:
        account = pwd.getpwnam("postgres")
        os.chown(self.directory, account.pw_uid, account.pw_gid)
        pwfile = self.directory / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        os.chown(pwfile, account.pw_uid, account.pw_gid)
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                f"--pwfile={pwfile}",
            ],
            user="postgres",
            group="postgres",
            check=True,
            capture_output=True,
            cwd=self.directory,
            timeout=120,
        )

    def start(self) -> None:
        with open(self.directory / "postgres.log", "ab") as log:
            self.process = self._spawn(log)
        wait_until(self._accepts, 60, f"PostgreSQL on {LOOPBACK}:{self.port}")

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            user="postgres",
            group="postgres",
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.directory,
        )

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "postgres.log").read_text(errors="replace")
            raise AssertionError(f"postgres exited {self.process.returncode}: {log[-2000:]}")
        try:
            asyncio.run(self._superuser_query("SELECT 1"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return True

    async def _superuser_query(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(
            host=LOOPBACK,
            port=self.port,
            user="postgres",
            password=SUPERUSER_PASSWORD,
            database="postgres",
            timeout=2,
        )
        try:
            return await conn.fetch(sql, *args) if args else await conn.execute(sql)
        finally:
            await conn.close()

    def terminate_connections(self, user: str = DB_USER) -> int:
        """End every backend of `user`, as a failover or an operator does to its clients
        (the server stays up); waits up to 5 s for each to exit. Returns how many ended."""
        rows = asyncio.run(
            self._superuser_query(
                "SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity"
                " WHERE usename = $1",
                user,
            )
        )
        return sum(1 for row in rows if row["ended"])

    def create_app_database(self) -> None:
        asyncio.run(self._superuser_query(f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'"))
        asyncio.run(self._superuser_query(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}"))

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(
                host=LOOPBACK,
                port=self.port,
                user=DB_USER,
                password=DB_PASSWORD,
                database=DB_NAME,
                timeout=5,
            )
            try:
                return [dict(row) for row in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return asyncio.run(run())

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGINT, 30)  # fast shutdown

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.init()
        server.start()
        server.create_app_database()
        yield server
    finally:
        server.remove()
        assert server.process is None or server.process.poll() is not None


# ---- a dependency that stops answering ----


class BlackHole:
    """A TCP forwarder on loopback that can stop answering without closing anything.

    Until `stall()` it joins each connection to `upstream` (a port on 127.0.0.1); after
    it, and from the start when there is no upstream, connections are accepted and held
    and every byte either way is swallowed: a peer behind a dead route or a frozen host,
    which only a timeout ever ends. `close()` (or leaving the `with`) ends every socket
    and joins every thread, each within a bounded wait.
    """

    def __init__(self, upstream: int | None = None) -> None:
        self.upstream = upstream
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.2)  # so that the accept loop notices close()
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stall(self) -> None:
        self._stalled.set()

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._keep(client)
            if self.upstream is None or self._stalled.is_set():
                continue  # held open, never answered
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            self._start(self._pump, client, upstream)
            self._start(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if self._stalled.is_set():
                continue  # swallowed: the other side never hears of it
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(timeout=10)  # first: no socket is taken in after the snapshot
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(timeout=5)
        threads.append(self._acceptor)
        assert not any(thread.is_alive() for thread in threads), "a black-hole thread hangs"


# ---- Redis ----


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hf-redis-")))
    cluster: bool = False
    slots: tuple[int, int] = (0, 16383)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", LOOPBACK, "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
            )
        wait_until(self._answers, 30, f"redis on {LOOPBACK}:{self.port}")
        if self.cluster:
            self.command("CLUSTER", "ADDSLOTSRANGE", *(str(slot) for slot in self.slots))

    def command(self, *words: str) -> str:
        """One command over RESP, the reply as text (enough for the replies used here)."""
        payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection((LOOPBACK, self.port), timeout=2) as conn:
            conn.sendall(payload.encode())
            time.sleep(0.05)
            return conn.recv(65536).decode(errors="replace")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / "redis.log").read_text(errors="replace")
            raise AssertionError(f"redis-server exited {self.process.returncode}: {log[-1500:]}")
        try:
            return "PONG" in self.command("PING")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, signal.SIGTERM, 15)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster(shards: int) -> list[RedisServer]:
    """`shards` primaries (no replicas), the slots split between them, met and ok."""
    step = 16384 // shards
    nodes = [
        RedisServer(
            port=free_cluster_port(),
            cluster=True,
            slots=(i * step, 16383 if i == shards - 1 else (i + 1) * step - 1),
        )
        for i in range(shards)
    ]
    try:
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            nodes[0].command("CLUSTER", "MEET", LOOPBACK, str(node.port))
        for node in nodes:
            wait_until(lambda n=node: "cluster_state:ok" in n.command("CLUSTER", "INFO"), 30, "ok")
    except BaseException:
        for node in nodes:
            node.remove()
        raise
    return nodes


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
        assert server.process is None or server.process.poll() is not None


# ---- the service ----


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Service:
    """One session-state process (a "pod") on its own 127.0.2.x address."""

    host: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str, port: int = 8080) -> str:
        return f"http://{self.host}:{port}{path}"

    def ws_url(self, port: int = 8443) -> str:
        return f"ws://{self.host}:{port}/ws"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 10.0,
        port: int = 8080,
    ) -> Response:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        all_headers = dict(headers or {})
        if body is not None and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.url(path, port), data=data, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return _response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return _response(error.code, dict(error.headers), error.read())

    def status(self, path: str, timeout: float = 2.0) -> int:
        try:
            return self.request("GET", path, timeout=timeout).status
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: self._alive() and self.status("/health/ready") == 200, timeout, "ready")

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"service exited {self.process.returncode}:\n{self.output()}")
        return True

    def open_sockets(self) -> int:
        """The service's own count of open WebSockets (its /metrics gauge)."""
        text = str(self.request("GET", "/metrics").body)
        match = re.search(r"^session_state_websocket_connections (\S+)$", text, re.MULTILINE)
        assert match, "no socket gauge in /metrics"
        return int(float(match.group(1)))

    def websocket(self, port: int = 8443, timeout: float = 10.0) -> websocket.WebSocket:
        return websocket.create_connection(self.ws_url(port), timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _response(status: int, headers: dict[str, str], raw: bytes) -> Response:
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return Response(status, headers, body)


def service_env(postgres: Postgres, redis_server: RedisServer, host: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        "DB_URL": postgres.url,
        "REDIS_URL": redis_server.url,
        "LOG_LEVEL": "info",
        "POD_IP": host,
        "SECRET_DB_PASSWORD": DB_PASSWORD,
        "SECRET_SESSION_SIGNING_KEY": SIGNING_KEY,
        "DRAIN_DELAY_SECONDS": "0.2",
        "POLL_INTERVAL_SECONDS": "0.5",
        "RESYNC_INTERVAL_SECONDS": "2",
    }


StartService = Callable[..., Service]


def _soft_nofile(soft: int) -> Callable[[], None]:
    """A preexec_fn: the child starts with this soft open-files limit (as a low default
    of an init system would give it)."""

    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return limit


@pytest.fixture
def start_service(
    postgres: Postgres, redis_server: RedisServer, tmp_path: Path
) -> Iterator[StartService]:
    """`start_service(*args, wait=True, soft_nofile=None, **env)`: a service process (its
    soft RLIMIT_NOFILE set to `soft_nofile` when given); all stopped at teardown."""
    started: list[tuple[Service, str]] = []

    def start(*args: str, wait: bool = True, soft_nofile: int | None = None, **env: str) -> Service:
        owner = f"session-state-test-{os.getpid()}-{len(started)}-{time.monotonic_ns()}"
        host = ADDRESSES.allocate(owner)
        log = tmp_path / f"service-{len(started)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "sandbox.images.session_state", *args],
                env={**service_env(postgres, redis_server, host), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                preexec_fn=None if soft_nofile is None else _soft_nofile(soft_nofile),  # noqa: PLW1509
            )
        service = Service(host, process, log)
        started.append((service, owner))
        if wait:
            wait_until(
                lambda: service._alive() and service.status("/health/live") == 200, 30, "live"
            )
        return service

    yield start
    for service, owner in started:
        with contextlib.suppress(ProcessLookupError):
            _stop(service.process, signal.SIGKILL, 10)
        assert service.process.poll() is not None
        ADDRESSES.release(owner)
        assert DB_PASSWORD not in service.output(), "the DB password leaked into the log"
        assert SIGNING_KEY not in service.output(), "the signing key leaked into the log"
