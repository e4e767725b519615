"""The rebalancing check against the service's real behaviour, on real processes (no
sandbox): two reference-service processes ("pods") on real PostgreSQL and Redis behind
nginx with the ingress's rendered config, a few hundred sockets that reconnect when the
server closes them (as the load's clients do, after a short backoff), and a scale-out:
the second pod joins the upstream while every socket sits on the first.

One max connection age later, sockets per pod are read from each pod's own gauge and
judged by the suite's pure decision (resilience/suites/podsockets.py `check_rebalanced`) with
the limit of loadtests/profiles/ws-rebalance.yaml:

- the rebalancing release's behaviour (WS_MAX_AGE_SECONDS, 1012): the new pod holds
  its share, the check passes;
- the twin, the seeded `never-rebalances` tag with the same setting: the new pod stays
  empty, and the check fails naming the limit and the observed share.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import pytest

from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from resilience.suites.podsockets import REBALANCE_LIMIT, check_rebalanced, describe_spread
from sandbox.infra.nginx_config import render_config
from sandbox.infra.nginx_process import NginxProcess
from tests.sandbox.infra.builders import (
    NGINX,
    make_endpoint,
    make_ingress,
    make_path,
    make_service,
    make_slice,
)
from tests.sandbox.session_state.servers import (
    Service,
    StartService,
    needs_servers,
    postgres,
    redis_server,
    start_service,
)

pytestmark = [needs_servers, pytest.mark.skipif(not NGINX.exists(), reason="no nginx")]
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest

SOCKETS = 300
MAX_AGE = 2.0  # WS_MAX_AGE_SECONDS of both pods: short, so the test takes seconds
BACKOFF = 0.5  # a client reconnects within this after a graceful close
SETTLE = MAX_AGE * 1.1 + BACKOFF + 1.0  # one jittered max age and one reconnect, plus slack
SUBSCRIBE_TIMEOUT = 30.0
OLD, NEW = "pod-old", "pod-new"


def min_share() -> float:
    return load_profile(resolve_profile("ws-rebalance", PROFILES)).limit("rebalance_min_share")


def ws_config(nginx: NginxProcess, pods: list[Service]) -> str:
    """/ws through the ingress to the pods' WebSocket port (8443)."""
    port = [{"name": "ws", "port": 8443}]
    return render_config(
        [make_ingress(rules={"": [make_path("/ws", port="ws")]})],
        [make_service(ports=[{"name": "ws", "port": 8443, "targetPort": 8443}])],
        [make_slice([make_endpoint(pod.host) for pod in pods], ports=port)],
        nginx.listen_host,
        nginx.port,
        nginx.paths,
        worker_user=nginx.worker_user,
        upstream_bind=None,
    )


@dataclass
class Clients:
    """Sockets through the ingress that reconnect (after up to BACKOFF) when closed."""

    url: str
    draw: random.Random = field(default_factory=lambda: random.Random(20))
    closes: dict[int | None, int] = field(default_factory=dict)
    failures: int = 0
    stopping: bool = False

    async def one(self, session: aiohttp.ClientSession) -> None:
        while not self.stopping:
            try:
                ws = await session.ws_connect(self.url, heartbeat=None)
            except (aiohttp.ClientError, TimeoutError):
                self.failures += 1
                await asyncio.sleep(BACKOFF)
                continue
            async for _ in ws:  # the service's heartbeats, until it closes the socket
                pass
            self.closes[ws.close_code] = self.closes.get(ws.close_code, 0) + 1
            await asyncio.sleep(self.draw.uniform(0, BACKOFF))


async def scale_out_under_sockets(
    nginx: NginxProcess, old: Service, new: Service
) -> tuple[dict[str, int], Clients]:
    """Sockets on `old` only, then `new` joins the upstream; sockets per pod SETTLE later."""
    await nginx.start(ws_config(nginx, [old]))
    clients = Clients(f"{nginx.url.replace('http', 'ws')}/ws")
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(clients.one(session)) for _ in range(SOCKETS)]
            try:
                await wait_for_sockets(old, SOCKETS)
                assert await nginx.reload(ws_config(nginx, [old, new]))  # the scale-out
                await asyncio.sleep(SETTLE)
                after = {OLD: old.open_sockets(), NEW: new.open_sockets()}
            finally:
                clients.stopping = True
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await nginx.stop()
    return after, clients


async def wait_for_sockets(service: Service, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SUBSCRIBE_TIMEOUT
    while (found := await asyncio.to_thread(service.open_sockets)) < count:
        assert loop.time() < deadline, f"only {found} of {count} sockets open on the old pod"
        await asyncio.sleep(0.2)


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    yield
    nginx = [
        child
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE and "nginx" in " ".join(child.cmdline())
    ]
    assert not nginx, f"nginx outlived the test: {nginx}"


def start_pods(start_service: StartService, *args: str) -> tuple[Service, Service]:
    pods = tuple(
        start_service(*args, WS_MAX_AGE_SECONDS=str(MAX_AGE), WS_HEARTBEAT_SECONDS="60")
        for _ in range(2)
    )
    for pod in pods:
        pod.wait_ready()
    return pods[0], pods[1]


def test_sockets_spread_onto_a_new_pod_within_one_max_age(
    start_service: StartService, tmp_path: Path
) -> None:
    old, new = start_pods(start_service)
    after, clients = asyncio.run(scale_out_under_sockets(NginxProcess(tmp_path), old, new))
    print(f"rebalancing release: {describe_spread(after)}; closes {clients.closes}")
    assert clients.closes.get(1012, 0) >= SOCKETS  # each aged out once at least
    assert set(clients.closes) == {1012} and clients.failures == 0
    assert check_rebalanced(after, {OLD}, min_share()).ok


def test_twin_never_rebalances_leaves_the_new_pod_empty_and_the_check_names_it(
    start_service: StartService, tmp_path: Path
) -> None:
    old, new = start_pods(start_service, "--fault", "never-rebalances")
    after, clients = asyncio.run(scale_out_under_sockets(NginxProcess(tmp_path), old, new))
    print(f"never-rebalances: {describe_spread(after)}; closes {clients.closes}")
    assert after == {OLD: SOCKETS, NEW: 0}
    result = check_rebalanced(after, {OLD}, min_share())
    violation = result.first
    assert violation is not None and violation.limit == REBALANCE_LIMIT
    assert violation.limit_value == min_share() and violation.observed == 0.0
    assert f"new pod {NEW} holds 0 of {SOCKETS} sockets, 0.0 % of its fair share" in (
        violation.message
    )
    assert f"{REBALANCE_LIMIT} >= 50 %" in violation.message
