"""Containers as local processes: start, log, stop (the sandbox's container runtime).

Each container is a process in its own session (so its whole process group
can be killed), started with `PR_SET_PDEATHSIG=SIGKILL` so that it dies with
the sandbox, its stdout/stderr appended to the `podlogs` file as CRI records.
`<state>/pids/<pid>` records every live process so that a sandbox killed
without cleanup can be cleaned up later (`kill_recorded`).

Stopping follows the kubelet's `killContainer`: preStop (when grace > 0) within
the grace period, SIGTERM, then SIGKILL to the group when the grace period
(counted from the deletion) is over, but never sooner than 2 s after SIGTERM.
Virtual containers run nothing and stop at once with exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from sandbox import processes
from sandbox.kube.podlogs import format_record
from sandbox.mountns import MountStep

log = logging.getLogger(__name__)

MIN_GRACE_SECONDS = 2.0  # upstream minimumGracePeriodInSeconds
CHUNK = 64 * 1024
Now = Callable[[], datetime]


class Deadline:
    """When SIGKILL is due (loop time); a second DELETE may only bring it forward."""

    def __init__(self, when: float) -> None:
        self.when = when
        self.changed = asyncio.Event()

    def shorten(self, when: float) -> None:
        if when < self.when:
            self.when = when
            self.changed.set()

    def remaining(self) -> float:
        return max(0.0, self.when - asyncio.get_running_loop().time())


def kill_time(deadline: float, sigterm_at: float) -> float:
    """SIGKILL at the deadline, but at least MIN_GRACE_SECONDS after SIGTERM."""
    return max(deadline, sigterm_at + MIN_GRACE_SECONDS)


class ContainerHandle(Protocol):
    container_id: str
    started_at: datetime
    oom_killed: bool

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self, oom: bool = False) -> None: ...


@dataclass(eq=False)
class VirtualContainer:
    """No process (kwok-style): runs until told to stop, exits 0 on SIGTERM."""

    container_id: str
    started_at: datetime
    oom_killed: bool = False
    _exit: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def pid(self) -> int | None:
        return None

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def terminate(self) -> None:
        if not self._exit.done():
            self._exit.set_result(0)

    def kill(self, oom: bool = False) -> None:
        if not self._exit.done():
            self.oom_killed = oom
            self._exit.set_result(137)


OutputListener = Callable[[str, bytes | None], None]


class Attachments:
    """Who is attached to a container's output (`kubectl attach`), and its stdin.

    The runtime's stdio fan-out (containerd pkg/cri/io ContainerIO.Attach): every
    chunk the process writes goes to the log file and to each listener as
    `(stream, data)`; `(stream, None)` says that stream ended. Listeners see output
    from the moment they attach, never what came before (the log has that).
    """

    def __init__(self, stdin: asyncio.StreamWriter | None) -> None:
        self.stdin = stdin
        self._listeners: dict[int, OutputListener] = {}
        self._next = 0

    def listen(self, listener: OutputListener) -> Callable[[], None]:
        key, self._next = self._next, self._next + 1
        self._listeners[key] = listener
        return lambda: self._listeners.pop(key, None) and None

    def publish(self, stream: str, data: bytes | None) -> None:
        for listener in list(self._listeners.values()):
            listener(stream, data)

    def close_stdin(self) -> None:
        """StdinOnce: the first attach that ends its stdin closes the container's."""
        stdin, self.stdin = self.stdin, None
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()


class ProcessContainer:
    """A started process, its log pumps and its pid file."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        container_id: str,
        started_at: datetime,
        log_file: IO[str],
        pid_file: Path,
        now: Now,
    ) -> None:
        self.process, self.container_id, self.started_at = process, container_id, started_at
        self.oom_killed = False
        self._log_file, self._pid_file, self._now = log_file, pid_file, now
        self.attachments = Attachments(process.stdin)
        pumps = [
            asyncio.ensure_future(_pump(stream, name, log_file, now, self.attachments.publish))
            for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
            if stream is not None
        ]
        self._done = asyncio.ensure_future(self._wait_and_clean(pumps))

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return _exit_code(self.process.returncode) if self._done.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    def terminate(self) -> None:
        """SIGTERM to the container's PID 1, as the runtime sends it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)

    def kill(self, oom: bool = False) -> None:
        """SIGKILL to the whole process group (never after it was reaped: pgids get reused)."""
        if self._done.done():
            return
        self.oom_killed = self.oom_killed or (oom and self.process.returncode is None)
        processes.kill_group(self.process.pid)

    async def _wait_and_clean(self, pumps: Sequence[asyncio.Future[None]]) -> int:
        try:
            code = await self.process.wait()
            # PID 1 is gone: the rest of the container goes too
            processes.kill_group(self.process.pid)
            await asyncio.wait(pumps, timeout=2.0)
            return _exit_code(code)
        finally:
            for pump in pumps:
                pump.cancel()
            self.attachments.close_stdin()
            for name in ("stdout", "stderr"):
                self.attachments.publish(name, None)
            self._pid_file.unlink(missing_ok=True)
            self._log_file.close()


