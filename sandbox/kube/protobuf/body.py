"""A `application/vnd.kubernetes.protobuf` request body, read into the kind's JSON form.

The body is the magic `k8s\\x00` and a runtime.Unknown: typeMeta {apiVersion, kind}
and raw, the kind's message (contentEncoding and contentType are not read, as
upstream's protobuf Serializer.Decode reads neither; k8s.io/apimachinery
pkg/runtime/serializer/protobuf/protobuf.go). A missing kind or version is taken from
the endpoint's own (`copyKindDefaults`), so the defaults are parameters here.

>>> body = MAGIC + bytes.fromhex("0a0c0a02763112064f626a656374") + b"\\x12\\x00"
>>> try:
...     decode(body, "v1", "Pod")
... except DecodeError as error:
...     print(error)
no kind "Object" is registered for version "v1"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.kube.protobuf import tojson
from sandbox.kube.protobuf.schema import Schema, vendored
from sandbox.kube.protobuf.wire import WireError

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
TYPE_META = "k8s.io.apimachinery.pkg.runtime.TypeMeta"


@dataclass
class DecodeError(ValueError):
    """Why a body is not an object of a registered kind; `kind`/`version` once known."""

    reason: str
    kind: str = ""
    version: str = ""

    def __str__(self) -> str:
        return self.reason


def decode(
    body: bytes, default_api_version: str, default_kind: str, schema: Schema | None = None
) -> dict[str, Any]:
    """The object in `body` as JSON, with its apiVersion and kind (`DecodeError` if none)."""
    schema = schema or vendored()
    if not body.startswith(MAGIC):
        raise DecodeError(
            f"provided data does not appear to be a protobuf message, expected prefix {list(MAGIC)}"
        )
    if len(body) == len(MAGIC):
        raise DecodeError("empty body")
    try:
        envelope = _by_name(schema, UNKNOWN, body[len(MAGIC) :])
        type_meta = _by_name(schema, TYPE_META, envelope.get("typeMeta", b""))
    except WireError as error:
        raise DecodeError(str(error)) from None
    api_version = str(type_meta.get("apiVersion") or default_api_version)
    kind = str(type_meta.get("kind") or default_kind)
    message = schema.kind(api_version, kind)
    if message is None:
        raise DecodeError(
            f'no kind "{kind}" is registered for version "{api_version}"', kind, api_version
        )
    try:
        decoded = tojson.to_json(schema, message.full_name, envelope.get("raw", b""))
    except WireError as error:
        raise DecodeError(str(error), kind, api_version) from None
    return {"kind": kind, "apiVersion": api_version, **decoded}


def serves(api_version: str, kind: str) -> bool:
    """Whether the vendored schema has this kind (custom resources and metrics have none)."""
    return vendored().kind(api_version, kind) is not None


def _by_name(schema: Schema, name: str, data: bytes) -> dict[str, Any]:
    """A message's fields by proto name, undecoded (strings, bytes): for the envelope."""
    message = schema.messages[name]
    collected = tojson.collect(message, data)
    return {message.fields[number].name: value for number, value in collected.items()}
