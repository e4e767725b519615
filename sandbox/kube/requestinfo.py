"""Turn a request path into what it addresses, like the API server's RequestInfoFactory."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.kube.errors import ApiError
from sandbox.kube.resources import ResourceType, find

NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class RequestInfo:
    group: str
    version: str
    resource: ResourceType | None  # None: the group-version's discovery document
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def not_found_path(path: str) -> ApiError:
    return ApiError(
        404, "NotFound", "the server could not find the requested resource", kind="", name=""
    )


def parse_path(path: str) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise not_found_path(path)
    if not rest:
        return RequestInfo(group, version, None)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    resource = find(group, version, rest[0])
    if resource is None or len(rest) > 3:
        raise not_found_path(path)
    if namespace is not None and not resource.namespaced:
        raise not_found_path(path)
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and resource.subresource(subresource) is None:
        raise not_found_path(path)
    return RequestInfo(group, version, resource, namespace, name, subresource)
