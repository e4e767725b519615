"""Protobuf request bodies of the review APIs and TokenRequest, read into their JSON form.

kubectl's typed clients (`auth can-i`, `auth whoami`, `create token`) send these
kinds as `application/vnd.kubernetes.protobuf`, which every real API server reads:
the `k8s\\x00` magic, then a runtime.Unknown (typeMeta 1, raw 2), whose raw bytes
are the kind's message. Field numbers are those of k8s.io/api's generated.proto
(authorization/v1, authentication/v1, meta/v1 ObjectMeta); only the fields these
requests carry are read.

>>> spec = _message(b"\\x0a\\x02ns\\x12\\x03get\\x2a\\x04pods", RESOURCE_ATTRIBUTES)
>>> spec
{'namespace': 'ns', 'verb': 'get', 'resource': 'pods'}
"""

from __future__ import annotations

from typing import Any

from sandbox.kube.errors import bad_request

MAGIC = b"k8s\x00"
# field number -> (JSON name, type); a type is "string", "int", "strings" or a nested schema
Schema = dict[int, tuple[str, Any]]
OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
}
RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
ACCESS_SPEC: Schema = {
    1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
}
SUBJECT_ACCESS_SPEC: Schema = {
    **ACCESS_SPEC,
    3: ("user", "string"),
    4: ("groups", "strings"),
    6: ("uid", "string"),
}
BOUND_OBJECT: Schema = {
    1: ("kind", "string"),
    2: ("apiVersion", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
}
KINDS: dict[str, Schema] = {
    "SelfSubjectAccessReview": {1: ("metadata", OBJECT_META), 2: ("spec", ACCESS_SPEC)},
    "LocalSubjectAccessReview": {1: ("metadata", OBJECT_META), 2: ("spec", SUBJECT_ACCESS_SPEC)},
    "SubjectAccessReview": {1: ("metadata", OBJECT_META), 2: ("spec", SUBJECT_ACCESS_SPEC)},
    "SelfSubjectRulesReview": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("namespace", "string")}),
    },
    "SelfSubjectReview": {1: ("metadata", OBJECT_META)},
    "TokenReview": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("token", "string"), 2: ("audiences", "strings")}),
    },
    "TokenRequest": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: ("audiences", "strings"),
                3: ("boundObjectRef", BOUND_OBJECT),
                4: ("expirationSeconds", "int"),
            },
        ),
    },
}
UNKNOWN: Schema = {1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")})}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded review or TokenRequest (400 for anything else)."""
    if not body.startswith(MAGIC):
        raise bad_request("the protobuf body lacks the k8s magic prefix")
    fields = _fields(body[len(MAGIC) :])
    envelope = _message(body[len(MAGIC) :], UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    schema = KINDS.get(str(type_meta.get("kind", "")))
    raw = next((value for number, value in fields if number == 2), None)
    if schema is None or not isinstance(raw, bytes):
        raise bad_request(f"the sandbox reads no protobuf body of kind {type_meta.get('kind')!r}")
    return {**type_meta, **_message(raw, schema)}


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "int" and isinstance(value, int):
            decoded[name] = value
        elif kind == "string" and isinstance(value, bytes):
            decoded[name] = value.decode()
        elif kind == "strings" and isinstance(value, bytes):
            decoded.setdefault(name, []).append(value.decode())
        elif isinstance(kind, dict) and isinstance(value, bytes):
            decoded[name] = _message(value, kind)
    return decoded


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint or bytes) pairs of one message; fixed-width fields skipped."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, position = _varint(data, position)
                fields.append((number, value))
            elif wire == 2:
                length, position = _varint(data, position)
                fields.append((number, data[position : position + length]))
                position += length
            elif wire in (1, 5):
                position += 8 if wire == 1 else 4
            else:
                raise ValueError(f"wire type {wire}")
    except (IndexError, ValueError) as error:
        raise bad_request(f"the protobuf body could not be decoded: {error}") from None
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
