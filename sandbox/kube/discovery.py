"""Discovery documents, generated from the resource table the server routes by."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from sandbox.kube import openapi
from sandbox.kube.resources import RESOURCES, ResourceType, group_versions, in_group_version

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# The release whose schemas kubernetes-validate bundles for the served version.
SCHEMA_RELEASE = f"v{SERVER_VERSION['major']}.{SERVER_VERSION['minor']}.0"


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in group_versions():
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> dict[str, Any] | None:
    for name, version in group_versions():
        if name == group:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": group,
                "versions": [gv],
                "preferredVersion": gv,
            }
    return None


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    members = in_group_version(group, version)
    if not members:
        return None
    entries: list[dict[str, Any]] = []
    for resource in members:
        entries.append(_entry(resource))
        entries += [_sub_entry(resource, sub) for sub in resource.subresources]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _entry(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def _sub_entry(resource: ResourceType, sub: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"{resource.plural}/{sub.name}",
        "singularName": "",
        "namespaced": resource.namespaced,
        "kind": sub.kind,
        "verbs": list(sub.verbs),
    }
    if sub.group is not None:
        entry["group"] = sub.group
        entry["version"] = sub.version
    return entry


@functools.cache
def openapi_v3_root() -> dict[str, Any]:
    """Each group-version's document with the hash of its content, as upstream's
    `/openapi/v3` (kubectl caches documents by that URL, so a changed document must
    change its hash: k8s.io/kube-openapi pkg/handler3). The documents never change
    while the server runs, so neither does this."""
    paths = {}
    for prefix in ["api/v1", *(f"apis/{g}/{v}" for g, v in group_versions())]:
        document = openapi_v3_document(prefix)
        digest = hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest.upper()}"}
    return {"paths": paths}


def openapi_v3_document(group_version: str) -> dict[str, Any] | None:
    """kubectl's OpenAPI: each PATCH declares `fieldValidation`, and the kinds' schemas.

    kubectl's query-param verifier looks for the PATCH operation of a kind
    (`x-kubernetes-group-version-kind`) and that parameter; finding it, kubectl
    leaves validation to the server (`sandbox.kube.fieldvalidation`). `explain` and
    apply's strategic-merge patches read `components.schemas` (`sandbox.kube.openapi`).
    """
    return _openapi_v3_document(group_version)


@functools.cache
def _openapi_v3_document(group_version: str) -> dict[str, Any] | None:
    parts = group_version.split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    members = in_group_version(group, version)
    if not members:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    for resource in members:
        if not resource.stored:
            continue
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        paths[f"{prefix}{scope}/{resource.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{resource.kind}",
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            }
        }
    kinds = [r.kind for r in members if r.stored]
    schemas = openapi.group_version_components(SCHEMA_RELEASE, group, version, kinds)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def all_resource_keys() -> list[str]:
    return [r.key for r in RESOURCES]
