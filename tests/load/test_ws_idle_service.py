"""The idle WebSocket user against the reference service itself, on real PostgreSQL and
Redis (no sandbox): a user that waits longer than the service's heartbeat and its pong
window between two tasks keeps its socket.

The service (sandbox/images/session_state/websocket.py `websocket_handler`) sends an
application ping every WS_HEARTBEAT_SECONDS and has aiohttp ping the client after
max(30, 2 x WS_HEARTBEAT_SECONDS) seconds without a frame from it, closing the socket
(1006) when no pong comes within half of that: 30 s + 15 s here. A user whose socket
is read only during its tasks loses it in every such wait (the twin in
test_ws_idle.py shows the mechanism on a faster heartbeat).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load.locustrun import count, run_locustfile
from tests.sandbox.session_state.servers import (
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
)

# About a minute (the service's 30 s ping and 15 s pong window must pass); in CI the same
# mechanism is proven against the heartbeating seeded server (test_ws_idle.py).
pytestmark = [needs_servers, pytest.mark.slow]
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest

PROTOCOL_HEARTBEAT = 30.0  # the service's floor
IDLE = PROTOCOL_HEARTBEAT * 1.5 + 3  # past the ping and its pong window


def test_ws_users_keep_their_sockets_through_the_services_heartbeats(
    start_service: StartService, tmp_path: Path
) -> None:
    service = start_service(WS_HEARTBEAT_SECONDS="1")
    service.wait_ready()
    wait = {"HF_WAIT_MIN": str(IDLE), "HF_WAIT_MAX": str(IDLE), "HF_TIMEOUT": "5"}
    stats = run_locustfile(
        service.url(""), tmp_path, wait, users=3, run_time=f"{IDLE + 6:.0f}s", timeout=120
    )
    tasks = count(stats, "WS ping") + count(stats, "WS fanout")
    assert tasks >= 3 * 2, stats  # every user ran a task after the idle wait
    assert count(stats, "WS disconnect") == 0, stats
    assert all(entry["failures"] == 0 for entry in stats.values()), stats
