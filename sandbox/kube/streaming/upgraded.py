"""Byte pipes under SPDY: a WebSocket's binary messages, or a connection upgraded to SPDY/3.1.

kubectl speaks SPDY/3.1 two ways. Since 1.31 port-forward tunnels it in a WebSocket
(`SPDY/3.1+portforward.k8s.io`); with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` or
`KUBECTL_PORT_FORWARD_WEBSOCKETS=false` (and before 1.29/1.31) it asks for a plain
HTTP/1.1 upgrade, `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version` offers, and
speaks SPDY on the TCP connection once the server answered 101
(k8s.io/apimachinery pkg/util/httpstream/spdy, `responseUpgrader.UpgradeResponse`).

aiohttp upgrades only to WebSocket, so `upgrade_connection` answers the 101 itself
and takes the connection over the way aiohttp's own WebSocketResponse does: the
bytes that arrive go to a payload parser of ours instead of aiohttp's HTTP parser,
and writes go straight to the transport (with its flow control).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aiohttp import WSMsgType, web

SPDY_31 = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_HEADER = "X-Accepted-Stream-Protocol-Versions"
_PAUSE_AT, _RESUME_AT = 64, 8  # chunks queued before reading from the socket pauses


class BytePipe(Protocol):
    """A connection's bytes: `read` returns b"" once the peer is gone."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    @property
    def closed(self) -> bool: ...


class WebSocketPipe:
    """SPDY tunnelled in binary WebSocket messages (client-go tunneling_connection.go)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message.type == WSMsgType.BINARY and message.data:
                return bytes(message.data)  # client-go also sends empty ones: nothing
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return b""
            if message.type == WSMsgType.ERROR:
                return b""

    async def write(self, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_bytes(data)

    @property
    def closed(self) -> bool:
        return self.ws.closed


class _Feeder:
    """aiohttp's payload-parser interface, feeding a queue (`None` is the end)."""

    def __init__(self, pipe: UpgradedPipe) -> None:
        self._pipe = pipe

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._pipe.received(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._pipe.received(None)


class UpgradedPipe:
    """The raw TCP connection of a request answered `101 Switching Protocols`."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self._request = request
        self.response = response  # what the handler returns: already sent
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False

    def received(self, data: bytes | None) -> None:
        self._queue.put_nowait(data)
        transport = self._request.transport
        if transport is not None and self._queue.qsize() >= _PAUSE_AT:
            with contextlib.suppress(RuntimeError):
                transport.pause_reading()

    async def read(self) -> bytes:
        if self._ended:
            return b""
        data = await self._queue.get()
        transport = self._request.transport
        if transport is not None and self._queue.qsize() <= _RESUME_AT:
            with contextlib.suppress(RuntimeError):
                transport.resume_reading()
        if data is None:
            self._ended = True
            return b""
        return data

    async def write(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        protocol = self._request.protocol
        if getattr(protocol, "_paused", False):  # aiohttp's BaseProtocol flow control
            with contextlib.suppress(ConnectionResetError):
                await protocol._drain_helper()

    @property
    def closed(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()

    def close(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()


async def upgrade_connection(request: web.Request, protocol: str) -> UpgradedPipe:
    """Answer 101 (`Upgrade: SPDY/3.1`, the negotiated protocol) and take the socket."""
    response = web.StreamResponse(
        status=101,
        headers={"Connection": "Upgrade", "Upgrade": SPDY_31, PROTOCOL_HEADER: protocol},
    )
    response.force_close()
    await response.prepare(request)
    pipe = UpgradedPipe(request, response)
    # No await between the headers going out and this: nothing the client sends after
    # reading the 101 can reach aiohttp's HTTP parser.
    request.protocol.set_parser(_Feeder(pipe))  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    return pipe


def negotiate(offered_headers: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that the server speaks
    (httpstream.Handshake: the client's order; values may be comma-separated).

    >>> negotiate(["v4.channel.k8s.io, v3.channel.k8s.io"], ("v4.channel.k8s.io",))
    'v4.channel.k8s.io'
    """
    offered = [p.strip() for value in offered_headers for p in value.split(",") if p.strip()]
    for protocol in offered:
        if protocol in supported:
            return protocol
    return None
