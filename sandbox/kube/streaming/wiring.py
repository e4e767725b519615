"""The remote-command streams of exec and attach, whatever the transport.

An exec (a command the kubelet starts) and an attach (the container's own process)
differ only in where the streams lead: `Wiring` holds the output readers by
channel, where stdin goes, where resizes go, and what to await for the end. The
transport loops (`serve_websocket` here, the SPDY one in `spdystreams`) copy
between the client and a `Wiring` and finish with the `Status` on the error
stream, as k8s.io/kubelet pkg/cri/streaming/remotecommand does for both verbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.kube.streaming import wsframes
from sandbox.kube.streaming.tty import ResizeDecoder, TerminalSize

_KINDS = {WSMsgType.BINARY: "binary", WSMsgType.TEXT: "text"}
CHUNK = 32 * 1024
DRAIN_SECONDS = 2.0  # output still in the pipes after the command exited


@dataclass(frozen=True)
class Outcome:
    """How the session ended: the command's exit code, or why there is none."""

    exit_code: int | None
    error: str = ""

    def status(self) -> dict[str, object]:
        if self.exit_code is None:
            return wsframes.error_status(self.error)
        return wsframes.exit_status(self.exit_code)


async def no_input(data: bytes) -> None:
    return None


def _nothing() -> None:
    return None


@dataclass
class Wiring:
    """Where a session's streams lead.

    `ended` completes with the Outcome when the far side is done (the command
    exited, the container stopped); `stop` is called when the client leaves or
    time is up, and must make `ended` complete soon.
    """

    outputs: tuple[tuple[asyncio.StreamReader, int], ...]
    ended: asyncio.Future[Outcome]
    stop: Callable[[], None]
    write_stdin: Callable[[bytes], Awaitable[None]] = no_input
    close_stdin: Callable[[], None] = _nothing
    resize: Callable[[TerminalSize], None] | None = None
    _resizes: ResizeDecoder = field(default_factory=ResizeDecoder)

    async def stdin(self, data: bytes) -> None:
        """Data for stdin; a command that stopped reading keeps its output served."""
        try:
            await self.write_stdin(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.write_stdin = no_input

    def resize_bytes(self, data: bytes) -> None:
        if self.resize is None:
            return
        for size in self._resizes.feed(data):
            self.resize(size)


async def run(
    wiring: Wiring,
    send: Callable[[int, bytes], Awaitable[None]],
    client: Awaitable[None],
    max_seconds: float,
    what: str,
) -> Outcome:
    """Pump outputs to `send` until the far side ended, the client left, or time is up."""
    pumps = [
        asyncio.ensure_future(_pump(reader, channel, send)) for reader, channel in wiring.outputs
    ]
    reader = asyncio.ensure_future(client)
    waiters: set[asyncio.Future[Any]] = {wiring.ended, reader}
    try:
        done, _ = await asyncio.wait(
            waiters, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if wiring.ended not in done:
            wiring.stop()
            if reader in done:
                return Outcome(None, "the client closed the stream")
            return Outcome(None, f"{what} ended after its limit of {max_seconds:.0f}s")
        if pumps:
            await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
        return wiring.ended.result()
    finally:
        for task in (*pumps, reader):
            task.cancel()


async def _pump(
    stream: asyncio.StreamReader, channel: int, send: Callable[[int, bytes], Awaitable[None]]
) -> None:
    while True:
        try:
            chunk = await stream.read(CHUNK)
        except OSError:  # a pty's master reads EIO once the command's side is closed
            return
        if not chunk:
            return
        await send(channel, chunk)


async def serve_websocket(
    ws: web.WebSocketResponse, wiring: Wiring, max_seconds: float, what: str
) -> None:
    """`v4`/`v5.channel.k8s.io`: one binary message per chunk, the channel its first byte."""
    protocol = ws.ws_protocol or wsframes.V4

    async def send(channel: int, data: bytes) -> None:
        if not ws.closed:
            await ws.send_bytes(wsframes.encode(channel, data))

    outcome = await run(wiring, send, _read_client(ws, protocol, wiring), max_seconds, what)
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await send(wsframes.ERROR, json.dumps(outcome.status()).encode())
            await ws.close()


async def finish_websocket(ws: web.WebSocketResponse, outcome: Outcome) -> None:
    """A session that could not start: only its Status, then the close."""
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_bytes(
                wsframes.encode(wsframes.ERROR, json.dumps(outcome.status()).encode())
            )
            await ws.close()


async def _read_client(ws: web.WebSocketResponse, protocol: str, wiring: Wiring) -> None:
    """Client frames until the socket closes: stdin data, stdin's close (v5), resize."""
    stdin_open = True
    async for message in ws:
        data = wsframes.message_bytes(_KINDS.get(message.type, ""), message.data)
        if data is None:
            continue  # pings are answered by aiohttp
        frame = wsframes.decode(data, protocol)
        if isinstance(frame, wsframes.CloseChannel) and frame.channel == wsframes.STDIN:
            wiring.close_stdin()
            stdin_open = False
        elif isinstance(frame, wsframes.Data) and frame.data:
            if frame.channel == wsframes.STDIN and stdin_open:
                await wiring.stdin(frame.data)
            elif frame.channel == wsframes.RESIZE:
                wiring.resize_bytes(frame.data)
    wiring.close_stdin()


async def reap(session: Wiring) -> None:
    """Nothing outlives the request: what the session started is stopped, and waited for."""
    session.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(session.ended), DRAIN_SECONDS)
