"""The seeded faults' decisions, table by table, and the fault middleware honouring
`slow-responses` and `errors` in process (a real aiohttp server on loopback). The
faults that need real PostgreSQL and Redis to show: test_session_state_seeded_faults.py."""

from __future__ import annotations

import asyncio
import random
import time
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sandbox.images.registry import DEFAULT_REGISTRY, REPO_ROOT, SESSION_STATE
from sandbox.images.session_state.app import build_runtime
from sandbox.images.session_state.config import Timings, parse_settings, parse_timings
from sandbox.images.session_state.faults import (
    DEPENDENCIES,
    ERROR_EVERY,
    FAULTS,
    HEALTHY,
    REBALANCING_MAX_AGE_SECONDS,
    SLOW_MS,
    Dependency,
    Fault,
    SlotState,
    dependency_timeout,
    fault_named,
    held_until_drain,
    is_api_request,
    opens_connection,
    readiness_dependencies,
    readiness_verdict,
    resumes_from_head,
    seeded_error,
    socket_max_age,
)
from sandbox.images.session_state.middleware import error_middleware, fault_middleware
from sandbox.images.session_state.redisconn import client_options
from sandbox.images.session_state.service import AfterCommit
from sandbox.images.session_state.state import RUNTIME
from sandbox.images.session_state.writes import CommittedWrites


@pytest.mark.parametrize(
    ("path", "api"),
    [
        pytest.param("/api/v1/sessions", True, id="collection"),
        pytest.param("/api/v1/sessions/6f1c0b5e-0d2c-4d7e-9f43-bd1e4f5a8c11", True, id="item"),
        pytest.param("/health/ready", False, id="readiness"),
        pytest.param("/health/live", False, id="liveness"),
        pytest.param("/metrics", False, id="metrics"),
        pytest.param("/ws", False, id="websocket"),
        pytest.param("/apiary", False, id="prefix-only"),
    ],
)
def test_only_api_requests_get_the_seeded_faults(path: str, api: bool) -> None:
    assert is_api_request(path) is api


@pytest.mark.parametrize(
    ("fault", "numbers", "failing"),
    [
        pytest.param(HEALTHY, range(1, 21), [], id="healthy-never"),
        pytest.param(FAULTS["slow-responses"], range(1, 21), [], id="slow-never-fails"),
        pytest.param(FAULTS["errors"], range(1, 21), [5, 10, 15, 20], id="errors-every-fifth"),
        pytest.param(Fault("x", "x", api_error_every=1), range(1, 4), [1, 2, 3], id="every-one"),
    ],
)
def test_seeded_error_is_an_exact_fraction(
    fault: Fault, numbers: range, failing: list[int]
) -> None:
    assert [n for n in numbers if seeded_error(fault, n)] == failing


def test_the_new_rows_and_their_images() -> None:
    assert FAULTS["slow-responses"].api_delay_ms == SLOW_MS >= 250
    assert FAULTS["errors"].api_error_every == ERROR_EVERY
    assert all(
        f.api_delay_ms == 0 and f.api_error_every == 0
        for name, f in FAULTS.items()
        if name not in ("slow-responses", "errors")
    )
    for tag in ("slow-responses", "errors"):
        image = DEFAULT_REGISTRY.lookup(f"{SESSION_STATE}:{tag}")
        assert image.args == ("--fault", tag)


@pytest.mark.parametrize(
    ("fault", "slot", "opens"),
    [
        pytest.param(HEALTHY, "empty", True, id="healthy-first-use"),
        pytest.param(HEALTHY, "open", False, id="healthy-reuses"),
        pytest.param(HEALTHY, "closed", True, id="healthy-replaces-a-dead-one"),
        pytest.param(FAULTS["no-db-reconnect"], "empty", True, id="fault-first-use"),
        pytest.param(FAULTS["no-db-reconnect"], "open", False, id="fault-reuses"),
        pytest.param(FAULTS["no-db-reconnect"], "closed", False, id="fault-keeps-a-dead-one"),
    ],
)
def test_only_no_db_reconnect_keeps_a_dead_connection(
    fault: Fault, slot: SlotState, opens: bool
) -> None:
    assert opens_connection(fault, slot) is opens


@pytest.mark.parametrize(
    ("tag", "dependency", "bound"),
    [
        pytest.param("", "postgresql", 2.0, id="healthy-postgresql"),
        pytest.param("", "redis", 2.0, id="healthy-redis"),
        pytest.param("no-request-timeout", "postgresql", None, id="no-request-timeout-postgresql"),
        pytest.param("no-request-timeout", "redis", None, id="no-request-timeout-redis"),
        pytest.param("no-redis-timeout", "postgresql", 2.0, id="no-redis-timeout-keeps-postgresql"),
        pytest.param("no-redis-timeout", "redis", None, id="no-redis-timeout-redis"),
    ],
)
def test_a_timeout_fault_drops_the_bound_of_its_dependencies_only(
    tag: str, dependency: Dependency, bound: float | None
) -> None:
    assert dependency_timeout(fault_named(tag), dependency, 2.0) == bound


