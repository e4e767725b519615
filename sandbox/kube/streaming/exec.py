"""`pods/exec`: run a command beside a container's process, stream it (WebSocket or SPDY).

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
import logging
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox import processes
from sandbox.kube.streaming import spdystreams, tty, wiring, wsframes
from sandbox.kube.streaming.options import ExecOptions
from sandbox.kube.streaming.wiring import Outcome, Wiring

log = logging.getLogger(__name__)
PROTOCOLS = (wsframes.V5, wsframes.V4)


@dataclass(frozen=True)
class ExecLimits:
    # Upstream's kubelet closes idle streams after 4 h (--streaming-connection-idle-timeout);
    # a sandbox session is shorter: an hour is more than any game-day command needs.
    max_seconds: float = 3600.0


async def spawn(options: ExecOptions, pid: int) -> Wiring:
    """Start the command as the container's process `pid` would; OSError says why not."""
    env = processes.process_environment(pid)
    cwd = processes.process_cwd(pid)
    with processes.ExecSetup(os.getpid(), pid, cwd) as setup:
        try:
            if options.tty:
                return await _spawn_on_terminal(options, env, setup)
            return await _spawn_on_pipes(options, env, setup)
        except subprocess.SubprocessError as error:
            raise OSError(setup.failure() or str(error)) from error


async def _spawn_on_pipes(
    options: ExecOptions, env: dict[str, str], setup: processes.ContainerSetup
) -> Wiring:
    pipe, none = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        *options.command,
        env=env,
        stdin=pipe if options.stdin else none,
        stdout=pipe if options.stdout else none,
        stderr=pipe if options.stderr else none,
        start_new_session=True,
        preexec_fn=setup,
    )
    outputs = tuple(
        (stream, channel)
        for stream, channel in (
            (process.stdout, wsframes.STDOUT),
            (process.stderr, wsframes.STDERR),
        )
        if stream is not None
    )
    stdin = process.stdin

    async def write(data: bytes) -> None:
        if stdin is not None:
            stdin.write(data)
            await stdin.drain()

    def close() -> None:
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()

    return Wiring(outputs, _ended(process), _killer(process), write, close)


async def _spawn_on_terminal(
    options: ExecOptions, env: dict[str, str], setup: processes.ContainerSetup
) -> Wiring:
    """The command on a pty's slave (stdin, stdout and stderr alike), as runc runs a
    process with `terminal: true`; the sandbox keeps the master."""
    master, slave = tty.open_pty()
    try:
        process = await asyncio.create_subprocess_exec(
            *options.command,
            env={"TERM": "xterm", **env},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=tty.controlling_terminal(setup),
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    terminal = await tty.terminal(master)
    ended = _ended(process)
    ended.add_done_callback(lambda _: terminal.close())
    outputs = ((terminal.output, wsframes.STDOUT),) if options.stdout else ()
    return Wiring(
        outputs,
        ended,
        _killer(process),
        terminal.write if options.stdin else wiring.no_input,
        resize=terminal.resize,
    )


def _ended(process: asyncio.subprocess.Process) -> asyncio.Future[Outcome]:
    async def wait() -> Outcome:
        return Outcome(_exit_code(await process.wait()))

    return asyncio.ensure_future(wait())


def _killer(process: asyncio.subprocess.Process) -> Callable[[], None]:
    return lambda: processes.kill_group(process.pid)


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
    try:
        session = await spawn(options, pid)
    except OSError as error:
        await wiring.finish_websocket(ws, Outcome(None, start_failure(options.command, error)))
        return ws
    try:
        await wiring.serve_websocket(ws, session, limits.max_seconds, "exec")
    finally:
        await wiring.reap(session)
    return ws


def _exit_code(returncode: int) -> int:
    """A signal is reported as 128+N, as a shell and the container runtime do."""
    return 128 - returncode if returncode < 0 else returncode


async def serve_spdy(
    request: web.Request, options: ExecOptions, pid: int, limits: ExecLimits, protocol: str
) -> web.StreamResponse:
    """Exec over a connection upgraded to SPDY/3.1 (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`)."""

    async def start() -> Wiring | Outcome:
        try:
            return await spawn(options, pid)
        except OSError as error:
            return Outcome(None, start_failure(options.command, error))

    expected = spdystreams.expected_streams(
        options.stdin, options.stdout, options.stderr, options.tty
    )
    return await spdystreams.serve_upgraded(
        request, protocol, expected, start, limits.max_seconds, "exec"
    )