class ContainerStartError(OSError):
    """The process could not be set up (e.g. its resolv.conf not mounted); it never ran."""


def _exit_code(returncode: int | None) -> int:
    if returncode is None:
        return -1
    return 128 - returncode if returncode < 0 else returncode


async def start_process(
    argv: list[str],
    env: Mapping[str, str],
    log_path: Path,
    pids_dir: Path,
    container_id: str,
    now: Now,
    resolv_conf: Path | None = None,
    cgroup_procs: Path | None = None,
    mounts: Sequence[MountStep] = (),
    cwd: Path | None = None,
    stdin: bool = False,
) -> ProcessContainer:
    """Start one container process; raises OSError when it cannot be started.

    With `resolv_conf` the process (and what it forks) sees that file at
    /etc/resolv.conf, in a mount namespace of its own; with `mounts` (its volumes,
    `sandbox/kube/kubelet/mounts.py`) it sees those in the same namespace; if that
    cannot be set up the process does not run and `ContainerStartError` says why.
    With `cgroup_procs` it joins that cgroup (its pod's) before exec, and with `cwd`
    it starts there (after the mounts), under the same rule. With `stdin` (the
    container's `stdin: true`) its stdin is a pipe the runtime keeps for
    `kubectl attach -i`, else /dev/null.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pids_dir.mkdir(parents=True, exist_ok=True)
    setup = processes.ContainerSetup(os.getpid(), resolv_conf, cgroup_procs, mounts, cwd)
    with setup:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=setup,
                limit=CHUNK,
            )
        except subprocess.SubprocessError as error:
            raise ContainerStartError(setup.failure() or str(error)) from error
    pid_file = processes.record(pids_dir, process.pid, " ".join(argv))
    log_file = log_path.open("a", encoding="utf-8")
    log.debug("started %s as pid %d", argv, process.pid)
    return ProcessContainer(process, container_id, now(), log_file, pid_file, now)


async def _pump(
    stream: asyncio.StreamReader,
    name: str,
    out: IO[str],
    now: Now,
    publish: Callable[[str, bytes | None], None],
) -> None:
    """Copy a pipe to the log file, one record per line (long lines split at 64 KiB),
    and each chunk as it comes to whoever is attached."""
    pending = b""
    while chunk := await stream.read(CHUNK):
        publish(name, chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) >= CHUNK:
            lines, pending = [*lines, pending], b""
        _write(out, name, lines, now)
    if pending:
        _write(out, name, [pending], now)


def _write(out: IO[str], stream: str, lines: list[bytes], now: Now) -> None:
    if not lines or out.closed:
        return
    moment = now()
    out.write(
        "".join(format_record(stream, line.decode(errors="replace"), moment) for line in lines)
    )
    out.flush()


async def stop_gracefully(
    handle: ContainerHandle,
    deadline: Deadline,
    pre_stop: Callable[[float], Awaitable[object]] | None = None,
) -> int:
    """preStop within the grace period, SIGTERM, SIGKILL when it is over; the exit code."""
    if handle.returncode is None and pre_stop is not None and deadline.remaining() > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline.remaining()):
                await pre_stop(deadline.remaining())
    handle.terminate()
    loop = asyncio.get_running_loop()
    sigterm_at = loop.time()
    while handle.returncode is None:
        kill_at = kill_time(deadline.when, sigterm_at)
        deadline.changed.clear()
        if not await _exits_before(handle, deadline, kill_at - loop.time()):
            if deadline.changed.is_set():
                continue
            handle.kill()
            break
    return await handle.wait()


async def _exits_before(handle: ContainerHandle, deadline: Deadline, seconds: float) -> bool:
    exit_task = asyncio.ensure_future(handle.wait())
    changed = asyncio.ensure_future(deadline.changed.wait())
    try:
        await asyncio.wait(
            {exit_task, changed}, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        changed.cancel()
        exit_task.cancel()
    return handle.returncode is not None


def kill_recorded(pids_dir: Path) -> list[int]:
    """SIGKILL the groups of processes a previous sandbox left behind; their pids."""
    return processes.kill_recorded(pids_dir)
