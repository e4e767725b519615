"""The ws-storm profile and its checks on a small local storm, without the sandbox: three
reference-service processes ("pods") on real PostgreSQL and Redis behind nginx with the
ingress's rendered config, Locust run by the suites' own `LocustLoad` with the ws-storm
profile (its client settings and its two processes) at 1,500 sessions, and one pod
terminated as the kubelet does (SIGTERM; the ingress drops it from the upstream at once,
as its sync would within the pod's drain delay).

What suites/test_ws_storm.py asserts on the sandbox is asserted here, at a smaller
scale: the profile's SLOs (every session resumed, no gap, duplicate or lost write), the
p99 reconnect time within the bound derived from the profile, and nothing refused by
the ingress; and exactly one graceful disconnect and one reconnect per socket the pod
held. About two minutes: the profile's clients reconnect within their 20-40 s backoff.

The fault window lasts until every socket is back, so that the recovery window follows
the storm: with Locust's --processes, the events of a run's last seconds never reach
the master when it stops (measured here: 491 of 500 reconnects recorded when Locust
was stopped as the last socket came back, every one with 10 s of recovery after it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from pathlib import Path

import pytest

from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from resilience.load.session import LocustLoad
from resilience.suites.podsockets import describe_spread
from resilience.suites.storm import (
    RECONNECT,
    Bound,
    check_ingress_refused_nothing,
    check_reconnect_time,
    connect_errors,
    entry_distribution,
    exhaustion_in_log,
    reconnect_bound,
    refusals_by_mechanism,
)
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

pytestmark = [
    needs_servers,
    pytest.mark.slow,
    pytest.mark.skipif(not NGINX.exists(), reason="no nginx"),
]
__all__ = ["postgres", "redis_server", "start_service"]  # fixtures, imported for pytest

SESSIONS = 1500
PODS = 3
DRAIN_DELAY = "2"  # longer than this test's ingress takes to drop the pod (one reload)
SUBSCRIBE_TIMEOUT = 90.0
PORTS = [{"name": "http", "port": 8080}, {"name": "ws", "port": 8443}]


def ingress_config(nginx: NginxProcess, pods: list[Service]) -> str:
    """deploy/base's routes: /api and /health to port http, /ws to port ws."""
    paths = [make_path("/api", port="http"), make_path("/health", port="http")]
    return render_config(
        [make_ingress(rules={"": [*paths, make_path("/ws", port="ws")]})],
        [make_service(ports=[{**p, "targetPort": p["port"]} for p in PORTS])],
        [make_slice([make_endpoint(pod.host) for pod in pods], ports=PORTS)],
        nginx.listen_host,
        nginx.port,
        nginx.paths,
        worker_user=nginx.worker_user,
        upstream_bind=None,
    )


def sockets(pods: list[Service]) -> dict[str, int]:
    return {pod.host: pod.open_sockets() for pod in pods}


