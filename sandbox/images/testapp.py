"""A small HTTP service standing in for session-state: `python -m sandbox.images.testapp`.

Binds `$POD_IP` (default 127.0.0.1) on 8080 and 8443 (plain HTTP on both; `/ws`
answers 200 until the reference service arrives). Routes: `/health/live`,
`/health/ready`, `/api/v1/ping`, `/burn?ms=N` (CPU, at most 5000 ms),
`/alloc?mb=N` (holds N MiB, at most 512; `mb=0` frees), `/probe` (UDP loss, TCP
round trips toward a loopback echo server, a bare TCP connect, or an HTTP GET, to an
address or a name the pod resolves, for the pod network's live tests). One log line
per request on stdout. On SIGTERM readiness fails at once, in-flight requests finish,
and it exits 0 within a few seconds.

Seeded faults are chosen with `--variant` (the image registry maps tags to them):
healthy, never-ready, liveness-hang, crash, slow-start, ignore-sigterm.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PORTS = (8080, 8443)
MAX_BURN_MS = 5000
MAX_ALLOC_MB = 512
MIB = 1024 * 1024
VARIANTS = ("healthy", "never-ready", "liveness-hang", "crash", "slow-start", "ignore-sigterm")
log = logging.getLogger("testapp")


@dataclass
class AppState:
    variant: str
    started: float = field(default_factory=time.monotonic)
    hang_after: float = 20.0
    startup_seconds: float = 20.0
    drain_delay: float = 1.0
    drain_timeout: float = 5.0
    stopping: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: list[bytearray] = field(default_factory=list)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def hanging(self) -> bool:
        return self.variant == "liveness-hang" and self.uptime() >= self.hang_after

    def ready(self) -> bool:
        if self.stopping.is_set() or self.variant == "never-ready":
            return False
        return not (self.variant == "slow-start" and self.uptime() < self.startup_seconds)


def burn(ms: int) -> int:
    """Spin for `ms` milliseconds (bounded); returns the milliseconds burnt."""
    ms = max(0, min(ms, MAX_BURN_MS))
    deadline = time.perf_counter() + ms / 1000
    counter = 0
    while time.perf_counter() < deadline:
        counter += 1
    return ms


def allocate(state: AppState, mb: int) -> int:
    """Hold `mb` MiB (bounded), touching every page so that RSS grows; replaces what was held."""
    mb = max(0, min(mb, MAX_ALLOC_MB))
    state.held.clear()
    if mb:
        block = bytearray(mb * MIB)
        block[::4096] = b"\x01" * len(range(0, len(block), 4096))
        state.held.append(block)
    return mb


class Handler(BaseHTTPRequestHandler):
    server_version = "testapp/1.0"
    protocol_version = "HTTP/1.1"
    state: AppState  # set on the subclass built per process

    def do_GET(self) -> None:
        with self.state.lock:
            self.state.in_flight += 1
        try:
            self._route()
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def _route(self) -> None:
        if self.state.hanging():
            self.state.stopping.wait(3600)
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        route = ROUTES.get(url.path)
        if route is None:
            self._send(404, {"error": "not found", "path": url.path})
            return
        code, body = route(self.state, query)
        self._send(code, body)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], format % args)


def _int(query: dict[str, str], key: str) -> int:
    try:
        return int(query.get(key, "0"))
    except ValueError:
        return 0


def _live(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"status": "live"}


def _ready(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return (200, {"status": "ready"}) if state.ready() else (503, {"status": "not ready"})


def _ping(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"pong": True, "pod": os.environ.get("HOSTNAME", ""), "variant": state.variant}


def _burn(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"burnt_ms": burn(_int(query, "ms"))}


def _alloc(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"held_mb": allocate(state, _int(query, "mb"))}


MAX_PROBES = 5000
MAX_HTTP_BODY = 65536
PROBE_TIMEOUT_SECONDS = 5.0


def _probe(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """What this pod sees of the network toward a loopback echo server (for live tests of the
    pod network): `proto=udp` sends `count` numbered datagrams 1 ms apart and counts the
    echoes back within `timeout` s; `proto=tcp` connects once and times `count` one-byte
    echoes (`rtt_ms`, the median); `proto=connect` only connects (to any server, an HTTP
    one too: NetworkPolicy judges connections); `proto=http` GETs `path` on a new
    connection and answers the status and body (a Service's live test asks which pod
    answered). `host` is an address or a name, resolved as the pod resolves names (its
    resolv.conf: the cluster DNS, the search list); the answer says which `address`.
    Loopback addresses only; a failure answers its exception's name (`TimeoutError`:
    dropped, `ConnectionRefusedError`: no one listens, `gaierror`: no such name)."""
    host, port, count = query.get("host", ""), _int(query, "port"), _int(query, "count") or 1
    timeout = min(PROBE_TIMEOUT_SECONDS, float(query.get("timeout", "2") or 2))
    if not host or not 0 < port < 65536 or not 0 < count <= MAX_PROBES:
        return 400, {"error": "want host=127.x.y.z or a name, port, count <= 5000"}
    try:
        address = _resolve(host)
    except OSError as error:
        return 200, {"error": type(error).__name__, "detail": str(error)}
    if not address.startswith("127."):
        return 400, {"error": f"{host} is {address}, not a loopback address"}
    try:
        if query.get("proto") == "udp":
            return 200, {**_probe_udp(address, port, count, timeout), "address": address}
        if query.get("proto") == "connect":
            return 200, {**_probe_connect(address, port, timeout), "address": address}
        if query.get("proto") == "http":
            path = query.get("path", "/")
            return 200, {**_probe_http(address, port, path, timeout), "address": address}
        return 200, {**_probe_tcp(address, port, count, timeout), "address": address}
    except OSError as error:
        return 200, {"error": type(error).__name__, "detail": str(error), "address": address}


def _resolve(host: str) -> str:
    """The host's IPv4 address: a literal as is, a name through the system's resolver."""
    if host.count(".") == 3:
        with contextlib.suppress(OSError):
            return socket.inet_ntoa(socket.inet_aton(host))
    info = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    return str(info[0][4][0])


def _probe_udp(host: str, port: int, count: int, timeout: float) -> dict[str, Any]:
    received: set[int] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        sock.setblocking(False)
        for sequence in range(count):
            with contextlib.suppress(PermissionError):  # dropped at output, as iptables drops
                sock.send(sequence.to_bytes(4, "big"))
            time.sleep(0.001)
            _drain(sock, received)  # as it goes: a socket buffer holds only a few hundred
        deadline = time.monotonic() + timeout
        while len(received) < count and (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                _drain(sock, received)
    return {"sent": count, "received": len(received)}


def _drain(sock: socket.socket, received: set[int]) -> None:
    while True:
        try:
            received.add(int.from_bytes(sock.recv(64)[:4], "big"))
        except (BlockingIOError, ConnectionRefusedError):
            return


def _probe_connect(host: str, port: int, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout):
        return {"connected": True, "connect_ms": (time.monotonic() - started) * 1000}


def _probe_http(host: str, port: int, path: str, timeout: float) -> dict[str, Any]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path if path.startswith("/") else f"/{path}")
        answer = connection.getresponse()
        text = answer.read(MAX_HTTP_BODY).decode(errors="replace")
    finally:
        connection.close()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return {"status": answer.status, "body": body}


def _probe_tcp(host: str, port: int, count: int, timeout: float) -> dict[str, Any]:
    times = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        for _ in range(count):
            started = time.monotonic()
            sock.sendall(b"x")
            if not sock.recv(1):
                raise ConnectionResetError("the echo server closed")
            times.append((time.monotonic() - started) * 1000)
    times.sort()
    return {"sent": count, "received": len(times), "rtt_ms": times[len(times) // 2]}


def _ws(state: AppState, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"websocket": "not yet"}


Route = Callable[[AppState, dict[str, str]], tuple[int, dict[str, Any]]]
ROUTES: dict[str, Route] = {
    "/health/live": _live,
    "/health/ready": _ready,
    "/api/v1/ping": _ping,
    "/burn": _burn,
    "/alloc": _alloc,
    "/ws": _ws,
    "/probe": _probe,
}


def serve(state: AppState, host: str) -> list[ThreadingHTTPServer]:
    handler = type("BoundHandler", (Handler,), {"state": state})
    servers = [ThreadingHTTPServer((host, port), handler) for port in PORTS]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def drain(state: AppState, servers: list[ThreadingHTTPServer]) -> None:
    """Fail readiness, keep serving briefly, stop accepting, wait for in-flight requests."""
    time.sleep(state.drain_delay)
    for server in servers:
        server.shutdown()
        server.server_close()
    deadline = time.monotonic() + state.drain_timeout
    while state.in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def install_signals(state: AppState) -> None:
    if state.variant == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return
    signal.signal(signal.SIGTERM, lambda signo, frame: state.stopping.set())
    signal.signal(signal.SIGINT, lambda signo, frame: state.stopping.set())


def wait_for_stop(state: AppState) -> int:
    """Block until SIGTERM (exit code 0) or the crash variant's moment (exit code 1)."""
    while not state.stopping.wait(0.1):
        if state.variant == "crash" and state.uptime() >= 2.0:
            log.error("crash variant: exiting with code 1")
            return 1
    log.info("SIGTERM received: readiness fails, draining")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="testapp", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="healthy")
    return parser.parse_args(argv)


def state_from_env(variant: str) -> AppState:
    env = os.environ
    return AppState(
        variant=variant,
        hang_after=float(env.get("HANG_AFTER_SECONDS", "20")),
        startup_seconds=float(env.get("STARTUP_SECONDS", "20")),
        drain_delay=float(env.get("DRAIN_DELAY_SECONDS", "1")),
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    state = state_from_env(parse_args(sys.argv[1:] if argv is None else argv).variant)
    host = os.environ.get("POD_IP") or "127.0.0.1"
    install_signals(state)
    servers = serve(state, host)
    log.info("testapp %s listening on %s:%s", state.variant, host, PORTS)
    code = wait_for_stop(state)
    if code == 0:
        drain(state, servers)
        log.info("drained; exiting 0")
    logging.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
