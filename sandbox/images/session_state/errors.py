"""Errors that mirror HTTP: each is a status, a stable code and a message, sent as JSON.

Client mistakes are 4xx `ServiceError`s raised by the pure modules; a dependency that
cannot answer is `Unavailable` (503 with Retry-After); `to_service_error` maps
everything else, so that no client mistake becomes a 500 and nothing crashes the server.

    >>> to_service_error(ConnectionRefusedError()).status
    503
    >>> error_body(NotFound("no session 42"))
    {'error': {'code': 'not_found', 'message': 'no session 42'}}
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisClusterException, RedisError

RETRY_AFTER_SECONDS = 2


class ServiceError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotFound(ServiceError):
    status, code = 404, "not_found"


class MethodNotAllowed(ServiceError):
    status, code = 405, "method_not_allowed"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PreconditionFailed(ServiceError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ServiceError):
    status, code = 422, "unprocessable"


class Unavailable(ServiceError):
    status, code = 503, "unavailable"

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message, {"Retry-After": str(retry_after)})


# Exceptions meaning "PostgreSQL cannot answer now" (down, restarting, failing over,
# read-only standby, pool exhausted, too slow): the request may be retried.
DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
)
# Exceptions meaning "Redis cannot answer now" (redis-py's cluster errors are not all
# RedisErrors: RedisClusterException derives from Exception).
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def to_service_error(error: BaseException) -> ServiceError:
    """The `ServiceError` to answer with; a plain 500 for anything unexpected."""
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, web.HTTPException):
        code = _HTTP_CODES.get(error.status, "http_error")
        return _with_status(error.status, code, error.reason)
    if isinstance(error, (RedisError, RedisClusterException)):
        return Unavailable("redis is unavailable")
    if isinstance(error, DB_UNAVAILABLE):
        return Unavailable("the database is unavailable")
    return ServiceError("internal error")


def _with_status(status: int, code: str, message: str) -> ServiceError:
    error = ServiceError(message)
    error.status, error.code = status, code
    return error


def error_body(error: ServiceError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message}}
