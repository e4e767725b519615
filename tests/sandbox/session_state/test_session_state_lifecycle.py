"""Lifecycle and seeded faults: SIGTERM, dependency outages, every fault variant."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket

from tests.sandbox.session_state.servers import (
    Postgres,
    RedisServer,
    Service,
    StartService,
    free_port,
    needs_servers,
    postgres,
    redis_server,
    start_cluster,
    start_service,
    wait_until,
)

pytestmark = needs_servers
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest
API = "/api/v1/sessions"


def close_code(ws: websocket.WebSocket, timeout: float = 15.0) -> int:
    ws.settimeout(timeout)
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


@dataclass
class Acknowledged:
    """Writes the service answered 2xx: (session id, version)."""

    writes: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, session: str, version: int) -> None:
        with self.lock:
            self.writes.append((session, version))


def keep_writing(service: Service, acknowledged: Acknowledged, stop: threading.Event) -> None:
    """Create a session, then patch it, until the service stops answering."""
    session: str | None = None
    while not stop.is_set():
        try:
            if session is None:
                answer = service.request("POST", API, {"owner": "w", "state": {"n": 0}}, timeout=5)
            else:
                answer = service.request("PATCH", f"{API}/{session}", {"n": 1}, timeout=5)
        except (OSError, urllib.error.URLError):
            return
        if answer.status in (200, 201):
            session = answer.body["id"]
            acknowledged.add(answer.body["id"], answer.body["version"])
        elif answer.status >= 500:
            return


def sigterm_under_load(service: Service) -> tuple[Acknowledged, list[int], int, float]:
    """Writers and two sockets busy, then SIGTERM: what was acknowledged, the close codes."""
    session = service.request("POST", API, {"owner": "w", "state": {}}).body["id"]
    sockets = [service.websocket(port) for port in (8443, 8080)]
    for ws in sockets:
        ws.send(json.dumps({"type": "subscribe", "session": session}))
    acknowledged, stop = Acknowledged(), threading.Event()
    writers = [
        threading.Thread(target=keep_writing, args=(service, acknowledged, stop)) for _ in range(4)
    ]
    for writer in writers:
        writer.start()
    wait_until(lambda: len(acknowledged.writes) >= 40, 30, "some acknowledged writes")
    began = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    codes = [close_code(ws) for ws in sockets]
    exit_code = service.process.wait(timeout=30)
    elapsed = time.monotonic() - began
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    for ws in sockets:
        ws.close()
    return acknowledged, codes, exit_code, elapsed


def missing_writes(postgres: Postgres, acknowledged: Acknowledged) -> list[tuple[str, int]]:
    rows = postgres.query("SELECT session_id, version FROM session_events")
    committed = {(str(row["session_id"]), row["version"]) for row in rows}
    return [write for write in acknowledged.writes if write not in committed]


def test_sigterm_closes_sockets_1001_and_loses_no_acknowledged_write(
    start_service: StartService, postgres: Postgres
) -> None:
    service = start_service()
    service.wait_ready()
    acknowledged, codes, exit_code, elapsed = sigterm_under_load(service)
    assert codes == [1001, 1001]
    assert exit_code == 0 and elapsed < 20
    assert len(acknowledged.writes) >= 40
    assert missing_writes(postgres, acknowledged) == []
    assert "SIGTERM received" in service.output()


def test_drops_writes_loses_acknowledged_writes_and_the_same_test_sees_it(
    start_service: StartService, postgres: Postgres
) -> None:
    service = start_service("--fault", "drops-writes", FLUSH_INTERVAL_SECONDS="5")
    service.wait_ready()
    acknowledged, codes, exit_code, _ = sigterm_under_load(service)
    assert codes == [1001, 1001] and exit_code == 0
    lost = missing_writes(postgres, acknowledged)
    assert lost, "the drops-writes fault lost nothing: the check cannot catch it"


def test_readiness_fails_when_postgresql_stops_and_liveness_stays(
    start_service: StartService, postgres: Postgres
) -> None:
    service = start_service()
    service.wait_ready()
    session = service.request("POST", API, {"owner": "o", "state": {}}).body["id"]
    postgres.stop()
    try:
        wait_until(lambda: service.status("/health/ready") == 503, 15, "readiness 503")
        ready = service.request("GET", "/health/ready")
        assert "postgresql" in ready.body["error"]["message"]
        assert service.status("/health/live") == 200
        write = service.request("PATCH", f"{API}/{session}", {"a": 1})
        assert write.status == 503 and write.body["error"]["code"] == "unavailable"
        assert int(write.headers["Retry-After"]) > 0
        fresh = service.request("GET", f"{API}/{uuid.uuid4()}")
        assert fresh.status == 503
    finally:
        postgres.start()
    service.wait_ready(30)
    assert service.request("PATCH", f"{API}/{session}", {"a": 1}).status == 200


def test_starts_without_postgresql_and_becomes_ready_when_it_answers(
    start_service: StartService,
) -> None:
    dead = f"postgresql://harmonyflow@127.0.0.1:{free_port()}/harmonyflow"
    service = start_service(DB_URL=dead)
    assert service.status("/health/live") == 200
    ready = service.request("GET", "/health/ready")
    assert ready.status == 503 and "postgresql" in ready.body["error"]["message"]
    answer = service.request("POST", API, {"owner": "o", "state": {}})
    assert answer.status == 503 and "Retry-After" in answer.headers
    assert service.terminate() == 0


def test_a_wrong_password_is_503_and_never_logged(start_service: StartService) -> None:
    wrong = "wrong-password-7d3e"
    service = start_service(SECRET_DB_PASSWORD=wrong)
    wait_until(lambda: "InvalidPasswordError" in service.output(), 15, "the auth failure logged")
    ready = service.request("GET", "/health/ready")
    assert ready.status == 503 and "postgresql" in ready.body["error"]["message"]
    assert service.request("GET", f"{API}/{uuid.uuid4()}").status == 503
    assert service.terminate() == 0
    assert wrong not in service.output()


def test_ready_before_db_answers_200_with_no_database(start_service: StartService) -> None:
    dead = f"postgresql://harmonyflow@127.0.0.1:{free_port()}/harmonyflow"
    service = start_service("--fault", "ready-before-db", DB_URL=dead)
    assert service.status("/health/ready") == 200
    assert service.request("POST", API, {"owner": "o", "state": {}}).status == 503


def test_never_ready(start_service: StartService) -> None:
    service = start_service("--fault", "never-ready")
    time.sleep(1.0)
    ready = service.request("GET", "/health/ready")
    assert ready.status == 503 and ready.body["error"]["code"] == "not_ready"
    assert service.status("/health/live") == 200


def test_slow_start(start_service: StartService) -> None:
    service = start_service("--fault", "slow-start", STARTUP_SECONDS="2")
    assert service.status("/health/ready") == 503
    service.wait_ready(20)


def test_liveness_hang(start_service: StartService) -> None:
    service = start_service("--fault", "liveness-hang", HANG_AFTER_SECONDS="1")
    time.sleep(1.2)
    with pytest.raises(TimeoutError):
        service.request("GET", "/health/live", timeout=1.0)
    assert service.terminate() == 0


def test_ignore_sigterm(start_service: StartService) -> None:
    service = start_service("--fault", "ignore-sigterm")
    service.wait_ready()
    service.process.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert service.process.poll() is None and service.status("/health/ready") == 200
    service.process.kill()
    assert service.process.wait(timeout=10) == -signal.SIGKILL


def test_a_socket_opened_during_the_drain_delay_is_served_then_closed_1001(
    start_service: StartService,
) -> None:
    """The ingress may route a reconnecting client to a pod for up to one sync after it
    left the endpoints: that client must get a socket, not a 503."""
    service = start_service(DRAIN_DELAY_SECONDS="2")
    service.wait_ready()
    session = service.request("POST", API, {"owner": "w", "state": {}}).body["id"]
    service.process.send_signal(signal.SIGTERM)
    wait_until(lambda: service.status("/health/ready") == 503, 5, "readiness failing")
    late = service.websocket()
    late.send(json.dumps({"type": "subscribe", "session": session}))
    assert json.loads(late.recv())["type"] == "subscribed"
    assert close_code(late) == 1001
    assert service.process.wait(timeout=30) == 0


def test_abrupt_exit_resets_sockets_without_a_close_frame(start_service: StartService) -> None:
    service = start_service("--fault", "abrupt-exit")
    service.wait_ready()
    session = service.request("POST", API, {"owner": "w", "state": {}}).body["id"]
    sockets = [service.websocket(port) for port in (8443, 8080)]
    for ws in sockets:
        ws.send(json.dumps({"type": "subscribe", "session": session}))
        ws.recv()  # subscribed: the socket is open end to end
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=10) == 0
    for ws in sockets:
        with pytest.raises(ConnectionResetError):  # a reset, not even a FIN
            close_code(ws, timeout=5)
    assert "connections reset" in service.output()


def test_sigint_is_graceful_too(start_service: StartService) -> None:
    service = start_service("--fault", "ignore-sigterm")
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=30) == 0


def test_crash(start_service: StartService) -> None:
    service = start_service("--fault", "crash", CRASH_AFTER_SECONDS="1", wait=False)
    assert service.process.wait(timeout=30) == 1
    assert "crash fault" in service.output()


def test_burns_cpu(start_service: StartService) -> None:
    service = start_service("--fault", "burns-cpu", BURN_MS="300")
    began = time.monotonic()
    assert service.status("/health/live") == 200
    assert time.monotonic() - began >= 0.3


def test_bad_setting_exits_2(start_service: StartService) -> None:
    service = start_service(LOG_LEVEL="chatty", wait=False)
    assert service.process.wait(timeout=30) == 2


def test_redis_cluster_mode(start_service: StartService) -> None:
    """Three shards, each replica given a different node: pub/sub crosses the cluster bus,
    cache keys spread over the shards."""
    nodes = start_cluster(3)
    try:
        slow_resync = {"RESYNC_INTERVAL_SECONDS": "60"}  # a push can only come by pub/sub
        a = start_service(REDIS_URL=nodes[0].url, **slow_resync)
        b = start_service(REDIS_URL=nodes[2].url, **slow_resync)
        a.wait_ready()
        b.wait_ready()
        sessions = [
            a.request("POST", API, {"owner": "c", "state": {"n": i}}).body["id"] for i in range(8)
        ]
        ws = b.websocket()
        try:
            for session in sessions:
                ws.send(json.dumps({"type": "subscribe", "session": session, "since": 1}))
                assert json.loads(ws.recv())["type"] == "subscribed"
            ws.settimeout(5)
            for session in sessions:
                assert a.request("PATCH", f"{API}/{session}", {"x": 1}).status == 200
                event: dict[str, Any] = json.loads(ws.recv())
                assert (event["type"], event["session"], event["seq"]) == ("event", session, 2)
        finally:
            ws.close()
        for session in sessions:
            assert b.request("GET", f"{API}/{session}").body["state"]["x"] == 1
        keys = [int(node.command("DBSIZE").strip().lstrip(":")) for node in nodes]
        assert sum(keys) == len(sessions) and sum(1 for k in keys if k) >= 2, keys
        assert "is a cluster" in a.output() and "is a cluster" in b.output()
        assert a.terminate() == 0 and b.terminate() == 0
    finally:
        for node in nodes:
            node.remove()
    assert all(node.process is not None and node.process.poll() is not None for node in nodes)


@pytest.fixture(autouse=True)
def _postgres_is_up(postgres: Postgres, redis_server: RedisServer) -> None:
    """A test that stopped a server restarted it; the next test starts from a healthy pair."""
    assert postgres.process is not None and postgres.process.poll() is None
    assert redis_server.process is not None and redis_server.process.poll() is None
