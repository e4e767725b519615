"""The ingress's nginx, sized by socket_capacity, carries thousands of WebSockets: nginx
alone on loopback with the rendered config, a small local WebSocket upstream, and a
few thousand sockets opened through it, held, counted and closed (bounded; no sandbox).

- every socket opens and stays open; the two workers share them (reuseport: the
  kernel deals connections out), and nginx never says it ran short;
- the twin: the same config with the ingress's old sizing (one worker, a few
  connections) refuses sockets, and the storm's ingress check fails naming its limit
  and the count nginx logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web

from resilience.suites.storm import (
    INGRESS_LIMIT,
    check_ingress_refused_nothing,
    exhaustion_in_log,
    refusals_by_mechanism,
)
from sandbox.infra.nginx_config import SIZING, render_config
from sandbox.infra.nginx_process import NginxProcess, free_port
from tests.sandbox.infra.builders import (
    NGINX,
    make_endpoint,
    make_ingress,
    make_path,
    make_service,
    make_slice,
)

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed")

SOCKETS = 3000
OPENING_AT_ONCE = 200  # connects in flight at a time: a burst, not a SYN flood
TIMEOUT_SECONDS = 20.0
UPSTREAM = "127.0.0.1"


@dataclass
class Upstream:
    """A WebSocket server that holds every socket until the client closes it."""

    port: int
    open: int = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.open += 1
        try:
            async for _ in ws:
                pass
        finally:
            self.open -= 1
        return ws


@contextlib.asynccontextmanager
async def upstream_server() -> AsyncIterator[Upstream]:
    upstream = Upstream(free_port(UPSTREAM))
    app = web.Application()
    app.router.add_get("/ws", upstream.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, UPSTREAM, upstream.port, backlog=4096).start()
    try:
        yield upstream
    finally:
        await runner.cleanup()


def config_for(nginx: NginxProcess, upstream_port: int) -> str:
    """/ws through the ingress to the local upstream, with the sandbox's sizing."""
    port = [{"name": "http", "port": upstream_port}]
    return render_config(
        [make_ingress(rules={"": [make_path("/ws")]})],
        [make_service()],
        [make_slice([make_endpoint(UPSTREAM)], ports=port)],
        nginx.listen_host,
        nginx.port,
        nginx.paths,
        worker_user=nginx.worker_user,
        upstream_bind=None,
    )


def old_sizing(text: str, connections: int) -> str:
    """The ingress as it was before socket_capacity: one worker, few connections."""
    text = text.replace(f"worker_processes {SIZING.worker_processes};", "worker_processes 1;")
    return text.replace(
        f"worker_connections {SIZING.worker_connections};", f"worker_connections {connections};"
    )


@dataclass
class Opened:
    held: int
    failures: Counter[str]
    per_worker: dict[int, int]
    upstream_open: int


def established(pid: int) -> int:
    try:
        return sum(
            1 for c in psutil.Process(pid).net_connections("tcp") if c.status == "ESTABLISHED"
        )
    except psutil.Error:
        return 0


async def open_through(nginx: NginxProcess, upstream: Upstream, count: int) -> Opened:
    """Open `count` sockets through nginx (OPENING_AT_ONCE at a time), count them while
    all are held, close them."""
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    url = f"ws://{nginx.listen_host}:{nginx.port}/ws"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> aiohttp.ClientWebSocketResponse:
            async with gate:
                return await session.ws_connect(url, heartbeat=None)

        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        sockets = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
        failures = Counter(
            f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)
        )
        try:
            await asyncio.sleep(0.5)
            per_worker = {pid: established(pid) for pid in nginx.worker_pids()}
            return Opened(len(sockets), failures, per_worker, upstream.open)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def storm(tmp_path: Path, count: int, connections: int | None) -> tuple[Opened, list[str]]:
    nginx = NginxProcess(tmp_path, upstream_bind=None)
    async with upstream_server() as upstream:
        text = config_for(nginx, upstream.port)
        await nginx.start(text if connections is None else old_sizing(text, connections))
        try:
            opened = await open_through(nginx, upstream, count)
        finally:
            await nginx.stop()
    log = nginx.paths.error_log.read_text(errors="replace").splitlines()
    return opened, log


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    yield
    left = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before and child.status() != psutil.STATUS_ZOMBIE
    ]
    assert not left, f"processes outlived the test: {left}"


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * SOCKETS + 500:  # this process holds both the clients and the upstream
        pytest.skip(f"the open-files limit here ({soft}) is too low for {SOCKETS} sockets")


def test_thousands_of_websockets_through_the_sized_ingress(tmp_path: Path) -> None:
    opened, log = asyncio.run(storm(tmp_path, SOCKETS, None))
    assert opened.held == SOCKETS, opened.failures.most_common(3)
    assert opened.upstream_open == SOCKETS
    # each proxied socket is two connections of the worker that accepted it
    assert sum(opened.per_worker.values()) >= 2 * SOCKETS
    assert len(opened.per_worker) == SIZING.worker_processes
    share = min(opened.per_worker.values()) / sum(opened.per_worker.values())
    assert share >= 0.3, f"the kernel did not spread the sockets: {opened.per_worker}"
    exhausted = exhaustion_in_log(log)
    refused = refusals_by_mechanism(opened.failures.items())
    assert check_ingress_refused_nothing(exhausted, refused, log_read=True).ok


def test_twin_the_old_sizing_refuses_sockets_and_the_check_names_it(tmp_path: Path) -> None:
    connections, count = 512, 400  # 400 proxied sockets are 800 connections
    opened, log = asyncio.run(storm(tmp_path, count, connections))
    assert opened.held < count
    exhausted = exhaustion_in_log(log)
    assert exhausted["worker_connections"] > 0, log[-5:]
    refused = refusals_by_mechanism(opened.failures.items())
    result = check_ingress_refused_nothing(exhausted, refused, log_read=True)
    assert result.first is not None and result.first.limit == INGRESS_LIMIT
    assert re.search(r"ran short of worker_connections \d+ time", result.first.message)
    # nginx closes a connection it cannot take; a loaded machine may deliver that as a reset
    assert sum(refused.values()) == count - opened.held
    assert set(refused) <= {"closed unanswered", "reset"}, refused
    print(
        f"old sizing: {opened.held}/{count} held; refused {dict(refused)}; nginx {dict(exhausted)}"
    )
