"""The reference service and its sockets, on real PostgreSQL and Redis (no sandbox):

- it raises its soft descriptor limit to the hard one (fdlimit.py), so a process
  started with the common soft limit of 1,024 holds more sockets than that, each
  counted by its `session_state_websocket_connections` gauge;
- with WS_MAX_AGE_SECONDS (release 1.2.0) it closes each socket with 1012 at about
  that age; the `never-rebalances` tag, given the same setting, never does.
"""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

import aiohttp
import pytest

from sandbox.images.session_state.fdlimit import NR_OPEN_DEFAULT, nofile_target
from tests.sandbox.test_session_state_support import (
    Service,
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
)

__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest

INF = resource.RLIM_INFINITY
LOW_SOFT_LIMIT = 1024  # systemd's default soft LimitNOFILE
SOCKETS = 1500  # past the low soft limit, well within the raised one
MAX_AGE = 1.0


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        pytest.param(1024, 524_288, 524_288, id="systemd-default"),
        pytest.param(20_000, 20_000, 20_000, id="already-raised"),
        pytest.param(1024, INF, NR_OPEN_DEFAULT, id="infinite-hard"),
        pytest.param(INF, INF, INF, id="infinite-both"),
    ],
)
def test_nofile_target(soft: int, hard: int, expected: int) -> None:
    assert nofile_target(soft, hard) == expected


def soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


async def hold_sockets(service: Service, count: int, check: float) -> int:
    """Open `count` sockets, read the gauge while they are open, close them."""
    connector = aiohttp.TCPConnector(limit=0)  # a socket holds its connection: no pool cap
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sockets = await asyncio.gather(
            *(session.ws_connect(service.ws_url(), heartbeat=None) for _ in range(count))
        )
        try:
            await asyncio.sleep(check)
            return await asyncio.to_thread(service.open_sockets)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


@needs_servers
def test_a_pod_started_with_a_low_soft_limit_holds_more_sockets_than_it(
    start_service: StartService,
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2 * SOCKETS + 200:  # the test process holds the other ends
        pytest.skip(f"the hard limit here ({hard}) is too low to show it")
    service = start_service(soft_nofile=LOW_SOFT_LIMIT)
    service.wait_ready()
    assert soft_limit(service.process.pid) == hard
    assert asyncio.run(hold_sockets(service, SOCKETS, 0.5)) == SOCKETS
    assert "Too many open files" not in service.output()


async def close_code_within(service: Service, seconds: float) -> int | None:
    """The close code the server sends within `seconds`, or None (still open then)."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(service.ws_url(), heartbeat=None)
        try:
            message = await ws.receive(timeout=seconds)
        except TimeoutError:
            return None
        finally:
            await ws.close()
        while message.type == aiohttp.WSMsgType.TEXT:  # the service's heartbeat pings
            message = await ws.receive(timeout=seconds)
        return ws.close_code


@needs_servers
@pytest.mark.parametrize(
    ("args", "closed_with"),
    [
        pytest.param((), 1012, id="rebalancing-release"),
        pytest.param(("--fault", "never-rebalances"), None, id="seeded-never"),
    ],
)
def test_max_connection_age(
    start_service: StartService, args: tuple[str, ...], closed_with: int | None
) -> None:
    service = start_service(*args, WS_MAX_AGE_SECONDS=str(MAX_AGE), WS_HEARTBEAT_SECONDS="60")
    service.wait_ready()
    began = time.monotonic()
    code = asyncio.run(close_code_within(service, MAX_AGE * 3))
    assert code == closed_with
    if closed_with is not None:
        assert MAX_AGE * 0.9 <= time.monotonic() - began <= MAX_AGE * 2
        assert "session_state_websocket_aged_out_total 1.0" in str(
            service.request("GET", "/metrics").body
        )
