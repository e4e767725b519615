"""`pods/portforward`: TCP to the pod's IP on loopback, over one of two WebSocket dialects.

- `SPDY/3.1+portforward.k8s.io` (kubectl >= 1.31, KUBECTL_PORT_FORWARD_WEBSOCKETS on
  by default): the messages carry a SPDY/3.1 connection. For every local connection
  kubectl opens an `error` stream then a `data` stream, with headers `port` and
  `requestid`; the server replies to both, connects to the pod, copies bytes on the
  data stream, and ends with FIN on both (an error message on the error stream if
  the connection failed). client-go tools/portforward/portforward.go.
- `v4.channel.k8s.io` (the Python client's `portforward`): ports come from the
  query; channel 2i carries port i's bytes, channel 2i+1 its errors; the first
  message on each is the port, 2 bytes little-endian. One connection per port,
  made at once; the socket closes when they all ended.
  pkg/kubelet/cri/streaming/portforward/websocket.go.

Every session is bounded (`PortForwardLimits`) and every connection it opened is
closed when it ends. Connections go only to the pod's IP (127.0.2.0/24).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.kube.streaming import spdy, upgraded, wsframes
from sandbox.kube.streaming.upgraded import BytePipe, WebSocketPipe

log = logging.getLogger(__name__)
_KINDS = {WSMsgType.BINARY: "binary", WSMsgType.TEXT: "text"}
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
SPDY_PROTOCOLS = ("portforward.k8s.io",)  # X-Stream-Protocol-Version of a plain upgrade
PROTOCOLS = (SPDY_TUNNEL, wsframes.V4)
CHUNK = 32 * 1024


@dataclass(frozen=True)
class PortForwardLimits:
    # The kubelet's --streaming-connection-idle-timeout (4 h), as a bound on the session.
    max_seconds: float = 4 * 3600.0
    connect_seconds: float = 5.0


def connect_failure(pod: str, port: int, error: OSError | TimeoutError) -> str:
    """The kubelet's message for a port nothing listens on (kubectl prints it)."""
    if isinstance(error, TimeoutError):
        why = "i/o timeout"
    elif error.errno:  # Go's words: "connection refused", lower case
        why = os.strerror(error.errno).lower()
    else:
        why = str(error)
    return (
        f"error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} "
        f"inside namespace of the pod: dial tcp4 127.0.0.1:{port}: connect: {why}"
    )


