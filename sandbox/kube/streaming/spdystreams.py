"""Exec and attach over SPDY/3.1 (`v4.channel.k8s.io`): one SPDY stream per channel.

What the kubelet's streaming server does (k8s.io/kubelet pkg/cri/streaming/
remotecommand/httpstream.go `createHTTPStreamStreams`, `v4ProtocolHandler`): the
client opens one stream per channel, each SYN_STREAM carrying a `streamType`
header (`error`, `stdin`, `stdout`, `stderr`, `resize`); the server replies to
each and starts the command only once all the expected ones are there (error,
plus each of stdin/stdout/stderr asked for, plus resize with a tty), or gives up
after the stream creation timeout. Output goes as DATA on its stream, ended by
FIN; stdin's FIN is its EOF; the resize stream carries JSON sizes. At the end the
v4 `Status` is written on the error stream (v4WriteStatusFunc), and the
connection closes. client-go (remotecommand/v4.go) reads stdout and stderr to
their ends and the error stream to its end before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.kube.streaming import spdy, upgraded, wiring, wsframes
from sandbox.kube.streaming.upgraded import BytePipe
from sandbox.kube.streaming.wiring import Outcome, Wiring

log = logging.getLogger(__name__)
PROTOCOLS = (wsframes.V4,)  # what a plain SPDY upgrade may negotiate (X-Stream-Protocol-Version)
STREAM_CREATION_SECONDS = 30.0  # remotecommandconsts.DefaultStreamCreationTimeout
_CHANNEL_OF = {
    "stdin": wsframes.STDIN,
    "stdout": wsframes.STDOUT,
    "stderr": wsframes.STDERR,
    "error": wsframes.ERROR,
    "resize": wsframes.RESIZE,
}


def expected_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> frozenset[str]:
    """The stream types the server waits for before it starts.

    >>> sorted(expected_streams(stdin=True, stdout=True, stderr=False, tty=True))
    ['error', 'resize', 'stdin', 'stdout']
    """
    wanted = {"error"}
    wanted |= {name for name, on in (("stdin", stdin), ("stdout", stdout)) if on}
    if stderr and not tty:
        wanted.add("stderr")
    if tty:
        wanted.add("resize")
    return frozenset(wanted)


@dataclass
class Session:
    """One exec or attach over SPDY: frames in, replies and output out."""

    pipe: BytePipe
    expected: frozenset[str]
    parser: spdy.Parser = field(default_factory=spdy.Parser)
    writer: spdy.Writer = field(default_factory=spdy.Writer)
    ids: dict[int, int] = field(default_factory=dict)  # channel -> stream id
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    target: Wiring | None = None
    early: list[tuple[int, bytes | None]] = field(default_factory=list)  # before `target`
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, *frames: bytes) -> None:
        async with self.lock:
            with contextlib.suppress(ConnectionResetError):
                await self.pipe.write(b"".join(frames))

    async def send_channel(self, channel: int, data: bytes) -> None:
        stream_id = self.ids.get(channel)
        if stream_id is not None:
            await self.send(spdy.data_frame(stream_id, data))

    async def read_client(self) -> None:
        """Frames until the client goes (EOF, GOAWAY, a protocol error)."""
        while data := await self.pipe.read():
            try:
                frames = self.parser.feed(data)
            except spdy.ProtocolError as error:
                log.info("remote command: SPDY protocol error: %s", error)
                return
            for frame in frames:
                if isinstance(frame, spdy.GoAway):
                    return
                await self.on_frame(frame)

    async def on_frame(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.SynStream):
            kind = (frame.headers.get("streamtype") or [""])[0]
            channel = _CHANNEL_OF.get(kind)
            if channel is None:
                await self.send(spdy.rst_stream(frame.stream_id, spdy.RST_PROTOCOL_ERROR))
                return
            self.ids[channel] = frame.stream_id
            await self.send(self.writer.syn_reply(frame.stream_id))
            if {k for k, c in _CHANNEL_OF.items() if c in self.ids} >= self.expected:
                self.ready.set()
            if frame.fin:
                await self.deliver(channel, None)
        elif isinstance(frame, spdy.DataFrame):
            channel = next((c for c, i in self.ids.items() if i == frame.stream_id), None)
            if channel is None:
                return
            if frame.data:
                await self.deliver(channel, frame.data)
            if frame.fin:
                await self.deliver(channel, None)
        elif isinstance(frame, spdy.RstStream):
            if self.ids.get(wsframes.STDIN) == frame.stream_id:
                await self.deliver(wsframes.STDIN, None)
        elif isinstance(frame, spdy.Ping) and frame.ping_id % 2:
            await self.send(spdy.ping(frame.ping_id))  # the client's ping: echo it

    async def deliver(self, channel: int, data: bytes | None) -> None:
        """Client data for stdin (None: its end) or resize, kept until the target exists."""
        if self.target is None:
            self.early.append((channel, data))
            return
        if channel == wsframes.STDIN:
            if data is None:
                self.target.close_stdin()
            else:
                await self.target.stdin(data)
        elif channel == wsframes.RESIZE and data is not None:
            self.target.resize_bytes(data)

    async def connect(self, target: Wiring) -> None:
        self.target = target
        early, self.early = self.early, []
        for channel, data in early:
            await self.deliver(channel, data)

    async def finish(self, outcome: Outcome) -> None:
        """FIN on the output streams, the Status on the error stream, then GOAWAY."""
        frames = [
            spdy.data_frame(self.ids[c], b"", fin=True)
            for c in (wsframes.STDOUT, wsframes.STDERR)
            if c in self.ids
        ]
        if wsframes.ERROR in self.ids:
            status = json.dumps(outcome.status()).encode()
            frames.append(spdy.data_frame(self.ids[wsframes.ERROR], status, fin=True))
        frames.append(spdy.goaway(max(self.ids.values(), default=0)))
        await self.send(*frames)


async def serve(
    pipe: BytePipe,
    expected: frozenset[str],
    start: Callable[[], Awaitable[Wiring | Outcome]],
    max_seconds: float,
    what: str,
) -> Wiring | None:
    """Wait for the client's streams, `start` the far side, stream until the end.

    Returns the Wiring it ran (the caller reaps what it started), None if nothing
    started (the client never opened its streams, or `start` gave an Outcome).
    """
    session = Session(pipe, expected)
    reader = asyncio.ensure_future(session.read_client())
    ready = asyncio.ensure_future(session.ready.wait())
    try:
        done, _ = await asyncio.wait(
            {reader, ready}, timeout=STREAM_CREATION_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            log.info("%s: timed out waiting for client to create streams", what)
            return None
        started = await start()
        if isinstance(started, Outcome):
            await session.finish(started)
            return None
        await session.connect(started)
        outcome = await wiring.run(started, session.send_channel, reader, max_seconds, what)
        await session.finish(outcome)
        return started
    finally:
        ready.cancel()
        reader.cancel()


async def serve_upgraded(
    request: web.Request,
    protocol: str,
    expected: frozenset[str],
    start: Callable[[], Awaitable[Wiring | Outcome]],
    max_seconds: float,
    what: str,
) -> web.StreamResponse:
    """Upgrade the request's connection to SPDY/3.1 and `serve` on it; whatever was
    started is stopped and waited for before the connection closes."""
    pipe = await upgraded.upgrade_connection(request, protocol)
    started: Wiring | None = None
    try:
        started = await serve(pipe, expected, start, max_seconds, what)
    finally:
        if started is not None:
            await wiring.reap(started)
        pipe.close()
    return pipe.response
