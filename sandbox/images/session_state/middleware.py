"""Around every request: metrics (outermost), errors as JSON, then the seeded faults.

No client mistake becomes a 500 and no exception escapes to aiohttp: a `ServiceError`
is answered as it says, a dependency failure is a 503 with Retry-After, anything
else is logged and answered 500, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisClusterException, RedisError

from sandbox.images.session_state.errors import (
    DB_UNAVAILABLE,
    REDIS_UNAVAILABLE,
    ServiceError,
    Unavailable,
    error_body,
    to_service_error,
)
from sandbox.images.session_state.faults import (
    burn_cpu,
    held_until_drain,
    is_api_request,
    is_hanging,
    seeded_error,
)
from sandbox.images.session_state.state import RUNTIME

log = logging.getLogger("session_state.http")
REDIS_ERRORS = (RedisError, RedisClusterException)
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE, *DB_UNAVAILABLE)
_API_REQUEST_NUMBERS = itertools.count(1)  # this process's API requests, for `errors`


def route_label(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        request.app[RUNTIME].metrics.observe_request(
            route_label(request), request.method, status, time.perf_counter() - began
        )


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    if held_until_drain(settings.fault, runtime.stopping.is_set(), request.path):
        await runtime.draining.wait()  # slow-shutdown: SLOW_SHUTDOWN_SECONDS, or the SIGKILL
    if is_hanging(settings.fault, runtime.uptime(), settings.timings.hang_after):
        await runtime.stopping.wait()  # hangs until SIGTERM (or forever, if never sent)
        raise Unavailable("shutting down")
    if settings.fault.burns_cpu:
        burn_cpu(settings.timings.burn_ms)
    if is_api_request(request.path):
        if settings.fault.api_delay_ms:
            await asyncio.sleep(settings.fault.api_delay_ms / 1000)
        if seeded_error(settings.fault, next(_API_REQUEST_NUMBERS)):
            raise ServiceError("seeded fault: this request fails on purpose")
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as exception:
        if exception.status < 400:
            raise
        return _answer(request, to_service_error(exception), dict(exception.headers))
    except ServiceError as error:
        return _answer(request, error)
    except DEPENDENCY_ERRORS as error:
        _count_dependency_error(request, error)
        return _answer(request, to_service_error(error))
    except asyncpg.DataError as error:
        log.info("%s %s: data refused by PostgreSQL: %s", request.method, request.path, error)
        return _answer(request, _unprocessable(str(type(error).__name__)))
    except Exception:  # the outermost handler: log and keep serving
        log.exception("%s %s failed", request.method, request.path)
        return _answer(request, to_service_error(RuntimeError()))


def _unprocessable(reason: str) -> ServiceError:
    error = ServiceError(f"the state cannot be stored ({reason})")
    error.status, error.code = 422, "unprocessable"
    return error


def _count_dependency_error(request: web.Request, error: BaseException) -> None:
    runtime = request.app.get(RUNTIME)
    if runtime is not None:
        counter = runtime.metrics.redis_errors if isinstance(error, REDIS_ERRORS) else None
        (counter or runtime.metrics.db_errors).labels("request").inc()
    log.warning(
        "%s %s: dependency unavailable: %s", request.method, request.path, type(error).__name__
    )


def _answer(
    request: web.Request, error: ServiceError, extra: dict[str, str] | None = None
) -> web.Response:
    headers = {k: v for k, v in (extra or {}).items() if k.lower() in ("allow", "retry-after")}
    headers.update(error.headers)
    return web.json_response(error_body(error), status=error.status, headers=headers)


MIDDLEWARES = (metrics_middleware, error_middleware, fault_middleware)
