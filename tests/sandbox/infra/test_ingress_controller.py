"""The ingress controller: its pure decisions as tables, then the real thing end to end.

End to end: a real `Store` holding deploy/base's Ingress and Service in namespace
harmonyflow and EndpointSlices written by the test, the controller under
`run_controller`, a real nginx, and two tiny HTTP + WebSocket backends on pod
addresses (127.0.2.x, claimed like pod IPs so that parallel runs do not collide).
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websocket
from aiohttp import web

from sandbox.infra import ingress_controller as ingress_controller_module
from sandbox.infra.ingress_controller import (
    INGRESSES,
    NOT_RUNNING_RETRY_SECONDS,
    RELOAD_POLL_SECONDS,
    SLICES,
    SYNC_KEY,
    IngressController,
    ingresses_needing_status,
    ingresses_to_announce,
    reload_delay,
)
from sandbox.infra.nginx_config import NO_ENDPOINTS_BODY, NOT_FOUND_BODY
from sandbox.infra.nginx_process import NginxProcess
from sandbox.kube.clock import ManualClock, RealClock
from sandbox.kube.controllers.runtime import run_controller
from sandbox.kube.kubelet.ipam import IpAllocator
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store
from sandbox.state import pids_dir
from tests.sandbox.infra.builders import (
    NAMESPACE,
    NGINX,
    WS_HOST,
    KubeObject,
    deploy_manifest,
    make_endpoint,
    make_ingress,
    make_service,
    make_slice,
    our_children,
)

SLICE_NAME = "session-state-service-x7k2p"
WAIT_SECONDS = 10.0
# nginx's source toward the pods in these tests: a test address, not the sandbox's own
# INGRESS_POD_ADDRESS (127.0.3.x belongs to a running sandbox)
UPSTREAM_BIND = "127.0.9.252"


# ---- pure decisions ----


def test_doctests() -> None:
    assert doctest.testmod(ingress_controller_module).failed == 0


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [
        pytest.param(None, 5.0, 0.0, id="first-reload-at-once"),
        pytest.param(4.0, 5.0, 0.0, id="after-a-quiet-spell-at-once"),
        pytest.param(4.95, 5.0, 0.05, id="within-the-interval-waits-for-its-end"),
        pytest.param(5.0, 5.0, 0.1, id="right-after-a-reload-a-whole-interval"),
    ],
)
def test_reload_delay(last: float | None, now: float, expected: float) -> None:
    assert reload_delay(last, now, 0.1) == pytest.approx(expected)


def ingress_with(
    name: str, *, uid: str = "u", generation: int = 1, status_ip: str | None = None, **extra: Any
) -> KubeObject:
    ingress = make_ingress(name, **extra)
    ingress["metadata"].update(uid=uid, generation=generation)
    if status_ip is not None:
        ingress["status"] = {"loadBalancer": {"ingress": [{"ip": status_ip}]}}
    return ingress


@pytest.mark.parametrize(
    ("ingress", "needs_status"),
    [
        pytest.param(ingress_with("web"), True, id="new"),
        pytest.param(ingress_with("web", status_ip="127.0.0.1"), False, id="done"),
        pytest.param(ingress_with("web", status_ip="10.0.0.1"), True, id="other-address"),
        pytest.param(ingress_with("web", ingress_class="alb"), False, id="other-class"),
    ],
)
def test_ingresses_needing_status(ingress: KubeObject, needs_status: bool) -> None:
    expected = [(NAMESPACE, "web")] if needs_status else []
    assert ingresses_needing_status([ingress], "127.0.0.1") == expected


@pytest.mark.parametrize(
    ("ingress", "announced", "fresh"),
    [
        pytest.param(ingress_with("web"), {}, True, id="added"),
        pytest.param(ingress_with("web"), {(NAMESPACE, "web"): ("u", 1)}, False, id="unchanged"),
        pytest.param(
            ingress_with("web", generation=2), {(NAMESPACE, "web"): ("u", 1)}, True, id="updated"
        ),
        pytest.param(
            ingress_with("web", uid="v"), {(NAMESPACE, "web"): ("u", 1)}, True, id="recreated"
        ),
        pytest.param(ingress_with("web", ingress_class="alb"), {}, False, id="other-class"),
    ],
)
def test_ingresses_to_announce(
    ingress: KubeObject, announced: dict[tuple[str, str], tuple[str, int]], fresh: bool
) -> None:
    assert bool(ingresses_to_announce([ingress], announced)) is fresh


@pytest.mark.parametrize(
    ("resource", "keys"),
    [
        pytest.param(INGRESSES, [SYNC_KEY], id="ingress"),
        pytest.param("services", [SYNC_KEY], id="service"),
        pytest.param(SLICES, [SYNC_KEY], id="endpointslice"),
        pytest.param("pods", [], id="pod"),
        pytest.param("events", [], id="event"),
    ],
)
def test_keys_for(resource: str, keys: list[str], tmp_path: Path) -> None:
    controller = IngressController(
        Store(ManualClock()), ManualClock(), ControlPlaneSettings(), NginxProcess(tmp_path)
    )
    change = Change(1, resource, "ADDED", {"metadata": {"name": "x"}}, None)
    assert list(controller.keys_for(change)) == keys


# ---- end to end, with nginx ----

needs_nginx = pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed")


@pytest.fixture(autouse=True)
def no_survivors() -> Iterator[None]:
    before = our_children()
    yield
    assert our_children() - before == set(), "a process outlived its test"


@dataclass
class Backend:
    """A pod stand-in: HTTP on :8080 answering its name, WebSocket echo on :8443/ws."""

    name: str
    ip: str
    hits: Counter[str] = field(default_factory=Counter)
    peers: set[str] = field(default_factory=set)  # whom the requests came from
    runners: list[web.AppRunner] = field(default_factory=list)

    async def start(self) -> None:
        async def http(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            self.peers.add(request.remote or "")
            return web.json_response({"backend": self.name, "path": request.path})

        async def echo(request: web.Request) -> web.WebSocketResponse:
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            async for message in socket:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await socket.send_str(f"{self.name}:{message.data}")
            return socket

        api = web.Application()
        api.router.add_route("*", "/{tail:.*}", http)
        ws = web.Application()
        ws.router.add_get("/ws", echo)
        for app, port in ((api, 8080), (ws, 8443)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.ip, port).start()
            self.runners.append(runner)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()

    @property
    def requests(self) -> int:
        return sum(self.hits.values())


@dataclass
class Rig:
    store: Store
    nginx: NginxProcess
    controller: IngressController
    a: Backend
    b: Backend
    http: aiohttp.ClientSession

    def set_endpoints(self, *endpoints: KubeObject) -> None:
        def change(piece: KubeObject) -> None:
            piece["endpoints"] = list(endpoints)

        self.store.mutate(SLICES, NAMESPACE, SLICE_NAME, change)

    async def get(self, path: str, host: str | None = None) -> tuple[int, str]:
        headers = {"Host": host} if host else {}
        async with self.http.get(self.nginx.url + path, headers=headers) as response:
            return response.status, await response.text()

    async def backends_of(self, count: int, path: str = "/api/whoami") -> Counter[str]:
        seen: Counter[str] = Counter()
        for _ in range(count):
            status, body = await self.get(path)
            assert status == 200, body
            seen[json.loads(body)["backend"]] += 1
        return seen

    def access_log(self) -> list[dict[str, Any]]:
        lines = self.nginx.paths.access_log.read_text().splitlines()
        return [json.loads(line) for line in lines]


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll until true; seconds it took. Bounded."""
    started = time.perf_counter()
    while not await check():
        if time.perf_counter() - started > WAIT_SECONDS:
            raise AssertionError(f"{what}: not within {WAIT_SECONDS} s")
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, *ready: str, start_with_rendered_config: bool = False
) -> AsyncIterator[Rig]:
    """deploy/base's Ingress and Service; backends `a` and `b`, those named in `ready` ready."""
    addresses = IpAllocator()
    a = Backend("a", addresses.allocate("test_ingress_controller-a"))
    b = Backend("b", addresses.allocate("test_ingress_controller-b"))
    store = Store(RealClock())
    store.create("namespaces", {"metadata": {"name": NAMESPACE}})
    store.create("services", deploy_manifest("service"))
    store.create(INGRESSES, deploy_manifest("ingress"))
    store.create(
        SLICES,
        make_slice([make_endpoint(x.ip, ready=x.name in ready) for x in (a, b)], name=SLICE_NAME),
    )
    nginx = NginxProcess(tmp_path, upstream_bind=UPSTREAM_BIND)
    controller = IngressController(store, RealClock(), ControlPlaneSettings(), nginx)
    task: asyncio.Task[None] | None = None
    try:
        await a.start()
        await b.start()
        await nginx.start(controller.render() if start_with_rendered_config else None)
        task = asyncio.create_task(run_controller(controller, store))
        connector = aiohttp.TCPConnector(force_close=True)  # every request a new connection
        async with aiohttp.ClientSession(connector=connector) as http:
            yield Rig(store, nginx, controller, a, b, http)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await controller.wait_idle()
        await nginx.stop()
        await a.stop()
        await b.stop()
        addresses.release("test_ingress_controller-a")
        addresses.release("test_ingress_controller-b")
    assert not nginx.running
    assert list(pids_dir(tmp_path).iterdir()) == []


