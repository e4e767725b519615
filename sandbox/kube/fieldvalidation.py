"""Server-side field validation (`fieldValidation=Strict|Warn|Ignore`) of built-in kinds.

kubectl 1.32 sees in the OpenAPI that PATCH takes `fieldValidation` and then leaves
validation to the server: `kubectl apply --validate=strict` (its default) sends
`fieldValidation=Strict`, `--validate=warn` sends `Warn`, `--validate=false` sends
`Ignore`; a request without the parameter means `Warn`
(k8s.io/apiserver pkg/endpoints/handlers/rest.go, `fieldValidation`). Upstream finds
unknown fields while decoding into the Go type (sigs.k8s.io/json strict mode); the
sandbox walks the same kind's schema (`sandbox.kube.openapi`) and names each field
that is not in it with the decoder's path syntax, `spec.template.spec.containers[0].x`.

Pure: an object and a schema in, the unknown paths and upstream's messages out.
Duplicate fields (the other strict error) are not detected: bodies are parsed with
Python's json, which keeps the last value silently, as `Ignore` would.

    >>> strict_decoding_error(["spec.foo", "bar"])
    'strict decoding error: unknown field "spec.foo", unknown field "bar"'
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from sandbox.kube import openapi
from sandbox.kube.errors import ApiError, Cause

Directive = Literal["Ignore", "Warn", "Strict"]
DIRECTIVES: tuple[Directive, ...] = ("Ignore", "Strict", "Warn")
Schema = Mapping[str, Any]
_REF = "#/$defs/"


def directive(value: str | None, options_kind: str) -> Directive:
    """The query's directive; empty is `Warn`; anything else upstream's 422.

    `options_kind` is CreateOptions, UpdateOptions or PatchOptions, as upstream names
    the options that failed (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation).
    """
    if not value:
        return "Warn"
    for known in DIRECTIVES:
        if value == known:
            return known
    supported = ", ".join(f'"{d}"' for d in DIRECTIVES)
    detail = f'fieldValidation: Unsupported value: "{value}": supported values: {supported}'
    raise ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: {detail}',
        kind=options_kind,
        group="meta.k8s.io",
        causes=[
            Cause(
                "FieldValueNotSupported",
                detail.removeprefix("fieldValidation: "),
                "fieldValidation",
            )
        ],
    )


def unknown_fields(value: Any, schema: Schema, defs: Mapping[str, Schema]) -> list[str]:
    """Paths of the fields in `value` that its schema does not declare, in document order.

    >>> defs = {"a.B": {"properties": {"x": {"type": "string"}}}}
    >>> unknown_fields({"spec": [{"x": "1", "y": 2}], "z": 1},
    ...     {"properties": {"spec": {"items": {"$ref": "#/$defs/a.B"}}}}, defs)
    ['spec[0].y', 'z']
    """
    return list(_walk(value, schema, defs, ""))


def unknown_fields_of_kind(
    release: str, group: str, version: str, kind: str, obj: Any
) -> list[str]:
    """`unknown_fields` against the kind's bundled schema; none for a kind not bundled
    (custom resources: their structural schema prunes instead, `sandbox.kube.structural`)."""
    name = openapi.kind_definition(release, group, version, kind)
    if name is None:
        return []
    defs = openapi.definitions(release)
    return unknown_fields(obj, defs[name], defs)


def _walk(value: Any, schema: Schema, defs: Mapping[str, Schema], path: str) -> Iterator[str]:
    schema = _resolve(schema, defs)
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-embedded-resource"
    ):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(properties, dict) and key in properties:
                yield from _walk(item, properties[key], defs, where)
            elif isinstance(extra, dict):
                yield from _walk(item, extra, defs, where)
            elif isinstance(properties, dict):
                yield where
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _walk(item, schema["items"], defs, f"{path}[{index}]")


def _resolve(schema: Schema, defs: Mapping[str, Schema]) -> Schema:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 64:
        schema = defs.get(str(schema["$ref"]).removeprefix(_REF), {})
        seen += 1
    return schema


def strict_decoding_error(paths: Sequence[str]) -> str:
    """apimachinery runtime.strictDecodingError's message."""
    return "strict decoding error: " + ", ".join(f"unknown field {json.dumps(p)}" for p in paths)


def body_error(kind: str, version: str, paths: Sequence[str]) -> ApiError:
    """Create and update (PUT) with `Strict`: the decoder's error, as
    handlers/rest.go `transformDecodeError` words it (400 BadRequest)."""
    return ApiError(
        400,
        "BadRequest",
        f'{kind} in version "{version}" cannot be handled as a {kind}: '
        f"{strict_decoding_error(paths)}",
    )


def patch_error(patch_value: str, paths: Sequence[str]) -> ApiError:
    """PATCH with `Strict`: handlers/patch.go's `NewInvalid(GroupKind{}, "", patch: ...)`.

    `patch_value` is what upstream prints as the bad value: the patch map in Go's
    `%+v` for strategic-merge patches, the patched object's JSON for the others.
    """
    body = f"Invalid value: {json.dumps(patch_value)}: {strict_decoding_error(paths)}"
    return ApiError(
        422,
        "Invalid",
        f' "" is invalid: patch: {body}',
        causes=[Cause("FieldValueInvalid", body, "patch")],
    )


def warnings(paths: Sequence[str]) -> list[str]:
    """`Warn`: one warning per unknown field (handlers/rest.go addStrictDecodingWarnings)."""
    return [f"unknown field {json.dumps(p)}" for p in paths]


def warning_header(message: str) -> str:
    """A `Warning` header value as the API server writes it (code 299, agent `-`;
    k8s.io/apiserver pkg/endpoints/filters/warning.go, net/http's quoted-string)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def go_value(value: Any) -> str:
    """A decoded JSON value as Go's `fmt.Sprintf("%+v")` prints a map[string]interface{}.

    >>> go_value({"spec": {"b": [1.5, "x", None], "a": True, "n": 3}})
    'map[spec:map[a:true b:[1.5 x <nil>] n:3]]'
    """
    if isinstance(value, dict):
        items = " ".join(f"{key}:{go_value(value[key])}" for key in sorted(value))
        return f"map[{items}]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    return str(value)


def _go_float(number: float) -> str:
    """Go's %v of a float64 (strconv 'g', shortest): %e when the exponent is below -4
    or at least 6, else plain digits.

    >>> [_go_float(x) for x in (3.0, 8080.0, 0.5, 123456.0, 1e6, 1234567.0, 1e-05)]
    ['3', '8080', '0.5', '123456', '1e+06', '1.234567e+06', '1e-05']
    """
    if number == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # where the decimal point goes
    minus = "-" if sign else ""
    shown = point - 1
    if shown < -4 or shown >= 6:
        mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if shown < 0 else '+'}{abs(shown):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return minus + digits + "0" * (point - len(digits))
    return f"{minus}{digits[:point]}.{digits[point:]}"
