"""The sandbox sized for its sockets: the arithmetic of sandbox/infra/socket_capacity.py
as tables, the rendered nginx.conf carrying it, and the socket profiles within it."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.load.certify import PROFILES
from resilience.load.profile import load_profile, resolve_profile
from resilience.load.sockets import REST_POOL, locust_processes
from sandbox.infra.nginx_config import (
    UPSTREAM_KEEPALIVE_CONNECTIONS,
    NginxPaths,
    render_config,
)
from sandbox.infra.socket_capacity import (
    CONNECTIONS_PER_PROXIED_SOCKET,
    DESCRIPTOR_LIMIT,
    DESIGN_SESSIONS,
    KEEPALIVE_PER_UPSTREAM,
    REST_CLIENTS,
    CapacityError,
    IngressSizing,
    ingress_sizing,
    pod_sockets,
)


@pytest.mark.parametrize(
    ("sessions", "rest", "limit", "expected"),
    [
        pytest.param(10_000, 2_000, 20_000, IngressSizing(2, 15_640, 15_704), id="design-load"),
        pytest.param(1_000, 2_000, 20_000, IngressSizing(1, 8_140, 8_204), id="one-worker-holds"),
        pytest.param(10_000, 2_000, 4_096, IngressSizing(9, 3_974, 4_038), id="low-limit"),
        pytest.param(0, 0, 20_000, IngressSizing(1, 640, 704), id="no-load"),
    ],
)
def test_ingress_sizing(sessions: int, rest: int, limit: int, expected: IngressSizing) -> None:
    sizing = ingress_sizing(sessions, rest, limit)
    assert sizing == expected
    assert sizing.worker_rlimit_nofile <= limit
    # every proxied connection fits, with room for the keep-alive ones
    room = sizing.worker_processes * (sizing.worker_connections - 2 * KEEPALIVE_PER_UPSTREAM)
    assert room >= CONNECTIONS_PER_PROXIED_SOCKET * (sessions + rest)


def test_one_worker_could_not_hold_the_design_load() -> None:
    assert CONNECTIONS_PER_PROXIED_SOCKET * (DESIGN_SESSIONS + REST_CLIENTS) > DESCRIPTOR_LIMIT
    assert ingress_sizing().worker_processes > 1


def test_the_keepalive_reserve_is_nginx_configs() -> None:
    assert KEEPALIVE_PER_UPSTREAM == UPSTREAM_KEEPALIVE_CONNECTIONS


@pytest.mark.parametrize(
    ("limit", "sessions"),
    [pytest.param(600, 10, id="no-room-at-all"), pytest.param(20_000, -1, id="negative")],
)
def test_impossible_sizing_is_refused(limit: int, sessions: int) -> None:
    with pytest.raises(CapacityError):
        ingress_sizing(sessions, 0, limit)


@pytest.mark.parametrize(
    ("sessions", "replicas", "lost", "expected"),
    [
        pytest.param(10_000, 3, 1, 5_000, id="pod-kill-of-three"),
        pytest.param(10_000, 3, 0, 3_334, id="steady"),
        pytest.param(10_000, 10, 1, 1_112, id="hpa-max"),
    ],
)
def test_pod_sockets(sessions: int, replicas: int, lost: int, expected: int) -> None:
    assert pod_sockets(sessions, replicas, lost) == expected


def test_no_pod_left_is_refused() -> None:
    with pytest.raises(CapacityError):
        pod_sockets(10, 1, 1)


def test_the_rendered_config_carries_the_sizing(tmp_path: Path) -> None:
    sizing = ingress_sizing()
    text = render_config([], [], [], "127.0.0.1", 18080, NginxPaths.under(tmp_path))
    assert f"worker_processes {sizing.worker_processes};" in text
    assert f"worker_rlimit_nofile {sizing.worker_rlimit_nofile};" in text
    assert f"worker_connections {sizing.worker_connections};" in text
    assert f"default_server reuseport backlog={sizing.listen_backlog};" in text


@pytest.mark.parametrize(
    ("sessions", "rest_pool", "limit", "expected"),
    [
        pytest.param(10_000, 1_000, 20_000, 2, id="storm-by-the-loop"),
        pytest.param(3_000, 1_000, 20_000, 1, id="rebalance"),
        pytest.param(10_000, 1_000, 4_096, 4, id="low-limit-by-descriptors"),
        pytest.param(1, 1_000, 20_000, 1, id="one"),
    ],
)
def test_locust_processes(sessions: int, rest_pool: int, limit: int, expected: int) -> None:
    assert locust_processes(sessions, rest_pool, limit) == expected


@pytest.mark.parametrize("name", ["ws-storm", "ws-rebalance"])
def test_socket_profiles_fit_the_sandbox(name: str) -> None:
    load = load_profile(resolve_profile(name, PROFILES)).load
    assert load.users <= DESIGN_SESSIONS
    assert load.processes == locust_processes(load.users)
    rest_pool = int(load.env.get("HF_WS_REST_CONNECTIONS", REST_POOL))
    assert load.processes * rest_pool <= REST_CLIENTS  # what the ingress is sized for
    assert load.locustfiles == ("sessions_ws.py",)  # every user a subscribed session


def test_the_storm_profile_is_the_design_load() -> None:
    assert load_profile(resolve_profile("ws-storm", PROFILES)).load.users == DESIGN_SESSIONS