def test_only_the_two_timeout_faults_drop_a_timeout() -> None:
    bounds = {
        name: [dependency_timeout(f, dependency, 2.0) for dependency in DEPENDENCIES]
        for name, f in FAULTS.items()
    }
    assert bounds.pop("no-request-timeout") == [None, None]
    assert bounds.pop("no-redis-timeout") == [2.0, None]
    assert all(bound == [2.0, 2.0] for bound in bounds.values())


@pytest.mark.parametrize(
    ("tag", "db_bounded", "redis_bounded"),
    [
        pytest.param("1.0.0", True, True, id="healthy"),
        pytest.param("no-request-timeout", False, False, id="no-request-timeout"),
        pytest.param("no-redis-timeout", True, False, id="no-redis-timeout"),
    ],
)
def test_the_image_tag_sets_the_timeouts_of_the_clients_the_service_builds(
    tag: str, db_bounded: bool, redis_bounded: bool
) -> None:
    """From the registry's image to the clients: its argv and env parsed as `__main__` does,
    the runtime built as the server does (no connection is opened)."""
    image = DEFAULT_REGISTRY.lookup(f"{SESSION_STATE}:{tag}")
    env = {
        "DB_URL": "postgresql://app@127.0.9.1:5432/app",
        "REDIS_URL": "redis://127.0.9.1:6379",
        **dict(image.env),
    }
    runtime, _ = build_runtime(parse_settings(env, list(image.args)))
    defaults = Timings()
    db_timeout = defaults.db_timeout if db_bounded else None
    redis_timeout = defaults.redis_timeout if redis_bounded else None
    assert runtime.db.timeout == db_timeout
    assert runtime.redis.timeout == redis_timeout
    options = client_options(runtime.redis.timeout)
    assert options["socket_timeout"] == options["socket_connect_timeout"] == redis_timeout
    writes = runtime.service.writes
    assert isinstance(writes, CommittedWrites) and isinstance(writes.on_commit, AfterCommit)
    assert writes.on_commit.publisher.redis is runtime.redis  # bounded by its timeout


@pytest.mark.parametrize(
    ("fault", "since", "from_head"),
    [
        pytest.param(HEALTHY, 0, False, id="healthy-first"),
        pytest.param(HEALTHY, 7, False, id="healthy-resume"),
        pytest.param(FAULTS["ws-resume-from-head"], 0, False, id="fault-first-gets-the-log"),
        pytest.param(FAULTS["ws-resume-from-head"], 7, True, id="fault-resume-skips"),
    ],
)
def test_only_a_resume_under_the_fault_starts_at_the_head(
    fault: Fault, since: int, from_head: bool
) -> None:
    assert resumes_from_head(fault, since) is from_head


def test_only_readiness_ignores_redis_leaves_redis_out() -> None:
    checked = {name: readiness_dependencies(f) for name, f in FAULTS.items()}
    assert checked.pop("readiness-ignores-redis") == ("postgresql",)
    assert set(checked.values()) == {("postgresql", "redis")}
    fault = FAULTS["readiness-ignores-redis"]
    assert readiness_verdict(fault, 1.0, 40.0, stopping=False) == "check"
    assert readiness_verdict(fault, 1.0, 40.0, stopping=True) == "not-ready"


@pytest.mark.parametrize(
    ("fault", "stopping", "path", "held"),
    [
        pytest.param(HEALTHY, True, "/api/v1/sessions", False, id="healthy-serves-on"),
        pytest.param(FAULTS["slow-shutdown"], False, "/api/v1/sessions", False, id="running"),
        pytest.param(FAULTS["slow-shutdown"], True, "/api/v1/sessions", True, id="api"),
        pytest.param(FAULTS["slow-shutdown"], True, "/ws", True, id="websocket"),
        pytest.param(FAULTS["slow-shutdown"], True, "/metrics", True, id="metrics"),
        pytest.param(FAULTS["slow-shutdown"], True, "/health/ready", False, id="readiness"),
        pytest.param(FAULTS["slow-shutdown"], True, "/health/live", False, id="liveness"),
    ],
)
def test_slow_shutdown_holds_all_but_the_probes_once_stopping(
    fault: Fault, stopping: bool, path: str, held: bool
) -> None:
    assert held_until_drain(fault, stopping, path) is held


