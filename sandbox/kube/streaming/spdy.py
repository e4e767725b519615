"""SPDY/3.1 framing, the part kubectl's port-forward uses (pure, no I/O).

kubectl >= 1.31 port-forwards over a WebSocket whose subprotocol is
`SPDY/3.1+portforward.k8s.io`: the binary messages carry a SPDY/3.1 connection
byte stream (client-go tools/portforward/tunneling_dialer.go,
tunneling_connection.go), which the real API server hands to the kubelet. So the
sandbox has to speak enough SPDY: SYN_STREAM in, SYN_REPLY out, DATA both ways
with FIN, RST_STREAM, PING echoed, GOAWAY; SETTINGS and WINDOW_UPDATE are read
and ignored (moby/spdystream, the client's library, sends none that matter and
enforces no flow-control window). Header blocks are zlib streams, one per
direction for the connection's life, primed with the SPDY/3 dictionary
(draft-mbelshe-httpbis-spdy-00 §2.6.10.1) and flushed with Z_SYNC_FLUSH.

    >>> Parser().feed(data_frame(1, b"hi", fin=True))
    [DataFrame(stream_id=1, fin=True, data=b'hi')]
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
MAX_FRAME = 16 * 1024 * 1024


def _prefixed(*words: str) -> bytes:
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)


# The SPDY/3 header-compression dictionary: length-prefixed common header names and
# values, then a run of common status lines, dates and media types (1423 bytes).
_WORDS = """
options head post put delete trace accept accept-charset accept-encoding accept-language
accept-ranges age allow authorization cache-control connection content-base content-encoding
content-language content-length content-location content-md5 content-range content-type date
etag expect expires from host if-match if-modified-since if-none-match if-range
if-unmodified-since last-modified location max-forwards pragma proxy-authenticate
proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade
user-agent vary via warning www-authenticate method get status 200_OK version HTTP/1.1 url
public set-cookie keep-alive origin
"""
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset="
    "iso-8859-1,utf-,*,enq=0."
)
# The SPDY/3 header-compression dictionary: length-prefixed common header names and
# values ("200 OK" has its space), then a run of status lines, dates and media types.
DICTIONARY = _prefixed(*(w.replace("_", " ") for w in _WORDS.split())) + _TAIL.encode()
assert len(DICTIONARY) == 1423, len(DICTIONARY)

Headers = dict[str, list[str]]


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    fin: bool
    data: bytes


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    fin: bool
    headers: Headers


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int


@dataclass(frozen=True)
class Other:
    """A control frame the server reads and ignores (SETTINGS, WINDOW_UPDATE, HEADERS...)."""

    frame_type: int


Frame = DataFrame | SynStream | RstStream | Ping | GoAway | Other


class ProtocolError(ValueError):
    """The peer sent something that is not SPDY/3: the connection ends."""


@dataclass
class Parser:
    """Bytes in (any chunking), frames out; one per connection (its zlib context)."""

    _buffer: bytearray = field(default_factory=bytearray)
    _inflate: zlib._Decompress = field(default_factory=lambda: zlib.decompressobj(zdict=DICTIONARY))

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self._buffer) < 8 + length:
                break
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            stream_id = int.from_bytes(head[:4], "big") & 0x7FFFFFFF
            return DataFrame(stream_id, bool(flags & FLAG_FIN), body)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}")
        frame_type = int.from_bytes(head[2:4], "big")
        if frame_type == SYN_STREAM:
            if len(body) < 10:
                raise ProtocolError("short SYN_STREAM")
            stream_id = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
            return SynStream(stream_id, bool(flags & FLAG_FIN), self._headers(body[10:]))
        if frame_type in (HEADERS, SYN_REPLY):
            self._headers(body[4:])  # keeps the zlib context in step
            return Other(frame_type)
        if frame_type == RST_STREAM and len(body) >= 8:
            stream_id, status = struct.unpack(">II", body[:8])
            return RstStream(stream_id & 0x7FFFFFFF, status)
        if frame_type == PING and len(body) >= 4:
            return Ping(int.from_bytes(body[:4], "big"))
        if frame_type == GOAWAY and len(body) >= 4:
            return GoAway(int.from_bytes(body[:4], "big") & 0x7FFFFFFF)
        return Other(frame_type)

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as error:
            raise ProtocolError(f"header block: {error}") from None
        return decode_header_block(raw)


def decode_header_block(raw: bytes) -> Headers:
    """`count, (len name, len value)*`, all 32-bit big-endian; values NUL-separated."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers[name.lower()] = value.split("\0")
    except (struct.error, UnicodeDecodeError) as error:
        raise ProtocolError(f"header block: {error}") from None
    return headers


def encode_header_block(headers: Headers) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        key, value = name.lower().encode(), "\0".join(values).encode()
        out += [struct.pack(">I", len(key)), key, struct.pack(">I", len(value)), value]
    return b"".join(out)


@dataclass
class Writer:
    """Frames out; one per connection (its zlib context)."""

    _deflate: zlib._Compress = field(
        default_factory=lambda: zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
    )

    def _compressed(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: Headers | None = None, fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id & 0x7FFFFFFF) + self._compressed(headers or {})
        return control_frame(SYN_REPLY, FLAG_FIN if fin else 0, body)


def control_frame(frame_type: int, flags: int, body: bytes) -> bytes:
    head = struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(body))
    return head + body


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def rst_stream(stream_id: int, status: int) -> bytes:
    return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, status))


def ping(ping_id: int) -> bytes:
    return control_frame(PING, 0, struct.pack(">I", ping_id))


def goaway(last_stream_id: int) -> bytes:
    return control_frame(GOAWAY, 0, struct.pack(">II", last_stream_id & 0x7FFFFFFF, 0))
