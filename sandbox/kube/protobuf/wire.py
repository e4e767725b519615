"""The protobuf wire format: a message as (field number, wire type, value) triples.

https://protobuf.dev/programming-guides/encoding/: each field is a varint key
(number << 3 | wire type) and a value: a varint (type 0), 8 bytes (1), a
length-prefixed byte string (2) or 4 bytes (5). Fixed-width values are returned as
unsigned integers; the groups of wire types 3 and 4 are long deprecated and absent
from Kubernetes, so they are errors, as is any truncation.

>>> list(fields(bytes([0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69, 0x25, 1, 0, 0, 0])))
[(1, 0, 150), (2, 2, b'hi'), (4, 5, 1)]
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it (at most 10 bytes, as Go reads)."""
    value = shift = 0
    for index in range(position, min(position + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if position + 10 <= len(data):
        raise WireError("integer overflow")
    raise WireError("unexpected EOF")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("illegal tag 0")
        if wire_type == VARINT:
            value, position = varint(data, position)
            yield number, wire_type, value
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if position + width > len(data):
                raise WireError("unexpected EOF")
            yield number, wire_type, int.from_bytes(data[position : position + width], "little")
            position += width
        elif wire_type == LENGTH_DELIMITED:
            length, position = varint(data, position)
            if position + length > len(data):
                raise WireError("unexpected EOF")
            yield number, wire_type, data[position : position + length]
            position += length
        else:
            raise WireError(f"illegal wireType {wire_type}")


def packed_varints(data: bytes) -> list[int]:
    """The varints of a packed repeated field's payload."""
    values, position = [], 0
    while position < len(data):
        value, position = varint(data, position)
        values.append(value)
    return values
