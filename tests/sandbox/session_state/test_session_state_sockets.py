"""The reference service and its sockets, on real PostgreSQL and Redis (no sandbox):

- it raises its soft descriptor limit to the hard one (fdlimit.py), so a process
  started with the common soft limit of 1,024 holds more sockets than that, each
  counted by its `session_state_websocket_connections` gauge;
- with WS_MAX_AGE_SECONDS (release 1.2.0) it closes each socket with 1012 at about
  that age; the `never-rebalances` tag, given the same setting, never does;
- (slow) a pod's worst moment of the storm: 3,334 subscribed sockets held and the
  killed pod's 1,666 arriving within the clients' 20 s backoff, liveness answered
  within deploy/base's timeout all along (measured here: slowest answer 706 ms of the
  1 s allowed, 5,000 sockets in 171 MiB).
"""

from __future__ import annotations

import asyncio
import random
import resource
import subprocess
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import psutil
import pytest
import yaml

from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from sandbox.images.registry import REPO_ROOT
from sandbox.images.session_state.fdlimit import NR_OPEN_DEFAULT, nofile_target
from sandbox.infra.socket_capacity import DESIGN_SESSIONS, pod_sockets
from tests.sandbox.session_state.servers import (
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


# ---- a pod's share of the storm (slow) ----


def liveness_timeout() -> float:
    """deploy/base's liveness probe timeout: what a pod must answer within, storm or not."""
    deployment = yaml.safe_load((REPO_ROOT / "deploy" / "base" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return float(container["livenessProbe"]["timeoutSeconds"])


async def subscribed(
    session: aiohttp.ClientSession, url: str, after: float = 0.0
) -> aiohttp.ClientWebSocketResponse:
    await asyncio.sleep(after)
    ws = await session.ws_connect(url, heartbeat=None)
    await ws.send_json({"type": "subscribe", "session": str(uuid.uuid4()), "since": 0})
    while (await ws.receive_json(timeout=60))["type"] != "subscribed":
        pass
    return ws


def probe_liveness(url: str, until: threading.Event, slowest: list[float]) -> None:
    """The kubelet's view: /health/live from another process (curl), so that this test's
    own busy event loop does not count; the slowest answer goes into `slowest`."""
    while not until.is_set():
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-m", "10", url],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        code, seconds = [*done.stdout.split(), "0", "10"][:2]
        slowest.append(float(seconds) if code == "200" else float("inf"))
        until.wait(0.2)


async def storm_onto(
    service: Service, held: int, arriving: int, spread: float
) -> tuple[float, float, int]:
    """`held` subscribed sockets, then `arriving` more connecting and subscribing within
    `spread` seconds (uniformly, seeded: the clients' backoff) while /health/live is
    probed: (seconds the arrivals took, the slowest liveness answer, sockets open then)."""
    connector = aiohttp.TCPConnector(limit=0)
    draw = random.Random(5)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = service.ws_url()
        sockets = list(await asyncio.gather(*(subscribed(session, url) for _ in range(held))))
        until, slowest = threading.Event(), [0.0]
        prober = threading.Thread(
            target=probe_liveness, args=(service.url("/health/live"), until, slowest)
        )
        prober.start()
        began = time.monotonic()
        try:
            arrivals = (subscribed(session, url, draw.uniform(0, spread)) for _ in range(arriving))
            sockets += await asyncio.gather(*arrivals)
        finally:
            took = time.monotonic() - began
            until.set()
            await asyncio.to_thread(prober.join, 30)
        try:
            return took, max(slowest), await asyncio.to_thread(service.open_sockets)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


@needs_servers
@pytest.mark.slow
def test_a_pod_takes_its_share_of_a_storm_and_stays_live(start_service: StartService) -> None:
    """The worst moment of a pod (socket_capacity `pod_sockets`): it holds a third of the
    design load and the killed pod's third arrives within the ws-storm clients' backoff
    (HF_WAIT_MAX), each subscribing (a read of the event log); its liveness probe must
    keep answering within its timeout all along."""
    total = pod_sockets(DESIGN_SESSIONS, 3)  # 5,000 once one of three pods is gone
    held = pod_sockets(DESIGN_SESSIONS, 3, lost=0)  # 3,334 before
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2 * total + 500:
        pytest.skip(f"the hard limit here ({hard}) is too low for {total} sockets")
    service = start_service(soft_nofile=LOW_SOFT_LIMIT)
    service.wait_ready()
    spread = float(load_profile(resolve_profile("ws-storm", PROFILES)).load.env["HF_WAIT_MAX"])
    took, slowest, open_now = asyncio.run(storm_onto(service, held, total - held, spread))
    rss = psutil.Process(service.process.pid).memory_info().rss
    print(
        f"{total - held} arrivals onto {held} held sockets in {took:.1f}s; slowest liveness "
        f"{slowest * 1000:.0f} ms; {open_now} open; {rss / 2**20:.0f} MiB RSS"
    )
    assert open_now == total
    assert slowest < liveness_timeout()
