"""`/health/live` (no dependency is looked at) and `/health/ready` (PostgreSQL and Redis;
PostgreSQL only under the `readiness-ignores-redis` fault).

>>> status, body = readiness_answer({"postgresql": "ok", "redis": "ConnectionError"})
>>> status, body["error"]["message"]
(503, 'not ready: redis (ConnectionError)')
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.images.session_state.errors import DB_UNAVAILABLE, REDIS_UNAVAILABLE
from sandbox.images.session_state.faults import readiness_dependencies, readiness_verdict
from sandbox.images.session_state.state import RUNTIME, Runtime

CHECK_TIMEOUT = 0.8  # the probes' timeoutSeconds is 1
OK = "ok"


def readiness_answer(checks: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """200 when every check is "ok", else 503 naming each failing dependency."""
    failing = [f"{name} ({result})" for name, result in checks.items() if result != OK]
    if not failing:
        return 200, {"status": "ready", "checks": checks}
    message = "not ready: " + ", ".join(failing)
    return 503, {"error": {"code": "not_ready", "message": message}, "checks": checks}


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "live"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    verdict = readiness_verdict(
        runtime.settings.fault,
        runtime.uptime(),
        runtime.settings.timings.startup,
        runtime.stopping.is_set(),
    )
    if verdict == "ready":
        return web.json_response({"status": "ready", "checks": {}})
    if verdict == "not-ready":
        reason = "shutting down" if runtime.stopping.is_set() else "starting"
        status, body = readiness_answer({"server": reason})
        return web.json_response(body, status=status)
    names = readiness_dependencies(runtime.settings.fault)
    results = await asyncio.gather(*(CHECKS[name](runtime) for name in names))
    status, body = readiness_answer(dict(zip(names, results, strict=True)))
    return web.json_response(body, status=status)


async def check_postgresql(runtime: Runtime) -> str:
    if not runtime.service.ready_for_writes:
        return "schema not migrated yet"
    try:
        await asyncio.wait_for(runtime.db.ping(CHECK_TIMEOUT), CHECK_TIMEOUT)
    except DB_UNAVAILABLE as error:
        runtime.metrics.db_errors.labels("ready").inc()
        return type(error).__name__
    return OK


async def check_redis(runtime: Runtime) -> str:
    try:
        await runtime.redis.ping(CHECK_TIMEOUT)
    except REDIS_UNAVAILABLE as error:
        runtime.metrics.redis_errors.labels("ready").inc()
        return type(error).__name__
    return OK


CHECKS: dict[str, Callable[[Runtime], Awaitable[str]]] = {
    "postgresql": check_postgresql,
    "redis": check_redis,
}


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    runtime.metrics.websockets.set(len(runtime.sockets))
    response = web.Response(body=runtime.metrics.render())
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response


def add_routes(app: web.Application, with_metrics: bool = True) -> None:
    app.router.add_get("/health/live", live, allow_head=False)
    app.router.add_get("/health/ready", ready, allow_head=False)
    if with_metrics:
        app.router.add_get("/metrics", metrics, allow_head=False)
