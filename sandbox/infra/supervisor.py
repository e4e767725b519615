"""Server processes of the sandbox's infrastructure: start, wait for, stop.

Every process is started in its own session (so that its whole process group
can be killed), with `PR_SET_PDEATHSIG=SIGKILL` (so that it dies with the
sandbox), its stdout and stderr appended to a log file, and its pid recorded
in `<state>/pids/` (so that `sandbox down` can kill it after a crash).

Waits are bounded: `wait_until` raises `NotReadyError` naming what did not come
up, with the last lines of the server's log. `ensure_free` fails fast when an
address is taken, which is what another running sandbox looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sandbox import processes

LOG_TAIL_LINES = 20
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True, order=True)
class Endpoint:
    """A TCP address: `Endpoint("127.0.3.11", 5432)` prints as `127.0.3.11:5432`."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class InfraError(Exception):
    """A sandbox server could not do what was asked; the message says why."""


class AddressInUseError(InfraError):
    """An address the sandbox needs is taken (another sandbox is running?)."""


class NotReadyError(InfraError):
    """A server did not reach the state waited for within the time allowed."""


class CommandError(InfraError):
    """A helper command (initdb, pg_basebackup, redis-cli ...) failed or timed out."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def with_log(message: str, log_path: Path) -> str:
    tail = log_tail(log_path)
    if not tail:
        return f"{message} (log {log_path} is empty)"
    return f"{message}\n--- last lines of {log_path}:\n{tail}"


class ServerProcess:
    """One started process; `stop()` is graceful first, then kills its whole group."""

    def __init__(
        self, name: str, process: asyncio.subprocess.Process, log_path: Path, pid_file: Path
    ) -> None:
        self.name, self.process, self.log_path, self._pid_file = name, process, log_path, pid_file

    @classmethod
    async def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        pids_dir: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ServerProcess:
        """Start `argv` (as `user` and its group, without root's groups, when given)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            try:
                process = await cls._spawn(argv, log, user=user, env=env, cwd=cwd)
            except OSError as error:
                raise InfraError(f"{name}: cannot start {argv[0]}: {error}") from error
        pid_file = processes.record(pids_dir, process.pid, f"{name}: {' '.join(argv)}")
        return cls(name, process, log_path, pid_file)

    @staticmethod
    async def _spawn(
        argv: Sequence[str],
        log: IO[bytes],
        *,
        user: str | None,
        env: Mapping[str, str] | None,
        cwd: Path | None,
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=processes.die_with_parent(os.getpid()),
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self, timeout: float) -> int:
        """Wait for the exit; on timeout kill the group and raise `CommandError`."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise CommandError(
                with_log(f"{self.name} did not finish within {timeout:g} s", self.log_path)
            ) from None

    async def stop(self, signo: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send `signo`, wait up to `timeout`, then SIGKILL the group; forget the record."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signo)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                await self.kill()
        self._reap_group()
        return self.process.returncode

    async def kill(self) -> None:
        if self.process.returncode is None:
            processes.kill_group(self.process.pid)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), KILL_WAIT_SECONDS)
        self._reap_group()

    def _reap_group(self) -> None:
        # The leader is gone; anything it forked (backends, AOF rewrites) goes too.
        processes.kill_group(self.process.pid)
        self._pid_file.unlink(missing_ok=True)


async def run_command(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    pids_dir: Path,
    timeout: float,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a helper command to completion; `CommandError` (with its output) unless it exits 0."""
    with log_path.open("ab") as log:
        log.write(f"--- {name}: {argv[0]}\n".encode())
    command = await ServerProcess.start(
        name, argv, log_path=log_path, pids_dir=pids_dir, user=user, env=env, cwd=cwd
    )
    try:
        code = await command.wait(timeout)
    finally:
        await command.kill()
    if code != 0:
        raise CommandError(with_log(f"{name} failed with exit code {code}", log_path))


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    what: str,
    timeout: float,
    server: ServerProcess | None = None,
    log_path: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `check` until it is true; `NotReadyError` on timeout or when `server` exits."""
    log_path = log_path or (server.log_path if server is not None else None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if server is not None and not server.running:
            message = f"{what}: {server.name} exited with code {server.returncode}"
            raise NotReadyError(with_log(message, log_path) if log_path else message)
        if await check():
            return
        if loop.time() >= deadline:
            message = f"{what}: not reached within {timeout:g} s"
            raise NotReadyError(with_log(message, log_path) if log_path else message)
        await asyncio.sleep(interval)


def ensure_free(endpoints: Iterable[Endpoint], what: str) -> None:
    """Raise `AddressInUseError` unless every endpoint can be bound (as the servers bind it)."""
    for endpoint in endpoints:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((endpoint.host, endpoint.port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise InfraError(f"{what}: cannot bind {endpoint}: {error}") from error
            raise AddressInUseError(
                f"{what}: {endpoint} is already in use; is another sandbox running?"
                " (`resilience sandbox down` stops it)"
            ) from error
        finally:
            probe.close()