def wait_sockets(pods: list[Service], count: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while sum((found := sockets(pods)).values()) < count:
        assert time.monotonic() < deadline, f"{describe_spread(found)}, wanted {count}"
        time.sleep(0.5)
    return found


@dataclasses.dataclass(frozen=True)
class SmallStorm:
    """What one small storm left: the load, the victim's sockets, the ingress's log."""

    load: LocustLoad
    began: float
    before: dict[str, int]
    victim: Service
    bound: Bound
    error_log: list[str]


def run_small_storm(
    start_service: StartService,
    tmp_path: Path,
    victim_args: tuple[str, ...] = (),
    stayed_args: tuple[str, ...] = (),
) -> SmallStorm:
    """SESSIONS ws-storm sessions over PODS pods behind nginx, then the victim terminated
    as the kubelet does; `*_args` seed a fault into the victim or the pods that stay."""
    storm = load_profile(resolve_profile("ws-storm", PROFILES))
    profile = dataclasses.replace(
        storm, load=dataclasses.replace(storm.load, users=SESSIONS, spawn_rate=150)
    )
    bound = reconnect_bound(profile.load.env)
    victim = start_service(*victim_args, DRAIN_DELAY_SECONDS=DRAIN_DELAY)
    stayed = [start_service(*stayed_args, DRAIN_DELAY_SECONDS=DRAIN_DELAY) for _ in range(PODS - 1)]
    pods = [victim, *stayed]
    for pod in pods:
        pod.wait_ready()
    nginx = NginxProcess(tmp_path / "ingress", upstream_bind=None)
    loop = asyncio.new_event_loop()  # nginx's: its process belongs to one loop
    loop.run_until_complete(nginx.start(ingress_config(nginx, pods)))
    try:
        load = LocustLoad(profile, nginx.url, tmp_path / "load", baseline_seconds=3.0)
        with load as background:
            before = wait_sockets(pods, SESSIONS, SUBSCRIBE_TIMEOUT)
            began = time.time()
            with background.fault("kill-pod"):
                victim.process.send_signal(signal.SIGTERM)
                assert loop.run_until_complete(nginx.reload(ingress_config(nginx, stayed)))
                victim.process.wait(timeout=30)
                # the storm is the fault's effect: its window ends once every socket is back,
                # and the recovery window after it lets the workers' last reports arrive
                after = wait_sockets(stayed, SESSIONS, bound.seconds + 30)
    finally:
        loop.run_until_complete(nginx.stop())
        loop.close()
    print(f"before {describe_spread(before)}; after {describe_spread(after)}")
    log = nginx.paths.error_log.read_text(errors="replace").splitlines()
    return SmallStorm(load, began, before, victim, bound, log)


def test_a_small_storm_through_nginx_meets_the_storm_checks(
    start_service: StartService, tmp_path: Path
) -> None:
    storm = run_small_storm(start_service, tmp_path)
    records = storm.load.result.timeline.records
    window = (storm.began - 1, time.time() + 1)
    reconnects, failed = entry_distribution(records, RECONNECT, *window)
    print(f"reconnects {reconnects.describe()}, {failed} failed; bound {storm.bound.seconds:g}s")
    storm.load.check("local storm").raise_if_violated()
    # every socket of the pod was closed gracefully (1001) and its user saw it
    lost, _ = entry_distribution(records, ("WS", "disconnect"), *window)
    assert lost.count == reconnects.count == storm.before[storm.victim.host]
    check_reconnect_time(reconnects, storm.bound, "local storm").raise_if_violated()
    refused = refusals_by_mechanism(connect_errors(records, 0.0))
    exhausted = exhaustion_in_log(storm.error_log)
    check_ingress_refused_nothing(exhausted, refused, True).raise_if_violated()


@pytest.mark.parametrize(
    ("victim_args", "stayed_args", "violated"),
    [
        # the pod that goes resets its sockets instead of closing them with 1001
        pytest.param(
            ("--fault", "abrupt-exit"), (), "load.slo.websocket-closes-graceful", id="abrupt-exit"
        ),
        # the pods that stay resume each socket from the session's newest event, so the
        # change made while it was away is never pushed
        pytest.param(
            (),
            ("--fault", "ws-resume-from-head"),
            "load.slo.no-sequence-gaps-or-duplicates",
            id="ws-resume-from-head",
        ),
    ],
)
def test_the_storm_checks_fail_on_a_seeded_release(
    start_service: StartService,
    tmp_path: Path,
    victim_args: tuple[str, ...],
    stayed_args: tuple[str, ...],
    violated: str,
) -> None:
    """The twin: the same storm on a seeded release fails, naming the profile's SLO and
    what it observed."""
    storm = run_small_storm(start_service, tmp_path, victim_args, stayed_args)
    result = storm.load.check("local storm on a seeded release")
    by_limit = {v.limit: v for v in result.violations}
    assert violated in by_limit, result.summary()
    assert by_limit[violated].observed > 0, by_limit[violated]