def test_slow_shutdown_outlasts_the_deployments_grace_period() -> None:
    """The default must stay above terminationGracePeriodSeconds, or the kubelet never
    needs its SIGKILL and the fault is only a slow drain."""
    manifest = REPO_ROOT / "deploy" / "base" / "deployment.yaml"
    deployment = next(
        doc for doc in yaml.safe_load_all(manifest.read_text()) if doc["kind"] == "Deployment"
    )
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert Timings().slow_shutdown > grace
    assert parse_timings({"SLOW_SHUTDOWN_SECONDS": "2.5"}).slow_shutdown == 2.5


async def _serve(fault: Fault, paths: list[str]) -> list[tuple[int, float, Any]]:
    """Each path through error + fault middleware: (status, seconds, JSON body)."""

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    runtime = SimpleNamespace(
        settings=SimpleNamespace(fault=fault, timings=Timings()),
        uptime=lambda: 0.0,
        stopping=asyncio.Event(),
    )
    app = web.Application(middlewares=[error_middleware, fault_middleware])
    app[RUNTIME] = runtime
    for path in sorted(set(paths)):
        app.router.add_get(path, fine)
    answers = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for path in paths:
            began = time.perf_counter()
            response = await client.get(path)
            answers.append((response.status, time.perf_counter() - began, await response.json()))
    return answers


def test_errors_image_fails_one_api_request_in_five_as_json() -> None:
    paths = ["/api/v1/sessions", "/health/live"] * 10
    answers = asyncio.run(_serve(FAULTS["errors"], paths))
    api = [status for (status, _, _), path in zip(answers, paths, strict=True) if "api" in path]
    health = [
        status for (status, _, _), path in zip(answers, paths, strict=True) if "api" not in path
    ]
    assert api.count(500) == 2 and api.count(200) == 8
    assert health == [200] * 10
    body = next(body for status, _, body in answers if status == 500)
    assert body["error"]["code"] == "internal" and "seeded fault" in body["error"]["message"]


def test_slow_image_delays_api_requests_only() -> None:
    answers = asyncio.run(_serve(FAULTS["slow-responses"], ["/api/v1/sessions", "/health/ready"]))
    (api_status, api_seconds, _), (health_status, health_seconds, _) = answers
    assert api_status == health_status == 200
    assert api_seconds >= SLOW_MS / 1000
    assert health_seconds < SLOW_MS / 1000


def test_healthy_service_neither_delays_nor_fails() -> None:
    answers = asyncio.run(_serve(HEALTHY, ["/api/v1/sessions"] * 10))
    assert [status for status, _, _ in answers] == [200] * 10
    assert max(seconds for _, seconds, _ in answers) < SLOW_MS / 1000


def test_faults_docstring_examples() -> None:
    import doctest  # noqa: PLC0415

    from sandbox.images.session_state import faults, redisconn  # noqa: PLC0415

    assert doctest.testmod(faults).failed == 0
    assert doctest.testmod(redisconn).failed == 0


# ---- max connection age (rebalancing) ----


@pytest.mark.parametrize(
    ("tag", "configured", "ages"),
    [
        pytest.param("1.0.0", 0.0, False, id="reference-never"),
        pytest.param("1.2.0", 60.0, True, id="rebalancing-release"),
        pytest.param("never-rebalances", 60.0, False, id="seeded-ignores-it"),
        pytest.param("1.0.0", 60.0, True, id="reference-when-configured"),
    ],
)
def test_socket_max_age(tag: str, configured: float, ages: bool) -> None:
    fault = FAULTS.get(tag, HEALTHY)
    draws = [socket_max_age(fault, configured, random.Random(seed)) for seed in range(50)]
    if not ages:
        assert draws == [None] * 50
        return
    assert all(d is not None and 54.0 <= d <= 66.0 for d in draws)
    assert len({round(d or 0, 3) for d in draws}) > 40  # jittered: not all closed together


@pytest.mark.parametrize(
    ("tag", "max_age"),
    [
        pytest.param("1.0.0", None, id="reference"),
        pytest.param("1.1.0", None, id="minor"),
        pytest.param("1.2.0", str(REBALANCING_MAX_AGE_SECONDS), id="rebalancing"),
        pytest.param("never-rebalances", str(REBALANCING_MAX_AGE_SECONDS), id="seeded"),
    ],
)
def test_which_images_set_a_max_connection_age(tag: str, max_age: str | None) -> None:
    image = DEFAULT_REGISTRY.lookup(f"{SESSION_STATE}:{tag}")
    assert dict(image.env).get("WS_MAX_AGE_SECONDS") == max_age
    settings = parse_settings(
        {
            "DB_URL": "postgresql://a@127.0.0.1/a",
            "REDIS_URL": "redis://127.0.0.1",
            **dict(image.env),
        },
        list(image.args),
    )
    assert settings.timings.ws_max_age == float(max_age or 0)
    assert settings.fault.ignores_max_age is (tag == "never-rebalances")
