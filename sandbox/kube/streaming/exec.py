"""`pods/exec` over WebSocket: run a command beside a container's process, stream it.

The command sees what the container's process sees: the environment the kubelet
gave it (read back from /proc/<pid>/environ), its working directory (entered
through /proc/<pid>/cwd, so even one a volume covers), and its mount namespace
(the pod's /etc/resolv.conf and volumes), as `nsenter --mount --target` would.
It runs in a session of its own, dies with the sandbox (PR_SET_PDEATHSIG), and
its whole process group is killed when the stream closes, when the client goes
away, or when `max_seconds` are over, so that nothing outlives the request. The
final `Status` goes on the error channel, then the WebSocket closes (client-go
reads the error channel to its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from sandbox import processes
from sandbox.kube.streaming import wsframes
from sandbox.kube.streaming.options import ExecOptions

log = logging.getLogger(__name__)
_KINDS = {WSMsgType.BINARY: "binary", WSMsgType.TEXT: "text"}
CHUNK = 32 * 1024
PROTOCOLS = (wsframes.V5, wsframes.V4)
DRAIN_SECONDS = 2.0  # output still in the pipes after the command exited


@dataclass(frozen=True)
class ExecLimits:
    # Upstream's kubelet closes idle streams after 4 h (--streaming-connection-idle-timeout);
    # a sandbox session is shorter: an hour is more than any game-day command needs.
    max_seconds: float = 3600.0


@dataclass(frozen=True)
class Outcome:
    """How the command ended: its exit code, or why there is none."""

    exit_code: int | None
    error: str = ""

    def status(self) -> dict[str, object]:
        if self.exit_code is None:
            return wsframes.error_status(self.error)
        return wsframes.exit_status(self.exit_code)


async def spawn(options: ExecOptions, pid: int) -> asyncio.subprocess.Process:
    """Start the command as the container's process `pid` would; OSError says why not."""
    env = processes.process_environment(pid)
    cwd = processes.process_cwd(pid)
    pipe, none = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    with processes.ExecSetup(os.getpid(), pid, cwd) as setup:
        try:
            return await asyncio.create_subprocess_exec(
                *options.command,
                env=env,
                stdin=pipe if options.stdin else none,
                stdout=pipe if options.stdout else none,
                # a tty has one output stream: stderr joins stdout
                stderr=(asyncio.subprocess.STDOUT if options.tty else pipe)
                if options.stderr or options.tty
                else none,
                start_new_session=True,
                preexec_fn=setup,
            )
        except subprocess.SubprocessError as error:
            raise OSError(setup.failure() or str(error)) from error


def start_failure(command: tuple[str, ...], error: OSError) -> str:
    """containerd's words for a command that could not start (kubectl prints them)."""
    why = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        why = "executable file not found in $PATH"
    return (
        f"error executing command in container: failed to exec in container: "
        f'OCI runtime exec failed: exec failed: unable to start container process: exec: "'
        f'{command[0]}": {why}: unknown'
    )


async def serve(
    request: web.Request, options: ExecOptions, pid: int, limits: ExecLimits
) -> web.WebSocketResponse:
    """Upgrade, run, stream; returns once the command is gone and the socket closed."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    protocol = ws.ws_protocol or wsframes.V4
    try:
        process = await spawn(options, pid)
    except OSError as error:
        await _finish(ws, Outcome(None, start_failure(options.command, error)))
        return ws
    try:
        outcome = await _stream(ws, protocol, process, limits)
    finally:
        processes.kill_group(process.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), DRAIN_SECONDS)
    await _finish(ws, outcome)
    return ws


async def _stream(
    ws: web.WebSocketResponse,
    protocol: str,
    process: asyncio.subprocess.Process,
    limits: ExecLimits,
) -> Outcome:
    pumps = [
        asyncio.ensure_future(_pump(stream, channel, ws))
        for stream, channel in (
            (process.stdout, wsframes.STDOUT),
            (process.stderr, wsframes.STDERR),
        )
        if stream is not None
    ]
    reader = asyncio.ensure_future(_read_client(ws, protocol, process))
    exited = asyncio.ensure_future(process.wait())
    try:
        done, _ = await asyncio.wait(
            {exited, reader}, timeout=limits.max_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        if exited not in done:
            # the client left (the socket closed) or time is up: the command goes
            processes.kill_group(process.pid)
            if reader in done:
                return Outcome(None, "the client closed the stream")
            return Outcome(None, f"exec ended after its limit of {limits.max_seconds:.0f}s")
        if pumps:
            await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
        return Outcome(_exit_code(exited.result()))
    finally:
        for task in (*pumps, reader, exited):
            task.cancel()


def _exit_code(returncode: int) -> int:
    """A signal is reported as 128+N, as a shell and the container runtime do."""
    return 128 - returncode if returncode < 0 else returncode


async def _pump(stream: asyncio.StreamReader, channel: int, ws: web.WebSocketResponse) -> None:
    while chunk := await stream.read(CHUNK):
        if ws.closed:
            return
        await ws.send_bytes(wsframes.encode(channel, chunk))


async def _read_client(
    ws: web.WebSocketResponse, protocol: str, process: asyncio.subprocess.Process
) -> None:
    """Client frames until the socket closes: stdin data, stdin's close (v5), resize."""
    stdin = process.stdin
    async for message in ws:
        data = wsframes.message_bytes(_KINDS.get(message.type, ""), message.data)
        if data is None:
            continue  # pings are answered by aiohttp
        frame = wsframes.decode(data, protocol)
        if isinstance(frame, wsframes.CloseChannel) and frame.channel == wsframes.STDIN:
            _close(stdin)
            stdin = None
        elif (
            isinstance(frame, wsframes.Data)
            and frame.channel == wsframes.STDIN
            and stdin is not None
            and frame.data
        ):
            try:
                stdin.write(frame.data)
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                stdin = None  # the command stopped reading; keep serving its output
    _close(stdin)


def _close(stdin: asyncio.StreamWriter | None) -> None:
    if stdin is not None:
        with contextlib.suppress(OSError):
            stdin.close()


async def _finish(ws: web.WebSocketResponse, outcome: Outcome) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_bytes(
                wsframes.encode(wsframes.ERROR, json.dumps(outcome.status()).encode())
            )
            await ws.close()
