"""What a request asks to do, as the authorizer sees it: upstream's RequestInfoFactory.

`request_attributes` follows k8s.io/apiserver/pkg/endpoints/request/requestinfo.go
`NewRequestInfo` from the path, method and query alone, before routing (so a
request for an unknown resource is authorized, and denied, like any other):

>>> a = request_attributes("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"})
>>> (a.verb, a.resource, a.namespace, a.name)
('watch', 'pods', 'ns', '')
>>> a = request_attributes("POST", "/api/v1/namespaces/ns/pods/web-1/eviction", {})
>>> (a.verb, a.resource, a.subresource, a.name)
('create', 'pods', 'eviction', 'web-1')
>>> request_attributes("GET", "/healthz", {}).path
'/healthz'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.kube.auth.user import UserInfo

API_PREFIXES = ("api", "apis")
GROUPLESS_PREFIXES = ("api",)
SPECIAL_VERBS = ("proxy", "watch")
SPECIAL_VERBS_NO_SUBRESOURCES = ("proxy",)
NAMESPACE_SUBRESOURCES = ("status", "finalize")
METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class Attributes:
    """authorizer.AttributesRecord: a resource request or a non-resource path."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Request:
    """Attributes and the user they are asked for (authorizer.Attributes.GetUser)."""

    user: UserInfo
    attributes: Attributes


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """RequestInfoFactory.NewRequestInfo, without the parts the sandbox never serves.

    GET on a collection is `list`, or `watch` with a true `watch` parameter, and a
    `metadata.name=` field selector names the object (so `resourceNames` rules
    apply to `kubectl get pod x -w`); a named GET stays `get` whatever the query
    says, as upstream; `/apis/g/v/watch/...` is the old watch path. DELETE on a
    collection is `deletecollection`.
    """
    verb = METHOD_VERBS.get(method.upper(), "")
    parts = [part for part in path.strip("/").split("/") if part] if path.strip("/") else []
    non_resource = Attributes(method.lower(), False, path=path)
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return non_resource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix not in GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return non_resource
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts[0] in SPECIAL_VERBS:
        if len(parts) < 2:  # upstream answers an error; the sandbox routes it to a 404
            return Attributes(parts[0], True, path, group, version)
        verb, parts = parts[0], parts[1:]
    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    subresource = parts[2] if len(parts) >= 3 and verb not in SPECIAL_VERBS_NO_SUBRESOURCES else ""
    name = parts[1] if len(parts) >= 2 else ""
    resource = parts[0]
    if not name and verb == "get":
        verb = "watch" if _query_true(query.get("watch")) else "list"
        name = _name_from_field_selector(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, True, path, group, version, resource, subresource, namespace, name)


def _query_true(value: str | None) -> bool:
    """Convert_Slice_string_To_bool: any value but "false" and "0" is true."""
    return value is not None and value.lower() not in ("false", "0")


def _name_from_field_selector(selector: str | None) -> str:
    """fields.Selector.RequiresExactMatch("metadata.name") on a valid path segment name."""
    if not selector:
        return ""
    terms = [term.strip() for term in selector.split(",") if term.strip()]
    for term in terms:
        for operator in ("==", "="):
            key, found, value = term.partition(operator)
            if found and key.strip() == "metadata.name" and not value.startswith("="):
                value = value.strip()
                return value if _valid_path_segment(value) else ""
    return ""


def _valid_path_segment(name: str) -> bool:
    """path.IsValidPathSegmentName: not `.`/`..`, no `/` or `%`."""
    return bool(name) and name not in (".", "..") and "/" not in name and "%" not in name
