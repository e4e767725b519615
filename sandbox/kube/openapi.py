"""OpenAPI v3 documents of the built-in kinds, from the schemas kubernetes-validate ships.

kubectl reads `/openapi/v3/<group-version>` for `kubectl explain` (its template
finds the kind's schema in `components.schemas` by `x-kubernetes-group-version-kind`:
k8s.io/kubectl pkg/explain/v2/templates/plaintext.tmpl), to build strategic-merge
patches (`apply`), and to see that PATCH takes `fieldValidation` (then it leaves
validation to the server). The schemas are not written here: kubernetes-validate
bundles each release's upstream OpenAPI (v2, turned into JSON Schema by
openapi2jsonschema) as `kubernetes-json-schema/v1.32.0-local/_definitions.json`.
`to_openapi_v3` undoes what that turn changed, so a document looks as kube-openapi's
builder3 writes it:

- `#/$defs/X` refs become `#/components/schemas/X`;
- a ref with siblings (a field's description) becomes `allOf: [{$ref}]` beside them,
  as upstream v3 does, so that explain prints the field's and the type's description;
- `type: [T, "null"]` becomes `type: T`;
- IntOrString's `oneOf` of string and integer gets back `format: int-or-string`
  (Quantity's `oneOf` of string and number stays as it is, as upstream v3 has it);
- the `enum` of `apiVersion`/`kind` that openapi2jsonschema adds is dropped (upstream
  has none).

What the conversion cannot bring back: the v3-only `default: {}` of struct fields,
the `Possible enum values` that v3 documents list as `enum`, and the descriptions of
IntOrString and Quantity.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]
JSONSCHEMA_REF = "#/$defs/"
OPENAPI_REF = "#/components/schemas/"
_SCHEMA_LISTS = ("allOf", "oneOf", "anyOf")


@functools.cache
def definitions(release: str) -> Mapping[str, Schema]:
    """kubernetes-validate's JSON-Schema definitions of one release (`v1.32.0`), by name."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    text = (root / f"{release}-local" / "_definitions.json").read_text()
    found: dict[str, Schema] = json.loads(text)["$defs"]
    return found


def to_openapi_v3(schema: Any, in_properties_of_kind: bool = False) -> Any:
    """One JSON-Schema (draft 2020, openapi2jsonschema's output) as OpenAPI v3 writes it.

    >>> to_openapi_v3({"$ref": "#/$defs/a.B", "description": "d"})
    {'allOf': [{'$ref': '#/components/schemas/a.B'}], 'description': 'd'}
    >>> to_openapi_v3({"type": ["integer", "null"], "format": "int32"})
    {'type': 'integer', 'format': 'int32'}
    >>> to_openapi_v3({"oneOf": [{"type": ["string", "null"]}, {"type": ["integer", "null"]}]})
    {'oneOf': [{'type': 'string'}, {'type': 'integer'}], 'format': 'int-or-string'}
    """
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = OPENAPI_REF + value.removeprefix(JSONSCHEMA_REF)
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            out[key] = kinds[0] if len(kinds) == 1 else kinds
        elif key == "properties" and isinstance(value, dict):
            out[key] = {
                name: _property(name, sub, in_properties_of_kind) for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties"):
            out[key] = to_openapi_v3(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [to_openapi_v3(item) for item in value]
        else:
            out[key] = value
    if _is_int_or_string(out.get("oneOf")):
        out.setdefault("format", "int-or-string")
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _property(name: str, schema: Any, of_kind: bool) -> Any:
    converted = to_openapi_v3(schema)
    if of_kind and name in ("apiVersion", "kind") and isinstance(converted, dict):
        converted.pop("enum", None)
    return converted


def _is_int_or_string(alternatives: Any) -> bool:
    """`oneOf: [string, integer]` (kube-openapi's v3 IntOrString, which has the format too)."""
    if not isinstance(alternatives, list):
        return False
    types = {str(a.get("type")) for a in alternatives if isinstance(a, dict)}
    return types == {"string", "integer"}


def referenced(defs: Mapping[str, Schema], roots: Iterable[str]) -> list[str]:
    """The named definitions and every definition they reach through `$ref`, sorted."""
    seen: set[str] = set()
    stack = [name for name in roots if name in defs]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [ref for ref in _refs(defs[name]) if ref in defs and ref not in seen]
    return sorted(seen)


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(JSONSCHEMA_REF):
                yield value.removeprefix(JSONSCHEMA_REF)
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def kind_schemas(defs: Mapping[str, Schema], group: str, version: str) -> dict[str, str]:
    """kind -> definition name, for the kinds of one group-version (by their GVK extension)."""
    found: dict[str, str] = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if gvk.get("group", "") == group and gvk.get("version") == version:
                found.setdefault(str(gvk["kind"]), name)
    return found


@functools.cache
def kind_definition(release: str, group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind of a release (`io.k8s.api.apps.v1.Deployment`), if bundled."""
    return kind_schemas(definitions(release), group, version).get(kind)


def components(defs: Mapping[str, Schema], roots: Iterable[str]) -> dict[str, Schema]:
    """`components.schemas` for documents that describe the `roots` definitions."""
    names = referenced(defs, roots)
    return {
        name: to_openapi_v3(defs[name], "x-kubernetes-group-version-kind" in defs[name])
        for name in names
    }


def group_version_components(
    release: str, group: str, version: str, kinds: Iterable[str]
) -> dict[str, Schema]:
    """`components.schemas` of one group-version document: the kinds asked for (those
    bundled; a kind kubernetes-validate lacks is left out) and what they reference."""
    defs = definitions(release)
    names = kind_schemas(defs, group, version)
    return components(defs, [names[kind] for kind in kinds if kind in names])
