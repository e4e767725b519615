"""A CRD's structural schema applied as kube-apiserver applies it: prune, default, validate.

apiextensions-apiserver, for a custom resource whose CRD has a structural
`openAPIV3Schema`: unknown fields are dropped (`pkg/apiserver/schema/pruning`),
`default`s are filled in where the parent object exists (`.../schema/defaulting`),
and the result is validated (`.../apiserver/validation`, kube-openapi's validator),
each failure a `details.causes[]` entry of a 422 Invalid. `metadata` is the API
server's, never pruned or validated here; `x-kubernetes-preserve-unknown-fields`
keeps a subtree. Pure functions over plain JSON; the caller owns the copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from sandbox.kube.errors import Cause

KubeObject = dict[str, Any]
Schema = Mapping[str, Any]


def prune(schema: Schema, value: Any) -> None:
    """Drop, in place, every object field the schema does not declare.

    >>> obj = {"spec": {"action": "delay", "typo": 1}, "metadata": {"x": 1}}
    >>> prune({"properties": {"spec": {"properties": {"action": {}}}, "metadata": {}}}, obj)
    >>> obj
    {'spec': {'action': 'delay'}, 'metadata': {'x': 1}}
    """
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key in list(value):
            if properties is not None and key in properties:
                _prune_child(properties[key], value[key], key)
            elif isinstance(additional, Mapping):
                prune(additional, value[key])
            elif properties is not None or additional is not True:
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            prune(schema["items"], item)


def _prune_child(schema: Schema, value: Any, key: str) -> None:
    # The root's `metadata` is ObjectMeta: the API server owns it (schema `type: object` only).
    if key == "metadata" and not schema.get("properties"):
        return
    prune(schema, value)


def apply_defaults(schema: Schema, value: Any) -> None:
    """Fill in, in place, each `default` whose parent object is present.

    >>> spec = {"action": "delay"}
    >>> apply_defaults({"properties": {"direction": {"default": "to"}}}, spec)
    >>> spec
    {'action': 'delay', 'direction': 'to'}
    """
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child in properties.items():
            if key not in value and "default" in child:
                value[key] = json.loads(json.dumps(child["default"]))
            if key in value:
                apply_defaults(child, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value:
                if key not in properties:
                    apply_defaults(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            apply_defaults(schema["items"], item)


def validate(schema: Schema, obj: KubeObject) -> list[Cause]:
    """The causes kube-apiserver lists for `obj`, one per failing field, in path order.

    >>> schema = {"properties": {"spec": {"type": "object", "required": ["action"],
    ...     "properties": {"direction": {"type": "string", "enum": ["to", "from"]}}}}}
    >>> [c.message for c in validate(schema, {"spec": {"direction": "up"}})]
    ['Required value', 'Unsupported value: "up": supported values: "to", "from"']
    """
    checked = {key: value for key, value in obj.items() if key != "metadata"}
    root = {key: value for key, value in schema.items() if key != "properties"}
    root["properties"] = {
        key: value for key, value in (schema.get("properties") or {}).items() if key != "metadata"
    }
    validator = jsonschema.Draft4Validator(_openapi_to_jsonschema(root))
    causes = [_cause(error) for error in validator.iter_errors(checked)]
    return sorted(causes, key=lambda cause: cause.field)


def _openapi_to_jsonschema(schema: Any) -> Any:
    """OpenAPI v3 `nullable` as JSON Schema types; `x-kubernetes-*` and formats are ignored."""
    if isinstance(schema, Mapping):
        converted = {key: _openapi_to_jsonschema(value) for key, value in schema.items()}
        if schema.get("nullable") and "type" in schema:
            converted["type"] = [schema["type"], "null"]
            if "enum" in converted:
                converted["enum"] = [*converted["enum"], None]
        return converted
    if isinstance(schema, list):
        return [_openapi_to_jsonschema(item) for item in schema]
    return schema


def _cause(error: jsonschema.ValidationError) -> Cause:
    path = _field_path(list(error.absolute_path))
    instance, keyword = error.instance, error.validator
    if keyword == "required":
        missing = str(error.message).split("'")[1]
        return Cause("FieldValueRequired", "Required value", _join(path, missing))
    if keyword == "enum":
        allowed = ", ".join(_go_quote(value) for value in error.validator_value)
        return Cause(
            "FieldValueNotSupported",
            f"Unsupported value: {_go_quote(instance)}: supported values: {allowed}",
            path,
        )
    if keyword == "type":
        wanted = error.validator_value
        if isinstance(wanted, list):
            wanted = next(t for t in wanted if t != "null")
        return Cause(
            "FieldValueTypeInvalid",
            f'Invalid value: "{_json_type(instance)}": {path} in body must be of type '
            f'{wanted}: "{_json_type(instance)}"',
            path,
        )
    detail = {
        "pattern": f"{path} in body should match '{error.validator_value}'",
        "minimum": f"{path} in body should be greater than or equal to {error.validator_value}",
        "maximum": f"{path} in body should be less than or equal to {error.validator_value}",
        "minLength": f"{path} in body should be at least {error.validator_value} chars long",
        "maxLength": f"{path} in body may not be longer than {error.validator_value}",
        "minItems": f"{path} in body should have at least {error.validator_value} items",
        "maxItems": f"{path} in body should have at most {error.validator_value} items",
    }.get(str(keyword), str(error.message))
    return Cause("FieldValueInvalid", f"Invalid value: {_go_quote(instance)}: {detail}", path)


def _field_path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else "object"


def _go_quote(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)
