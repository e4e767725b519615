"""`pods/attach`: the streams of a running container's own process.

As containerd's CRI attach (pkg/cri/io/container_io.go `ContainerIO.Attach`) does:

- output is the process's stdout and stderr from the moment of attaching (what came
  before is in the log, `kubectl logs`); several clients may attach at once;
- stdin reaches the process only if its container spec says `stdin: true` (the
  runtime then keeps a pipe open for it, `sandbox.kube.kubelet.runtime`); otherwise
  what the client types is dropped;
- when the client ends its stdin: with `stdinOnce: true` (and no tty) the
  container's stdin is closed and the output goes on until the container stops;
  otherwise the attach session ends there and the container runs on;
- the session ends with a `Success` Status when the container's output ends (it
  stopped) or as above; the TTY is the container spec's, not the request's
  (pkg/kubelet/kubelet_pods.go `GetAttach`). Containers run on pipes in the
  sandbox, so a `tty: true` container has no terminal to resize.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sandbox.kube.streaming import spdystreams, wiring, wsframes
from sandbox.kube.streaming.options import AttachOptions
from sandbox.kube.streaming.targets import Attachable
from sandbox.kube.streaming.wiring import Outcome, Wiring

KubeObject = dict[str, Any]
_CHANNELS = {"stdout": wsframes.STDOUT, "stderr": wsframes.STDERR}
PROTOCOLS = (wsframes.V5, wsframes.V4)


def wanted_streams(options: AttachOptions, spec: KubeObject) -> tuple[str, ...]:
    """The output streams the client gets; with the container's tty, stdout only.

    >>> wanted_streams(AttachOptions(stdout=True, stderr=True), {"tty": True})
    ('stdout',)
    """
    tty = bool(spec.get("tty"))
    wanted = []
    if options.stdout:
        wanted.append("stdout")
    if options.stderr and not tty:
        wanted.append("stderr")
    return tuple(wanted)


def ends_session_on_stdin_close(spec: KubeObject) -> bool:
    """True unless `stdinOnce` (without tty) hands the close on to the container."""
    return not (spec.get("stdinOnce") and not spec.get("tty"))


def wire(options: AttachOptions, spec: KubeObject, container: Attachable) -> Wiring:
    loop = asyncio.get_running_loop()
    streams = wanted_streams(options, spec)
    readers = {name: asyncio.StreamReader() for name in streams}
    ended: asyncio.Future[Outcome] = loop.create_future()
    open_streams = set(streams) or {"stdout"}  # stdin alone still ends with the container

    def finish() -> None:
        if not ended.done():
            ended.set_result(Outcome(0))
        for reader in readers.values():
            if not reader.at_eof():
                reader.feed_eof()

    def on_output(stream: str, data: bytes | None) -> None:
        reader = readers.get(stream)
        if data is None:
            if reader is not None:
                reader.feed_eof()
            open_streams.discard(stream)
            if not open_streams:
                finish()
        elif reader is not None:
            reader.feed_data(data)

    detach = container.listen(on_output)
    ended.add_done_callback(lambda _: detach())
    takes_stdin = options.stdin and bool(spec.get("stdin"))

    async def write(data: bytes) -> None:
        stdin = container.stdin
        if takes_stdin and stdin is not None:
            stdin.write(data)
            await stdin.drain()

    def close_stdin() -> None:
        if not takes_stdin:
            return
        if ends_session_on_stdin_close(spec):
            finish()
        else:
            container.close_stdin()

    outputs = tuple((readers[name], _CHANNELS[name]) for name in streams)
    return Wiring(outputs, ended, finish, write, close_stdin)


async def serve(
    request: web.Request,
    options: AttachOptions,
    spec: KubeObject,
    container: Attachable,
    max_seconds: float,
) -> web.WebSocketResponse:
    """Upgrade and stream until the container stops, the client leaves, or time is up."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    session = wire(options, spec, container)
    try:
        await wiring.serve_websocket(ws, session, max_seconds, "attach")
    finally:
        session.stop()
    return ws


async def serve_spdy(
    request: web.Request,
    options: AttachOptions,
    spec: KubeObject,
    container: Attachable,
    max_seconds: float,
    protocol: str,
) -> web.StreamResponse:
    """Attach over a connection upgraded to SPDY/3.1."""

    async def start() -> Wiring | Outcome:
        return wire(options, spec, container)

    expected = spdystreams.expected_streams(
        options.stdin, options.stdout, options.stderr, options.tty
    )
    return await spdystreams.serve_upgraded(
        request, protocol, expected, start, max_seconds, "attach"
    )