def ingress_status(store: Store) -> Any:
    return store.get(INGRESSES, NAMESPACE, "session-state-service").get("status")


async def serving(r: Rig) -> bool:
    status = ingress_status(r.store) or {}
    return bool(status.get("loadBalancer"))


async def reloads_reach(r: Rig, count: int) -> float:
    async def done() -> bool:
        return r.controller.reloads >= count

    return await wait_for(done, f"{count} reload(s)")


def unready(ip: str) -> KubeObject:
    return make_endpoint(ip, ready=False)


def terminating(ip: str) -> KubeObject:
    """A deleted pod still passing readiness: ready false, serving true."""
    return make_endpoint(ip, ready=False, serving=True, terminating=True)


FLIPS: dict[str, Callable[[str], KubeObject]] = {
    "unready": unready,
    "terminating": terminating,
}


@needs_nginx
@pytest.mark.parametrize("flip", sorted(FLIPS))
def test_traffic_reaches_only_ready_endpoints_and_follows_flips(
    flip: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> dict[str, float]:
        async with rig(tmp_path, "a") as r:
            await wait_for(lambda: serving(r), "Ingress status")
            assert ingress_status(r.store) == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
            events = r.store.list("events", namespace=NAMESPACE)
            assert [(e["reason"], e["message"]) for e in events] == [("Sync", "Scheduled for sync")]
            assert await r.backends_of(20) == {"a": 20}
            for host in ("api.harmonyflow.io", WS_HOST):
                status, body = await r.get("/api/whoami", host=host)
                assert (status, json.loads(body)["backend"]) == (200, "a")
            assert r.b.requests == 0
            assert r.a.peers == {UPSTREAM_BIND}  # proxy_bind: the pods see the ingress pod

            reloads = r.controller.reloads
            started = time.perf_counter()
            r.set_endpoints(make_endpoint(r.a.ip), make_endpoint(r.b.ip))

            async def b_served() -> bool:
                return "b" in await r.backends_of(1)

            to_first_request = await wait_for(b_served, "traffic to b once ready")
            await reloads_reach(r, reloads + 1)
            to_reload = time.perf_counter() - started

            reloads = r.controller.reloads
            started = time.perf_counter()
            r.set_endpoints(FLIPS[flip](r.a.ip), make_endpoint(r.b.ip))
            await reloads_reach(r, reloads + 1)
            to_drain = time.perf_counter() - started
            a_before = r.a.requests
            assert await r.backends_of(20) == {"b": 20}
            assert r.a.requests == a_before
            last = r.access_log()[-20:]
            assert {line["upstream"] for line in last} == {f"{r.b.ip}:8080"}
            assert {line["status"] for line in last} == {200}
            return {"ready": to_first_request, "reload": to_reload, "drain": to_drain}

    delays = asyncio.run(main())
    with capsys.disabled():
        print(
            f"\n[{flip}] EndpointSlice change -> nginx routing: "
            f"new endpoint served after {delays['ready'] * 1000:.0f} ms "
            f"(reload done {delays['reload'] * 1000:.0f} ms), "
            f"{flip} endpoint drained after {delays['drain'] * 1000:.0f} ms"
        )


@needs_nginx
def test_websocket_echo_through_ws(tmp_path: Path) -> None:
    def echo(url: str, host: str | None) -> str:
        options = {"host": host} if host else {}
        connection = websocket.create_connection(url, timeout=5, **options)
        try:
            connection.send("hello")
            return str(connection.recv())
        finally:
            connection.close()

    async def main() -> None:
        async with rig(tmp_path, "b") as r:
            await wait_for(lambda: serving(r), "Ingress status")
            url = r.nginx.url.replace("http://", "ws://") + "/ws"
            assert await asyncio.to_thread(echo, url, None) == "b:hello"
            assert await asyncio.to_thread(echo, url, WS_HOST) == "b:hello"
            upgrades = [line for line in r.access_log() if line["uri"] == "/ws"]
            assert {line["status"] for line in upgrades} == {101}
            assert {line["upstream"] for line in upgrades} == {f"{r.b.ip}:8443"}

    asyncio.run(main())


@needs_nginx
def test_no_endpoints_is_503_json_and_unknown_paths_404_json(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:  # neither backend ready
            await wait_for(lambda: serving(r), "Ingress status")
            for path in ("/api/sessions", "/api", "/health/ready", "/ws"):
                assert await r.get(path) == (503, NO_ENDPOINTS_BODY), path
            for path in ("/", "/nope", "/apix", "/wsx/y"):
                assert await r.get(path) == (404, NOT_FOUND_BODY), path
            assert await r.get("/api/x", host="unknown.example.com") == (503, NO_ENDPOINTS_BODY)
            assert r.a.requests == r.b.requests == 0

    asyncio.run(main())


@needs_nginx
def test_no_op_changes_do_not_reload_and_bursts_are_coalesced(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, "a", start_with_rendered_config=True) as r:
            await wait_for(lambda: serving(r), "Ingress status")
            assert r.controller.reloads == 0

            # changes that leave nginx.conf as it is
            def label(service: KubeObject) -> None:
                service["metadata"].setdefault("labels", {})["team"] = "sessions"

            def annotate(ingress: KubeObject) -> None:
                ingress["metadata"]["annotations"]["team"] = "sessions"

            r.store.mutate("services", NAMESPACE, "session-state-service", label)
            r.store.mutate(INGRESSES, NAMESPACE, "session-state-service", annotate)
            r.set_endpoints(
                make_endpoint(r.a.ip),
                make_endpoint(r.b.ip, ready=False, serving=True),
                make_endpoint("127.0.2.254", ready=False, serving=True, terminating=True),
            )
            r.store.create("namespaces", {"metadata": {"name": "other"}})
            r.store.create("services", make_service("other", namespace="other"))
            r.store.create(INGRESSES, make_ingress("other", namespace="other", ingress_class="alb"))
            r.store.create(
                SLICES,
                make_slice([make_endpoint("127.0.2.253")], service="other", namespace="other"),
            )
            await asyncio.sleep(0.3)
            assert r.controller.reloads == 0
            assert r.controller.render() == r.nginx.config_text

            # a burst of real changes: b flips ready/unready every 10 ms for 200 ms
            for step in range(20):
                r.set_endpoints(make_endpoint(r.a.ip), make_endpoint(r.b.ip, ready=step % 2 == 0))
                await asyncio.sleep(0.01)

            async def settled() -> bool:
                await r.controller.wait_idle()
                return r.controller.render() == r.nginx.config_text

            await wait_for(settled, "the last state of the burst in nginx")
            assert 1 <= r.controller.reloads <= 5, r.controller.reloads
            assert await r.backends_of(10) == {"a": 10}  # the burst ended with b unready
            assert r.controller.failed_reloads == 0

    asyncio.run(main())


@needs_nginx
def test_reconcile_reloads_once_per_interval_of_the_injected_clock(tmp_path: Path) -> None:
    """reconcile called directly, time moved by hand: the rate limit is exact."""

    async def main() -> None:
        clock = ManualClock()
        store = Store(clock)
        store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        store.create("services", deploy_manifest("service"))
        store.create(INGRESSES, deploy_manifest("ingress"))
        store.create(SLICES, make_slice([make_endpoint("127.0.2.250")], name=SLICE_NAME))
        nginx = NginxProcess(tmp_path)
        controller = IngressController(store, clock, ControlPlaneSettings(), nginx)
        interval = controller.min_reload_interval  # ingress-nginx's default: 1 / 0.3 per second
        assert interval == pytest.approx(1 / 0.3)
        assert controller.reconcile(SYNC_KEY) == NOT_RUNNING_RETRY_SECONDS
        await nginx.start()
        try:
            assert controller.reconcile(SYNC_KEY) == RELOAD_POLL_SECONDS  # reload started
            assert controller.reconcile(SYNC_KEY) == RELOAD_POLL_SECONDS  # still in flight
            await controller.wait_idle()
            assert (controller.reloads, nginx.reloads) == (1, 1)
            assert not ingress_status(store)  # written by the next look, once nginx serves
            assert controller.reconcile(SYNC_KEY) is None
            assert ingress_status(store) == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}

            def second_endpoint(piece: KubeObject) -> None:
                piece["endpoints"].append(make_endpoint("127.0.2.251"))

            store.mutate(SLICES, NAMESPACE, SLICE_NAME, second_endpoint)
            clock.advance(0.04)
            assert controller.reconcile(SYNC_KEY) == pytest.approx(interval - 0.04)
            assert controller.reloads == 1
            clock.advance(interval)
            assert controller.reconcile(SYNC_KEY) == RELOAD_POLL_SECONDS
            await controller.wait_idle()
            assert controller.reloads == 2
            assert "server 127.0.2.251:8080" in (nginx.config_text or "")
            assert controller.reconcile(SYNC_KEY) is None
            events = store.list("events", namespace=NAMESPACE)
            assert [(e["reason"], e["count"]) for e in events] == [("Sync", 1)]
        finally:
            await nginx.stop()

    asyncio.run(main())
