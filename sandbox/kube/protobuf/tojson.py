"""A protobuf message, decoded by its parsed schema, in the JSON form Go would print.

Upstream decodes the bytes into the Go struct (gogo's generated Unmarshal) and the
API server prints that struct as JSON. This module does both steps at once:

- a scalar present on the wire is printed, except a zero in a non-pointer
  `omitempty` field (gogo writes every non-pointer field; Go's JSON leaves such zeros
  out); a zero in a pointer field is a value and is printed;
- a message present on the wire is printed, `{}` when empty (Go's JSON never omits a
  struct), its fields merged into the parent when the Go field is `inline`;
- repeated fields and maps are printed when they have entries;
- `bytes` print as base64, as Go's JSON prints `[]byte`;
- the messages with their own JSON form print it: metav1.Time and MicroTime
  (time_proto.go, micro_time_proto.go: RFC 3339, `null` when zero; Time keeps whole
  seconds), Duration (a Go duration string), FieldsV1 and runtime.RawExtension (their
  raw JSON), resource.Quantity (its string), intstr.IntOrString (an int or a string),
  and named slice types such as Verbs (their items).

Repeated values of a non-repeated field follow proto semantics, as gogo does: the
last scalar wins and message chunks merge. Unknown field numbers are skipped; a field
with the wrong wire type is an error, as in gogo's Unmarshal.

>>> from sandbox.kube.protobuf.schema import vendored
>>> to_json(vendored(), "k8s.io.api.apps.v1.DeploymentSpec", bytes([0x08, 0x00, 0x28, 0x00]))
{'replicas': 0}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.kube.goduration import format_go_duration
from sandbox.kube.protobuf import wire
from sandbox.kube.protobuf.protofile import SCALARS, Field, Message
from sandbox.kube.protobuf.schema import Schema
from sandbox.kube.protobuf.wire import LENGTH_DELIMITED, VARINT, WireError

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
DURATION = f"{META}.Duration"
FIELDS_V1 = f"{META}.FieldsV1"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GO_ZERO_TIME_SECONDS = -62135596800  # time.Time{}.Unix(): 0001-01-01T00:00:00Z


def to_json(schema: Schema, name: str, data: bytes) -> Any:
    """The JSON form of message `name` encoded in `data` (`WireError` if it is not one)."""
    message = schema.messages[name]
    values = {
        number: _message_values(schema, message.fields[number], value)
        for number, value in collect(message, data).items()
    }
    by_name = {message.fields[number].name: value for number, value in values.items()}
    special = SPECIAL_FORMS.get(name)
    if special is not None:
        return special(by_name)
    if name in schema.lists:
        return next(iter(by_name.values()), [])
    return _struct(schema, message, values)


def collect(message: Message, data: bytes) -> dict[int, Any]:
    """Field number -> Python value: scalars decoded, messages as undecoded bytes
    (a list of them when repeated), maps as dicts of (scalar or bytes) values."""
    values: dict[int, Any] = {}
    for number, wire_type, raw in wire.fields(data):
        field = message.fields.get(number)
        if field is None:
            continue
        if field.label == "map":
            key, value = _map_entry(field, _bytes(field, wire_type, raw))
            values.setdefault(number, {})[key] = value
        elif field.type in SCALARS:
            decoded = _scalars(field, wire_type, raw)
            if field.label == "repeated":
                values.setdefault(number, []).extend(decoded)
            else:
                values[number] = decoded[-1]
        elif field.label == "repeated":
            values.setdefault(number, []).append(_bytes(field, wire_type, raw))
        else:  # concatenated message encodings merge, as proto.Merge would
            values[number] = values.get(number, b"") + _bytes(field, wire_type, raw)
    return values


def _message_values(schema: Schema, field: Field, value: Any) -> Any:
    if field.type in SCALARS:
        return value
    if field.label == "map":
        return {key: to_json(schema, field.type, item) for key, item in value.items()}
    if field.label == "repeated":
        return [to_json(schema, field.type, item) for item in value]
    return to_json(schema, field.type, value)


def _struct(schema: Schema, message: Message, values: dict[int, Any]) -> dict[str, Any]:
    struct = schema.structs.get(message.full_name)
    out: dict[str, Any] = {}
    for number in sorted(values):
        field, value = message.fields[number], values[number]
        go = struct.fields.get(number) if struct is not None else None
        if field.label != "optional":
            if value:
                out[go.json_name if go else field.name] = _printable(value)
        elif go is not None and go.inline and isinstance(value, dict):
            out.update(value)
        elif (
            field.type in SCALARS
            and go is not None
            and go.omitempty
            and not go.pointer
            and value in ("", 0, b"")
        ):
            continue
        else:
            out[go.json_name if go else field.name] = _printable(value)
    return out


def _printable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    return value


def _bytes(field: Field, wire_type: int, raw: int | bytes) -> bytes:
    if wire_type != LENGTH_DELIMITED or not isinstance(raw, bytes):
        raise WireError(f"proto: wrong wireType = {wire_type} for field {field.name}")
    return raw


def _scalars(field: Field, wire_type: int, raw: int | bytes) -> list[Any]:
    if field.type in ("string", "bytes"):
        data = _bytes(field, wire_type, raw)
        return [data.decode("utf-8", errors="replace") if field.type == "string" else data]
    if wire_type == LENGTH_DELIMITED and field.label == "repeated" and isinstance(raw, bytes):
        numbers = wire.packed_varints(raw)
    elif wire_type == VARINT and isinstance(raw, int):
        numbers = [raw]
    else:
        raise WireError(f"proto: wrong wireType = {wire_type} for field {field.name}")
    return [_scalar(field.type, number) for number in numbers]


def _scalar(type_name: str, number: int) -> int | bool:
    if type_name == "bool":
        return number != 0
    bits = 32 if type_name == "int32" else 64  # Go truncates a varint to the field's width
    number &= (1 << bits) - 1
    return number - (1 << bits) if number >> (bits - 1) else number


def _map_entry(field: Field, data: bytes) -> tuple[Any, Any]:
    """A map entry is a message {key = 1; value = 2}; absent parts are their zero values."""
    key_field = Field("key", 1, "optional", field.key_type or "string")
    value_field = Field("value", 2, "optional", field.type)
    entry = collect(Message("", {1: key_field, 2: value_field}), data)
    return entry.get(1, _zero(key_field.type)), entry.get(2, _zero(field.type))


def _zero(type_name: str) -> Any:
    return {"string": "", "bytes": b"", "bool": False, "int32": 0, "int64": 0}.get(type_name, b"")


# ---- the messages with a JSON form of their own ----


def _time(values: dict[str, Any]) -> str | None:
    """metav1.Time: `null` when zero; whole seconds (Unmarshal drops nanos) in UTC."""
    if not values or values.get("seconds", 0) == GO_ZERO_TIME_SECONDS:
        return None
    return _moment(values.get("seconds", 0), 0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(values: dict[str, Any]) -> str | None:
    """metav1.MicroTime: RFC 3339 with microseconds (RFC3339Micro), `null` when zero."""
    seconds, nanos = values.get("seconds", 0), values.get("nanos", 0)
    if not values or (seconds, nanos) == (GO_ZERO_TIME_SECONDS, 0):
        return None
    return _moment(seconds, nanos).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(seconds: int, nanos: int) -> datetime:
    try:
        return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise WireError(f"time out of range: {seconds}s") from None


def _raw_json(values: dict[str, Any]) -> Any:
    """RawExtension and FieldsV1 print their raw bytes, which must then be JSON."""
    raw = next(iter(values.values()), None)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise WireError(f"raw bytes are not JSON: {error}") from None


def _int_or_string(values: dict[str, Any]) -> int | str:
    """intstr.IntOrString: Type 1 (String) prints strVal, Type 0 (Int) intVal."""
    value = values.get("strVal", "") if values.get("type") == 1 else values.get("intVal", 0)
    return str(value) if isinstance(value, str) else int(value)


SPECIAL_FORMS: dict[str, Callable[[dict[str, Any]], Any]] = {
    TIME: _time,
    MICRO_TIME: _micro_time,
    DURATION: lambda values: format_go_duration(values.get("duration", 0)),
    FIELDS_V1: _raw_json,
    RAW_EXTENSION: _raw_json,
    QUANTITY: lambda values: values.get("string", "0"),
    INT_OR_STRING: _int_or_string,
}
