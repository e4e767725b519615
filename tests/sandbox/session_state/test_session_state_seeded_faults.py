"""Seeded faults that only a dependency outage, a reconnect or a shutdown reveals:
`no-db-reconnect`, `ws-resume-from-head`, `no-request-timeout`, `no-redis-timeout`,
`readiness-ignores-redis` and `slow-shutdown`, each shown against real PostgreSQL and
Redis, most of them next to the healthy service doing the same thing right."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from typing import Any

import pytest
import websocket

from sandbox.images.session_state.config import parse_db_url
from sandbox.images.session_state.db import ConnectionPool, Database, PinnedPool
from sandbox.images.session_state.errors import DB_UNAVAILABLE
from sandbox.images.session_state.faults import FAULTS, HEALTHY
from tests.sandbox.session_state.servers import (
    DB_PASSWORD,
    BlackHole,
    Postgres,
    RedisServer,
    Service,
    StartService,
    free_port,
    needs_servers,
    postgres,
    redis_server,
    start_service,
    wait_until,
)

pytestmark = needs_servers
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest
API = "/api/v1/sessions"
HEALTHY_OR_FAULT = pytest.mark.parametrize("faulty", [False, True], ids=["healthy", "fault"])


def fault_args(faulty: bool, name: str) -> tuple[str, ...]:
    return ("--fault", name) if faulty else ()


def create_session(service: Service) -> str:
    answer = service.request("POST", API, {"owner": "seeded", "state": {"n": 0}})
    assert answer.status == 201, answer
    return str(answer.body["id"])


def wait_schema(service: Service, timeout: float = 30.0) -> None:
    """PostgreSQL migrated and answering, whatever readiness makes of Redis."""

    def migrated() -> bool:
        body = service.request("GET", "/health/ready", timeout=5).body
        return bool(body and body.get("checks", {}).get("postgresql") == "ok")

    wait_until(migrated, timeout, "the schema migrated")


def next_event(ws: websocket.WebSocket, timeout: float) -> dict[str, Any]:
    """The next `event` frame (heartbeats skipped); a timeout raises."""
    ws.settimeout(timeout)
    while True:
        message: dict[str, Any] = json.loads(ws.recv())
        if message["type"] == "event":
            return message


def subscribe(ws: websocket.WebSocket, session: str, since: int) -> None:
    ws.send(json.dumps({"type": "subscribe", "session": session, "since": since}))
    ws.settimeout(5)
    assert json.loads(ws.recv())["type"] == "subscribed"


def close_code(ws: websocket.WebSocket, timeout: float) -> int:
    """The code of the close frame; a socket that ends without one raises."""
    ws.settimeout(timeout)
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


def send_get(service: Service, path: str) -> socket.socket:
    """A GET written on a raw socket, so the test sees exactly when and how it ends."""
    sock = socket.create_connection((service.host, 8080), timeout=5)
    request = f"GET {path} HTTP/1.1\r\nHost: {service.host}\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything until the peer closes (a reset counts as a close), within `timeout`."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


# ---- no-db-reconnect ----


@HEALTHY_OR_FAULT
def test_no_db_reconnect_fails_until_restarted_after_connections_are_terminated(
    start_service: StartService, postgres: Postgres, faulty: bool
) -> None:
    service = start_service(*fault_args(faulty, "no-db-reconnect"))
    service.wait_ready()
    session = create_session(service)
    assert service.request("PATCH", f"{API}/{session}", {"n": 1}).status == 200
    assert postgres.terminate_connections() >= 1
    assert postgres.query("SELECT 1 AS one") == [{"one": 1}]  # PostgreSQL itself is fine
    if not faulty:
        wait_until(
            lambda: service.request("PATCH", f"{API}/{session}", {"n": 2}).status == 200,
            10,
            "the healthy service back on new connections",
        )
        statuses = [service.request("PATCH", f"{API}/{session}", {"n": 3}).status]
        statuses += [service.status("/health/ready")]
        assert statuses == [200, 200]
        return
    began = time.monotonic()
    answers = []
    while time.monotonic() - began < 3.0:
        answers.append(service.request("PATCH", f"{API}/{session}", {"n": 2}))
        answers.append(service.request("GET", f"{API}?owner=seeded"))
        time.sleep(0.2)
    assert len(answers) >= 6
    assert {a.status for a in answers} == {503}, [a.status for a in answers]
    assert {a.body["error"]["code"] for a in answers} == {"unavailable"}
    ready = service.request("GET", "/health/ready")
    assert ready.status == 503 and "postgresql" in ready.body["error"]["message"]
    assert service.status("/health/live") == 200  # nothing restarts it


@pytest.mark.parametrize(
    ("pool", "recovers"),
    [
        pytest.param("asyncpg", True, id="healthy-asyncpg-pool"),
        pytest.param("pinned-healthy", True, id="pinned-pool-healthy-decision"),
        pytest.param("pinned-fault", False, id="pinned-pool-fault"),
    ],
)
def test_the_fault_pool_differs_from_a_healthy_pool_only_in_reconnecting(
    postgres: Postgres, pool: str, recovers: bool
) -> None:
    """The same `PinnedPool` recovers when `opens_connection` lets it, as asyncpg's does:
    the fault is that one decision, not a different pool."""

    async def ping(connections: ConnectionPool) -> bool:
        try:
            async with connections.acquire(timeout=2.0) as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=2.0) == 1)
        except DB_UNAVAILABLE:
            return False

    async def run() -> list[bool]:
        db = Database(parse_db_url(postgres.url, DB_PASSWORD), 2.0, 2)
        await db.open()  # asyncpg's pool, as the healthy service has
        connections: ConnectionPool = db.pool
        if pool != "asyncpg":
            fault = FAULTS["no-db-reconnect"] if pool == "pinned-fault" else HEALTHY
            connections = PinnedPool(db.connect, 2, fault)
        try:
            assert await ping(connections)
            assert await asyncio.to_thread(postgres.terminate_connections) >= 1
            return [await ping(connections) for _ in range(4)]
        finally:
            connections.terminate()
            await db.close()

    answered = asyncio.run(run())
    if recovers:
        assert answered[1:] == [True] * 3, answered  # the first may meet the dying backend
    else:
        assert answered == [False] * 4


# ---- ws-resume-from-head ----


@HEALTHY_OR_FAULT
def test_ws_resume_from_head_skips_what_a_reconnecting_client_missed(
    start_service: StartService, faulty: bool
) -> None:
    service = start_service(*fault_args(faulty, "ws-resume-from-head"))
    service.wait_ready()
    session = create_session(service)
    ws = service.websocket()
    try:
        subscribe(ws, session, since=0)
        last_seen = next_event(ws, 5)["seq"]
        assert last_seen == 1  # a first subscription gets the log, fault or not
    finally:
        ws.close()
    for n in range(3):  # seq 2, 3, 4: written while the client was away
        assert service.request("PATCH", f"{API}/{session}", {"n": n}).status == 200
    ws = service.websocket()
    try:
        subscribe(ws, session, since=last_seen)
        received: list[int] = []
        for n in range(5):  # each patch a new event; stop at the first one that arrives
            assert service.request("PATCH", f"{API}/{session}", {"after": n}).status == 200
            try:
                received.append(next_event(ws, 2)["seq"])
                break
            except websocket.WebSocketTimeoutException:
                continue
        assert received, "the resumed subscription got no event at all"
        while received[-1] < 5:
            received.append(next_event(ws, 5)["seq"])
    finally:
        ws.close()
    if faulty:
        assert received[0] >= 5, received  # 2, 3 and 4 are silently gone
    else:
        assert received == [2, 3, 4, 5]


# ---- no-request-timeout, no-redis-timeout ----


def tag_args(tag: str) -> tuple[str, ...]:
    return ("--fault", tag) if tag else ()


@pytest.mark.parametrize(
    ("tag", "hangs"),
    [
        pytest.param("", False, id="healthy"),
        pytest.param("no-request-timeout", True, id="no-request-timeout"),
        # only Redis lost its bound: a stalled database is still a prompt 503
        pytest.param("no-redis-timeout", False, id="no-redis-timeout"),
    ],
)
def test_a_stalled_database_hangs_requests_only_without_a_database_timeout(
    start_service: StartService, postgres: Postgres, tag: str, hangs: bool
) -> None:
    with BlackHole(upstream=postgres.port) as hole:
        db_url = postgres.url.replace(f":{postgres.port}/", f":{hole.port}/")
        service = start_service(*tag_args(tag), DB_URL=db_url)
        service.wait_ready()
        create_session(service)  # a pooled connection, through the proxy
        hole.stall()
        began = time.monotonic()
        if hangs:
            with pytest.raises(TimeoutError):
                service.request("GET", f"{API}?owner=seeded", timeout=12)
            assert time.monotonic() - began >= 12
            return
        answer = service.request("GET", f"{API}?owner=seeded", timeout=12)
        elapsed = time.monotonic() - began
        assert answer.status == 503 and answer.body["error"]["code"] == "unavailable"
        assert elapsed < 10, elapsed


@pytest.mark.parametrize(
    ("tag", "hangs"),
    [
        pytest.param("", False, id="healthy"),
        pytest.param("no-request-timeout", True, id="no-request-timeout"),
        pytest.param("no-redis-timeout", True, id="no-redis-timeout"),
    ],
)
def test_a_black_holed_redis_hangs_requests_only_without_a_redis_timeout(
    start_service: StartService, tag: str, hangs: bool
) -> None:
    with BlackHole() as hole:
        redis_url = f"redis://127.0.0.1:{hole.port}"
        service = start_service(*tag_args(tag), REDIS_URL=redis_url)
        wait_schema(service)
        began = time.monotonic()
        if hangs:
            with pytest.raises(TimeoutError):
                service.request("POST", API, {"owner": "seeded", "state": {}}, timeout=6)
            assert time.monotonic() - began >= 6
            return
        answer = service.request("POST", API, {"owner": "seeded", "state": {}}, timeout=6)
        assert answer.status == 201  # Redis is a cache: its outage costs one timeout
        assert time.monotonic() - began < 3


# ---- readiness-ignores-redis ----


@HEALTHY_OR_FAULT
def test_readiness_ignores_redis_stays_ready_with_redis_down(
    start_service: StartService, faulty: bool
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"
    service = start_service(*fault_args(faulty, "readiness-ignores-redis"), REDIS_URL=dead)
    wait_schema(service)
    ready = service.request("GET", "/health/ready")
    if faulty:
        assert ready.status == 200 and ready.body["checks"] == {"postgresql": "ok"}
    else:
        assert ready.status == 503 and "redis" in ready.body["error"]["message"]
    assert service.request("POST", API, {"owner": "seeded", "state": {}}).status == 201


# ---- slow-shutdown ----


def test_slow_shutdown_outlives_the_grace_period_and_sigkill_cuts_its_clients(
    start_service: StartService,
) -> None:
    service = start_service("--fault", "slow-shutdown")  # the default: 45 s, over 30 s
    service.wait_ready()
    session = create_session(service)
    ws = service.websocket()
    try:
        subscribe(ws, session, since=0)
        next_event(ws, 5)
        service.process.send_signal(signal.SIGTERM)
        wait_until(lambda: service.status("/health/ready") == 503, 5, "readiness failing")
        held = send_get(service, f"{API}/{session}")
        try:
            time.sleep(2.0)  # the healthy drain (DRAIN_DELAY_SECONDS 0.2) is long over
            assert service.process.poll() is None
            assert service.status("/health/live") == 200
            with pytest.raises(websocket.WebSocketTimeoutException):
                close_code(ws, timeout=1.0)  # no close frame
            with pytest.raises(TimeoutError):
                read_all(held, timeout=1.0)  # no answer
            service.process.kill()  # the kubelet, at the end of the grace period
            assert service.process.wait(timeout=10) == -signal.SIGKILL
            assert read_all(held, timeout=5) == b""  # cut: not even a status line
        finally:
            held.close()
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            close_code(ws, timeout=5)  # ended without a close frame
    finally:
        ws.close()
    assert "slow-shutdown fault" in service.output()


def test_slow_shutdown_drains_after_slow_shutdown_seconds(start_service: StartService) -> None:
    """Not a hang: once SLOW_SHUTDOWN_SECONDS pass, held requests are answered and
    sockets closed 1001, as the healthy service does at once."""
    service = start_service("--fault", "slow-shutdown", SLOW_SHUTDOWN_SECONDS="2.5")
    service.wait_ready()
    session = create_session(service)
    ws = service.websocket()
    try:
        subscribe(ws, session, since=0)
        next_event(ws, 5)
        began = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        held = send_get(service, f"{API}/{session}")
        try:
            answer = read_all(held, timeout=10)
        finally:
            held.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert time.monotonic() - began >= 2.5
        assert close_code(ws, timeout=10) == 1001
    finally:
        ws.close()
    assert service.process.wait(timeout=30) == 0
    assert time.monotonic() - began < 15


@pytest.fixture(autouse=True)
def _servers_are_up(postgres: Postgres, redis_server: RedisServer) -> None:
    assert postgres.process is not None and postgres.process.poll() is None
    assert redis_server.process is not None and redis_server.process.poll() is None
