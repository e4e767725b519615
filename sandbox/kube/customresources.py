"""Custom resources served from vendored CustomResourceDefinitions (`schemas/`).

The sandbox serves Chaos Mesh's NetworkChaos and DNSChaos from the very CRD
manifests Chaos Mesh publishes (`schemas/chaos-mesh/`, commit and license in its
README), so names, scope, printer columns and the structural schema are upstream's,
and `kubectl get crd networkchaos.chaos-mesh.org` shows the object discovery is
built from. A CRD here is static: the sandbox cannot serve a CRD a client creates,
so `customresourcedefinitions` are read-only (`resources.py`) and `install` creates
the vendored ones at start.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import yaml

KubeObject = dict[str, Any]
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VENDORED = (
    SCHEMAS / "chaos-mesh" / "chaos-mesh.org_networkchaos.yaml",
    SCHEMAS / "chaos-mesh" / "chaos-mesh.org_dnschaos.yaml",
)
CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    priority: int = 0


@dataclass(frozen=True)
class CustomResource:
    """One served version of a CRD: what the resource table and admission need."""

    manifest: Mapping[str, Any]  # the CRD object as vendored (read-only)
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    has_status: bool
    schema: Mapping[str, Any]
    printer_columns: tuple[PrinterColumn, ...]

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"


def from_manifest(manifest: Mapping[str, Any]) -> list[CustomResource]:
    """The served versions of a CRD manifest.

    With no `additionalPrinterColumns` a version prints Age, as apiextensions
    defaults it (`SetDefaults_CustomResourceDefinitionSpec`).
    """
    spec = manifest["spec"]
    names = spec["names"]
    found = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        columns = version.get("additionalPrinterColumns") or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]
        found.append(
            CustomResource(
                manifest=manifest,
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                list_kind=names.get("listKind") or f"{names['kind']}List",
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in (version.get("subresources") or {}),
                schema=(version.get("schema") or {}).get("openAPIV3Schema") or {},
                printer_columns=tuple(
                    PrinterColumn(c["name"], c["type"], c["jsonPath"], int(c.get("priority", 0)))
                    for c in columns
                ),
            )
        )
    return found


@cache
def served() -> tuple[CustomResource, ...]:
    """Every vendored custom resource version, in file order."""
    found: list[CustomResource] = []
    for path in VENDORED:
        found += from_manifest(yaml.safe_load(path.read_text()))
    return tuple(found)


def by_key(key: str) -> CustomResource | None:
    return next((resource for resource in served() if resource.key == key), None)


def crd_manifests() -> list[KubeObject]:
    """The vendored CRD objects, one per CRD, as copies."""
    seen: dict[str, KubeObject] = {}
    for resource in served():
        name = resource.manifest["metadata"]["name"]
        seen.setdefault(name, copy.deepcopy(dict(resource.manifest)))
    return list(seen.values())


def established_status(crd: KubeObject, now: str) -> KubeObject:
    """What apiextensions' controllers write once a CRD is served: names accepted, established.

    >>> crd = {"spec": {"names": {"kind": "K", "plural": "ks"},
    ...        "versions": [{"name": "v1", "storage": True}]}}
    >>> status = established_status(crd, "2026-01-01T00:00:00Z")
    >>> [c["type"] for c in status["conditions"]], status["storedVersions"]
    (['NamesAccepted', 'Established'], ['v1'])
    """
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
        "storedVersions": stored,
    }


class _Objects(Protocol):
    """The part of the store that `install` writes through."""

    def find(self, resource: str, namespace: str, name: str) -> KubeObject | None: ...

    def create(self, resource: str, obj: KubeObject) -> KubeObject: ...


def install(store: _Objects) -> None:
    """Create the vendored CRD objects that are not there yet (idempotent)."""
    for manifest in crd_manifests():
        if store.find(CRD_KEY, "", manifest["metadata"]["name"]) is None:
            store.create(CRD_KEY, manifest)


def column_value(obj: Mapping[str, Any], json_path: str) -> Any:
    """A printer column's cell: a simple `.a.b` JSONPath; None (`<none>`) when absent.

    >>> column_value({"spec": {"action": "delay"}}, ".spec.action")
    'delay'
    >>> column_value({"spec": {}}, ".spec.duration") is None
    True
    """
    value: Any = obj
    for part in json_path.strip(".").split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
