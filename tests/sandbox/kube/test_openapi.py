"""OpenAPI v3 from kubernetes-validate's schemas, and server-side field validation (tables)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.kube import discovery, fieldvalidation, openapi
from sandbox.kube.errors import ApiError
from sandbox.kube.resources import group_versions, in_group_version

RELEASE = discovery.SCHEMA_RELEASE


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            {"$ref": "#/$defs/io.k8s.api.apps.v1.DeploymentSpec"},
            {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"},
            id="a bare ref only moves to components",
        ),
        pytest.param(
            {"$ref": "#/$defs/a.B", "description": "field"},
            {"allOf": [{"$ref": "#/components/schemas/a.B"}], "description": "field"},
            id="a ref beside a description goes into allOf, as builder3 writes it",
        ),
        pytest.param(
            {"type": ["string", "null"], "format": "date-time"},
            {"type": "string", "format": "date-time"},
            id="the null openapi2jsonschema adds to every type is dropped",
        ),
        pytest.param(
            {"type": ["array", "null"], "items": {"$ref": "#/$defs/a.C"}},
            {"type": "array", "items": {"$ref": "#/components/schemas/a.C"}},
            id="array items are converted",
        ),
        pytest.param(
            {"type": ["object", "null"], "additionalProperties": {"type": ["string", "null"]}},
            {"type": "object", "additionalProperties": {"type": "string"}},
            id="map values are converted",
        ),
        pytest.param(
            {"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]},
            {"oneOf": [{"type": "string"}, {"type": "integer"}], "format": "int-or-string"},
            id="IntOrString gets its format back",
        ),
        pytest.param(
            {"oneOf": [{"type": ["string", "null"]}, {"type": ["number", "null"]}]},
            {"oneOf": [{"type": "string"}, {"type": "number"}]},
            id="Quantity keeps its oneOf",
        ),
        pytest.param(
            {"properties": {"oneOf": {"type": ["array", "null"]}}},
            {"properties": {"oneOf": {"type": "array"}}},
            id="a property named oneOf is a field, not a keyword",
        ),
        pytest.param(
            {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            {"x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
            id="kubernetes extensions are kept for apply's strategic-merge patches",
        ),
    ],
)
def test_json_schema_becomes_openapi_v3(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert openapi.to_openapi_v3(schema) == expected


def test_the_apiversion_and_kind_enums_openapi2jsonschema_adds_are_dropped_from_kinds() -> None:
    schema = {
        "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
        "properties": {"kind": {"type": ["string", "null"], "enum": ["Pod"]}},
    }
    assert openapi.to_openapi_v3(schema, in_properties_of_kind=True)["properties"] == {
        "kind": {"type": "string"}
    }


def test_references_are_followed_to_their_closure_and_cycles_end() -> None:
    defs = {
        "a": {"properties": {"b": {"$ref": "#/$defs/b"}}},
        "b": {"items": {"$ref": "#/$defs/c"}},
        "c": {"properties": {"a": {"$ref": "#/$defs/a"}}},
        "unrelated": {},
    }
    assert openapi.referenced(defs, ["a"]) == ["a", "b", "c"]


@pytest.mark.parametrize(("group", "version"), [("", "v1"), *group_versions()])
def test_every_group_version_document_resolves_its_own_refs(group: str, version: str) -> None:
    prefix = f"apis/{group}/{version}" if group else f"api/{version}"
    document = discovery.openapi_v3_document(prefix)
    assert document is not None
    schemas = document["components"]["schemas"]
    refs = set(_refs(document))
    missing = {r for r in refs if r.removeprefix(openapi.OPENAPI_REF) not in schemas}
    assert not missing, missing
    stored = {r.kind for r in in_group_version(group, version) if r.stored}
    gvks = {
        gvk["kind"]
        for schema in schemas.values()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
        if gvk["group"] == group and gvk["version"] == version
    }
    bundled = {k for k in stored if openapi.kind_definition(RELEASE, group, version, k)}
    assert bundled <= gvks
    assert "#/$defs/" not in json.dumps(document)


def test_custom_resources_and_metrics_have_no_bundled_schema() -> None:
    assert openapi.kind_definition(RELEASE, "chaos-mesh.org", "v1alpha1", "NetworkChaos") is None
    assert openapi.kind_definition(RELEASE, "metrics.k8s.io", "v1beta1", "PodMetrics") is None


def test_the_root_names_each_document_by_the_hash_of_its_content() -> None:
    root = discovery.openapi_v3_root()["paths"]
    apps, core = root["apis/apps/v1"]["serverRelativeURL"], root["api/v1"]["serverRelativeURL"]
    assert apps.startswith("/openapi/v3/apis/apps/v1?hash=")
    assert apps.split("hash=")[1] != core.split("hash=")[1]
    assert apps == discovery.openapi_v3_root()["paths"]["apis/apps/v1"]["serverRelativeURL"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _deployment(**spec: Any) -> dict[str, Any]:
    container = {"name": "web", "image": "nginx", **spec.pop("container", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"any": "label"}, "annotations": {"a/b": "c"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("obj", "unknown"),
    [
        pytest.param(_deployment(), [], id="a valid Deployment has none"),
        pytest.param(
            _deployment(replicaz=3), ["spec.replicaz"], id="a misspelt spec field is named"
        ),
        pytest.param(
            _deployment(container={"imagePullPolcy": "Always"}),
            ["spec.template.spec.containers[0].imagePullPolcy"],
            id="fields in list items carry their index",
        ),
        pytest.param(
            _deployment(container={"resources": {"requests": {"cpu": "1", "gpu": "1"}}}),
            [],
            id="map keys (resource names, labels) are data, not fields",
        ),
        pytest.param(
            {**_deployment(), "status": {"replicas": 1, "bogus": True}, "extra": 1},
            ["status.bogus", "extra"],
            id="status and top-level fields count, in document order",
        ),
    ],
)
def test_unknown_fields_of_a_deployment(obj: dict[str, Any], unknown: list[str]) -> None:
    found = fieldvalidation.unknown_fields_of_kind(RELEASE, "apps", "v1", "Deployment", obj)
    assert found == unknown


def test_a_kind_without_a_bundled_schema_is_not_checked() -> None:
    assert (
        fieldvalidation.unknown_fields_of_kind(
            RELEASE, "chaos-mesh.org", "v1alpha1", "NetworkChaos", {"spec": {"anything": 1}}
        )
        == []
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, "Warn", id="no parameter means Warn"),
        pytest.param("", "Warn", id="an empty parameter means Warn"),
        pytest.param("Strict", "Strict", id="Strict"),
        pytest.param("Ignore", "Ignore", id="Ignore"),
    ],
)
def test_the_directive(value: str | None, expected: str) -> None:
    assert fieldvalidation.directive(value, "CreateOptions") == expected


def test_an_unsupported_directive_is_upstreams_422() -> None:
    with pytest.raises(ApiError) as caught:
        fieldvalidation.directive("strict", "PatchOptions")
    status = caught.value.to_status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
        '"strict": supported values: "Ignore", "Strict", "Warn"'
    )


def test_create_and_patch_errors_are_worded_as_upstreams() -> None:
    created = fieldvalidation.body_error("Deployment", "v1", ["spec.a", "spec.b"]).to_status()
    assert created["code"] == 400 and created["reason"] == "BadRequest"
    assert created["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding '
        'error: unknown field "spec.a", unknown field "spec.b"'
    )
    patched = fieldvalidation.patch_error(
        fieldvalidation.go_value({"spec": {"foo": 1}}), ["spec.foo"]
    ).to_status()
    assert patched["code"] == 422 and patched["reason"] == "Invalid"
    assert patched["message"] == (
        ' "" is invalid: patch: Invalid value: "map[spec:map[foo:1]]": strict decoding '
        'error: unknown field "spec.foo"'
    )
    assert patched["details"]["causes"][0]["field"] == "patch"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": [True, None]}, "map[a:[true <nil>] b:1]", id="sorted keys"),
        pytest.param({"s": 'say "hi"'}, 'map[s:say "hi"]', id="strings unquoted"),
        pytest.param(1000000, "1e+06", id="a million in exponent form"),
        pytest.param(0.25, "0.25", id="a fraction"),
        pytest.param(-123456, "-123456", id="negative below a million"),
    ],
)
def test_go_value_prints_as_fmt_does(value: Any, expected: str) -> None:
    assert fieldvalidation.go_value(value) == expected


def test_warning_headers_escape_quotes() -> None:
    assert fieldvalidation.warning_header('unknown field "spec.x"') == (
        '299 - "unknown field \\"spec.x\\""'
    )
