"""An idle WebSocket user keeps its socket, as a browser tab does.

The server keeps sockets as the reference service does (`seeded.py` with a heartbeat):
a protocol ping after HEARTBEAT seconds of silence from the client, the socket closed
when no pong comes within half of that. The load's socket (`loadtests/harmonyflow/ws.py`)
is serviced between tasks, so a user waiting many heartbeats between two tasks loses
nothing; a socket that nobody reads is closed (the twin that shows the check can fail).
Pushes that arrive between tasks are checked as they arrive.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket
from harmonyflow.ws import SessionSocket

from tests.load.locustrun import count, run_locustfile
from tests.load.seeded import serving

HEARTBEAT = 0.4  # seconds of client silence before the server pings; no pong in 0.2 s: closed
IDLE = 10 * HEARTBEAT


Fired = list[tuple[str, str, str | None]]


def recorder() -> tuple[Fired, Any]:
    fired: Fired = []

    def fire(**event: Any) -> None:
        error = event["exception"]
        fired.append((event["request_type"], event["name"], None if error is None else str(error)))

    return fired, fire


def call(base: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method=method
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        found: dict[str, Any] = json.loads(answer.read())
        return found


def test_a_socket_nobody_reads_is_closed_by_the_heartbeat() -> None:
    with serving("healthy", heartbeat=HEARTBEAT) as base:
        raw = websocket.create_connection(base.replace("http", "ws") + "/ws", timeout=5)
        try:
            time.sleep(IDLE)  # pings go unanswered: nobody reads
            with pytest.raises((OSError, websocket.WebSocketException)):
                raw.send(json.dumps({"type": "ping"}))
                while True:  # the frames sent before the close, then the end
                    raw.recv()
        finally:
            raw.close(timeout=1)


def test_an_idle_session_socket_stays_connected_across_heartbeats() -> None:
    fired, fire = recorder()
    with serving("healthy", heartbeat=HEARTBEAT) as base:
        sock = SessionSocket(base.replace("http", "ws") + "/ws", fire, timeout=2.0)
        try:
            assert sock.ensure_connected()
            time.sleep(IDLE)  # no task runs: only the reader services the socket
            assert sock.connected
            assert sock.ping()
        finally:
            sock.close()
    assert fired == [("WSCONN", "connect", None), ("WS", "ping", None)]


@pytest.mark.parametrize(
    ("mode", "found"),
    [
        pytest.param("healthy", [], id="healthy"),
        pytest.param("skip", [("WS", "seq gap", "events skipped")], id="skips-seq-3"),
        pytest.param(
            "duplicate", [("WS", "seq duplicate", "event delivered twice")], id="repeats-seq-3"
        ),
    ],
)
def test_pushes_between_tasks_are_checked_as_they_arrive(mode: str, found: Fired) -> None:
    """The session changes (another tab writes it) while the user runs no task."""
    fired, fire = recorder()
    with serving(mode, heartbeat=HEARTBEAT) as base:
        created = call(base, "POST", "/api/v1/sessions", {"owner": "o", "state": {"n": 0}})
        sock = SessionSocket(base.replace("http", "ws") + "/ws", fire, timeout=2.0)
        try:
            sock.follow(created["id"], created["seq"])
            assert sock.ensure_connected()  # subscribes what it follows
            for n in range(1, 4):
                put = f"/api/v1/sessions/{created['id']}"
                newest = call(base, "PUT", put, {"state": {"n": n}})["seq"]
            deadline = time.monotonic() + 5
            while sock.tracker.last(created["id"]) < newest and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3 * HEARTBEAT)  # a duplicate comes after the last seq
        finally:
            sock.close()
    assert sock.tracker.last(created["id"]) == newest
    assert [e for e in fired if e[0] == "WS" and e[1].startswith("seq")] == found


def test_locust_users_idle_many_heartbeats_between_tasks_without_losing_a_socket(
    tmp_path: Path,
) -> None:
    """Real Locust, the real locustfile: three users, a task every 10 heartbeats."""
    with serving("healthy", heartbeat=HEARTBEAT) as base:
        wait = {"HF_WAIT_MIN": str(IDLE), "HF_WAIT_MAX": str(IDLE), "HF_TIMEOUT": "3"}
        stats = run_locustfile(base, tmp_path, wait, users=3, run_time=f"{2.5 * IDLE:.0f}s")
    tasks = count(stats, "WS ping") + count(stats, "WS fanout")
    assert tasks >= 3 * 2, stats  # every user ran a task after idling
    assert count(stats, "WS disconnect") == 0, stats
    assert all(entry["failures"] == 0 for entry in stats.values()), stats
