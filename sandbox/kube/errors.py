"""API errors as Kubernetes `metav1.Status` reasons and codes.

Every client mistake maps to one of these and is answered as a Status object;
the server answers 500 only for its own bugs (and keeps serving).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One `details.causes[]` entry; the JSON key for `reason` is `reason`."""

    reason: str
    message: str
    field: str = ""

    def to_json(self) -> dict[str, str]:
        body = {"reason": self.reason, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    name: str = ""
    kind: str = ""
    group: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int = 0

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def to_status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [cause.to_json() for cause in self.causes]
        if self.retry_after_seconds:
            details["retryAfterSeconds"] = self.retry_after_seconds
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        name=name,
        kind=resource,
        group=group,
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        name=name,
        kind=resource,
        group=group,
    )


def conflict(resource: str, name: str, group: str = "", detail: str = "") -> ApiError:
    detail = detail or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
        name=name,
        kind=resource,
        group=group,
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    listed = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind}.{group or "core"} "{name}" is invalid: {listed}'.replace(".core ", " "),
        name=name,
        kind=kind,
        group=group,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(message: str, causes: list[Cause], retry_after_seconds: int = 0) -> ApiError:
    return ApiError(
        429, "TooManyRequests", message, causes=causes, retry_after_seconds=retry_after_seconds
    )


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml (got {content_type})",
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)
