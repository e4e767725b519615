"""WebSocket against two replicas: replay, live push across replicas, reconnect, bad frames."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from tests.sandbox.session_state.servers import (
    RedisServer,
    Service,
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
    wait_until,
)

pytestmark = needs_servers
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest
API = "/api/v1/sessions"


@pytest.fixture
def replicas(start_service: StartService) -> Iterator[tuple[Service, Service]]:
    a, b = start_service(), start_service()
    a.wait_ready()
    b.wait_ready()
    yield a, b


def recv(ws: websocket.WebSocket, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame that is not a heartbeat."""
    deadline = time.monotonic() + timeout
    while True:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        message: dict[str, Any] = json.loads(ws.recv())
        if message.get("type") != "ping":
            return message


def events(ws: websocket.WebSocket, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        message = recv(ws, max(0.1, deadline - time.monotonic()))
        assert message["type"] == "event", message
        found.append(message)
    return found


def assert_quiet(ws: websocket.WebSocket, seconds: float) -> None:
    """No event arrives for `seconds` (heartbeats are fine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            message = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            return
        assert message["type"] == "ping", f"unexpected {message}"


def close_code(ws: websocket.WebSocket, timeout: float = 10.0) -> int:
    """Read frames until the server's close frame; its status code."""
    ws.settimeout(timeout)
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


def subscribe(ws: websocket.WebSocket, session: str, since: int = 0) -> None:
    ws.send(json.dumps({"type": "subscribe", "session": session, "since": since}))
    answer = recv(ws)
    assert answer == {
        "type": "subscribed",
        "session": session,
        "since": since,
        "server": answer.get("server"),
    }
    assert answer["server"], "the answer names the pod (its address) that serves the socket"


def create(service: Service, state: dict[str, Any]) -> dict[str, Any]:
    answer = service.request("POST", API, {"owner": "ws", "state": state})
    assert answer.status == 201
    body: dict[str, Any] = answer.body
    return body


def patch(service: Service, session: str, state: dict[str, Any]) -> dict[str, Any]:
    answer = service.request("PATCH", f"{API}/{session}", state)
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def test_replay_then_live_updates_written_on_the_other_replica(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    session = create(a, {"n": 0})["id"]
    patch(a, session, {"n": 1})
    ws = b.websocket()
    try:
        subscribe(ws, session, since=0)
        replayed = events(ws, 2)
        assert [(e["seq"], e["kind"], e["state"]) for e in replayed] == [
            (1, "created", {"n": 0}),
            (2, "updated", {"n": 1}),
        ]
        for n in range(2, 12):
            patch(a if n % 2 else b, session, {"n": n})
        live = events(ws, 10)
        assert [e["seq"] for e in live] == list(range(3, 13))
        assert [e["state"]["n"] for e in live] == list(range(2, 12))
        assert all(e["session"] == session and e["version"] == e["seq"] for e in live)
        assert a.request("DELETE", f"{API}/{session}").status == 204
        deleted = events(ws, 1)[0]
        assert (deleted["seq"], deleted["kind"], deleted["state"]) == (13, "deleted", None)
        assert_quiet(ws, 1.0)
    finally:
        ws.close()


def test_reconnect_with_since_gets_exactly_the_missed_events(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    session = create(a, {"n": 0})["id"]
    ws = a.websocket(port=8080)  # /ws is served on 8080 too
    subscribe(ws, session, since=0)
    last_seen = events(ws, 1)[-1]["seq"]
    ws.close()
    for n in range(1, 6):
        patch(b, session, {"n": n})
    again = b.websocket()
    try:
        subscribe(again, session, since=last_seen)
        missed = events(again, 5)
        assert [e["seq"] for e in missed] == [2, 3, 4, 5, 6]
        assert_quiet(again, 1.0)
        patch(a, session, {"n": 6})
        assert [e["seq"] for e in events(again, 1)] == [7]
    finally:
        again.close()


def test_concurrent_writers_are_seen_in_order_without_gaps(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    session = create(a, {"n": 0})["id"]
    watchers = [a.websocket(), b.websocket()]
    try:
        for ws in watchers:
            subscribe(ws, session)

        def write(service: Service, key: str) -> None:
            for n in range(15):
                patch(service, session, {key: n})

        threads = [threading.Thread(target=write, args=(s, k)) for s, k in ((a, "a"), (b, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for ws in watchers:
            assert [e["seq"] for e in events(ws, 31)] == list(range(1, 32))
            assert_quiet(ws, 0.5)
    finally:
        for ws in watchers:
            ws.close()


def test_without_pubsub_replicas_poll_the_event_log(
    replicas: tuple[Service, Service], redis_server: RedisServer
) -> None:
    a, b = replicas
    session = create(a, {"n": 0})["id"]
    ws = b.websocket()
    try:
        subscribe(ws, session)
        assert [e["seq"] for e in events(ws, 1)] == [1]
        redis_server.stop()
        try:
            for n in range(1, 4):
                patch(a, session, {"n": n})
            assert [e["seq"] for e in events(ws, 3, timeout=20)] == [2, 3, 4]
        finally:
            redis_server.start()
        wait_until(lambda: b.status("/health/ready") == 200, 30, "b ready again")
        patch(a, session, {"n": 4})
        assert [e["seq"] for e in events(ws, 1, timeout=20)] == [5]
    finally:
        ws.close()


def test_heartbeats_and_pong(start_service: StartService) -> None:
    service = start_service(WS_HEARTBEAT_SECONDS="0.3")
    service.wait_ready()
    ws = service.websocket()
    try:
        ws.settimeout(5)
        assert json.loads(ws.recv())["type"] == "ping"
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws)["type"] == "pong"
    finally:
        ws.close()


def test_malformed_frames_get_errors_and_the_socket_stays_usable(
    replicas: tuple[Service, Service],
) -> None:
    a, _ = replicas
    session = create(a, {"n": 0})["id"]
    ws = a.websocket()
    try:
        for frame, code in (
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_message"),
            ('{"type": "launch"}', "unknown_type"),
            ('{"type": "subscribe", "session": "x"}', "invalid_id"),
            (json.dumps({"type": "subscribe", "session": session, "since": -2}), "invalid_since"),
        ):
            ws.send(frame)
            answer = recv(ws)
            assert (answer["type"], answer["code"]) == ("error", code), frame
        ws.send_binary(b"\x00\x01")
        assert recv(ws)["code"] == "binary_frame"
        subscribe(ws, session)
        assert events(ws, 1)[0]["seq"] == 1
        ws.send(json.dumps({"type": "unsubscribe", "session": session}))
        assert recv(ws) == {"type": "unsubscribed", "session": session}
        patch(a, session, {"n": 1})
        assert_quiet(ws, 1.0)
    finally:
        ws.close()
    assert a.status("/health/ready") == 200


def test_a_flood_of_garbage_is_closed_with_1008(replicas: tuple[Service, Service]) -> None:
    a, _ = replicas
    ws = a.websocket()
    try:
        for _ in range(40):
            ws.send("garbage")
        assert close_code(ws) == 1008
    finally:
        ws.close()
    assert a.status("/health/live") == 200


def test_oversized_frame_closes_only_that_socket(replicas: tuple[Service, Service]) -> None:
    a, _ = replicas
    big, other = a.websocket(), a.websocket()
    try:
        big.send(json.dumps({"type": "ping", "pad": "x" * 100_000}))
        assert close_code(big) == 1009
        other.send(json.dumps({"type": "ping"}))
        assert recv(other)["type"] == "pong"
    finally:
        big.close()
        other.close()


def test_subscribing_to_an_unknown_session_then_it_appears(
    replicas: tuple[Service, Service],
) -> None:
    a, b = replicas
    session = str(uuid.uuid4())
    ws = b.websocket()
    try:
        subscribe(ws, session)
        assert_quiet(ws, 0.5)
        assert a.request("POST", API, {"id": session, "owner": "o", "state": {}}).status == 201
        assert events(ws, 1)[0]["kind"] == "created"
    finally:
        ws.close()