async def serve(
    request: web.Request,
    pod: str,
    ip: str,
    ports: tuple[int, ...],
    limits: PortForwardLimits,
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    try:
        async with asyncio.timeout(limits.max_seconds):
            if ws.ws_protocol == SPDY_TUNNEL:
                await SpdySession(WebSocketPipe(ws), pod, ip, limits).run()
            else:
                await _channel_session(ws, pod, ip, ports, limits)
    except TimeoutError:
        log.info("port-forward to %s ended after its limit of %.0fs", pod, limits.max_seconds)
    finally:
        await ws.close()
    return ws


async def serve_spdy(
    request: web.Request, pod: str, ip: str, protocol: str, limits: PortForwardLimits
) -> web.StreamResponse:
    """Port-forward over a connection upgraded to SPDY/3.1 (`portforward.k8s.io`):
    the same streams as the tunnelled dialect, on the TCP connection itself."""
    pipe = await upgraded.upgrade_connection(request, protocol)
    try:
        async with asyncio.timeout(limits.max_seconds):
            await SpdySession(pipe, pod, ip, limits).run()
    except TimeoutError:
        log.info("port-forward to %s ended after its limit of %.0fs", pod, limits.max_seconds)
    finally:
        pipe.close()
    return pipe.response


async def _connect(
    ip: str, port: int, limits: PortForwardLimits
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    async with asyncio.timeout(limits.connect_seconds):
        return await asyncio.open_connection(ip, port, limit=CHUNK)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


# ---- v4.channel.k8s.io (the Python client) ----


async def _channel_session(
    ws: web.WebSocketResponse,
    pod: str,
    ip: str,
    ports: tuple[int, ...],
    limits: PortForwardLimits,
) -> None:
    for index, port in enumerate(ports):
        for channel in (2 * index, 2 * index + 1):
            await ws.send_bytes(wsframes.encode(channel, wsframes.port_prefix(port)))
    writers: dict[int, asyncio.StreamWriter] = {}
    copies: list[asyncio.Task[None]] = []
    for index, port in enumerate(ports):
        try:
            reader, writer = await _connect(ip, port, limits)
        except (OSError, TimeoutError) as error:
            message = connect_failure(pod, port, error).encode()
            await ws.send_bytes(wsframes.encode(2 * index + 1, message))
            continue
        writers[index] = writer
        copies.append(asyncio.ensure_future(_to_channel(reader, 2 * index, ws)))
    client = asyncio.ensure_future(_from_channels(ws, writers))
    try:
        if copies:
            waits: set[asyncio.Future[Any]] = {client, asyncio.gather(*copies)}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.cancel()
        for task in copies:
            task.cancel()
        for writer in writers.values():
            _close(writer)


async def _to_channel(
    reader: asyncio.StreamReader, channel: int, ws: web.WebSocketResponse
) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            if ws.closed:
                return
            await ws.send_bytes(wsframes.encode(channel, chunk))


async def _from_channels(
    ws: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter]
) -> None:
    async for message in ws:
        data = wsframes.message_bytes(_KINDS.get(message.type, ""), message.data)
        if data is None:
            continue  # pings are answered by aiohttp
        frame = wsframes.decode(data, wsframes.V4)
        if not isinstance(frame, wsframes.Data) or frame.channel % 2:
            continue
        writer = writers.get(frame.channel // 2)
        if writer is not None and frame.data:
            with contextlib.suppress(ConnectionError):
                writer.write(frame.data)
                await writer.drain()


# ---- SPDY/3.1 tunnelled over the WebSocket (kubectl) ----


@dataclass
class _Pair:
    """One forwarded connection: kubectl's error and data streams for one requestid."""

    port: int
    error_stream: int | None = None
    data_stream: int | None = None
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # client bytes before the connect
    client_done: bool = False
    task: asyncio.Task[None] | None = None


class SpdySession:
    """One kubectl port-forward: SPDY frames from the socket in, replies and data out."""

    def __init__(self, pipe: BytePipe, pod: str, ip: str, limits: PortForwardLimits) -> None:
        self.pipe, self.pod, self.ip, self.limits = pipe, pod, ip, limits
        self.parser, self.writer = spdy.Parser(), spdy.Writer()
        self.pairs: dict[str, _Pair] = {}  # by requestid
        self.by_stream: dict[int, _Pair] = {}
        self.lock = asyncio.Lock()

    async def send(self, *frames: bytes) -> None:
        if self.pipe.closed:
            return
        async with self.lock:
            with contextlib.suppress(ConnectionResetError):
                await self.pipe.write(b"".join(frames))

    async def run(self) -> None:
        try:
            while data := await self.pipe.read():
                try:
                    frames = self.parser.feed(data)
                except spdy.ProtocolError as error:
                    log.info("port-forward to %s: SPDY protocol error: %s", self.pod, error)
                    await self.send(spdy.goaway(0))
                    return
                for frame in frames:
                    if not await self.on_frame(frame):
                        return
        finally:
            for pair in self.pairs.values():
                if pair.task is not None:
                    pair.task.cancel()
                _close(pair.writer)

    async def on_frame(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False ends the session (GOAWAY)."""
        if isinstance(frame, spdy.SynStream):
            await self.on_syn_stream(frame)
        elif isinstance(frame, spdy.DataFrame):
            await self.on_data(frame)
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2:  # the client's ping (odd ids): echo it
                await self.send(spdy.ping(frame.ping_id))
        elif isinstance(frame, spdy.RstStream):
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data_stream:
                _close(pair.writer)
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    async def on_syn_stream(self, frame: spdy.SynStream) -> None:
        headers = {name: values[0] for name, values in frame.headers.items() if values}
        kind, request_id = headers.get("streamtype"), headers.get("requestid", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            await self.send(spdy.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        if kind not in ("error", "data"):
            await self.send(spdy.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
            return
        await self.send(self.writer.syn_reply(frame.stream_id))
        pair = self.pairs.setdefault(request_id, _Pair(port))
        self.by_stream[frame.stream_id] = pair
        if kind == "error":
            pair.error_stream = frame.stream_id
        else:
            pair.data_stream = frame.stream_id
            pair.client_done = frame.fin
        if pair.error_stream is not None and pair.data_stream is not None and pair.task is None:
            pair.task = asyncio.ensure_future(self.forward(pair))

    async def on_data(self, frame: spdy.DataFrame) -> None:
        pair = self.by_stream.get(frame.stream_id)
        if pair is None or frame.stream_id != pair.data_stream:
            return  # the error stream carries nothing from the client but its FIN
        if frame.data:
            if pair.writer is None:
                pair.pending.append(frame.data)
            else:
                with contextlib.suppress(ConnectionError):
                    pair.writer.write(frame.data)
                    await pair.writer.drain()
        if frame.fin:
            pair.client_done = True
            if pair.writer is not None and pair.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    pair.writer.write_eof()

    async def forward(self, pair: _Pair) -> None:
        assert pair.data_stream is not None and pair.error_stream is not None
        try:
            reader, writer = await _connect(self.ip, pair.port, self.limits)
        except (OSError, TimeoutError) as error:
            message = connect_failure(self.pod, pair.port, error).encode()
            await self.send(
                spdy.data_frame(pair.error_stream, message, fin=True),
                spdy.data_frame(pair.data_stream, b"", fin=True),
            )
            return
        pair.writer = writer
        for chunk in pair.pending:
            writer.write(chunk)
        pair.pending.clear()
        if pair.client_done and writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(CHUNK):
                await self.send(spdy.data_frame(pair.data_stream, chunk))
        _close(writer)
        await self.send(
            spdy.data_frame(pair.data_stream, b"", fin=True),
            spdy.data_frame(pair.error_stream, b"", fin=True),
        )
