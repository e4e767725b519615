"""The nginx master of the sandbox's ingress: start, reload, stop, all bounded.

`NginxProcess(state_dir)` keeps its files in `<state_dir>/nginx/` (config, pid,
`logs/error.log`, `logs/access.log`, temp directories) and records the master in
`<state_dir>/pids/`. The master runs in the foreground (`daemon off`) in its own
session, so `sandbox down` can kill its whole process group.

Dying with the parent: nginx workers outlive a SIGKILLed master (they keep
serving, orphaned), so the master gets `PR_SET_PDEATHSIG=SIGTERM` instead of the
SIGKILL the other sandbox servers get: SIGTERM is nginx's fast shutdown, which
takes the workers down with it.

A reload is what `nginx -s reload` does, checked: the new text is tested with
`nginx -t` first (a bad config is logged and the old one stays in force), then
renamed into place and the master gets SIGHUP; `reload()` returns once the old
workers stopped accepting and new ones serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import time
from pathlib import Path

import psutil

from sandbox import processes
from sandbox.infra.nginx_config import INGRESS_POD_ADDRESS, NginxPaths, render_config
from sandbox.infra.supervisor import InfraError, log_tail, with_log
from sandbox.state import pids_dir

log = logging.getLogger(__name__)

NGINX_BINARY = Path("/usr/sbin/nginx")
START_TIMEOUT_SECONDS = 10.0
RELOAD_TIMEOUT_SECONDS = 10.0
CHECK_TIMEOUT_SECONDS = 10.0
GRACEFUL_STOP_SECONDS = 5.0
FORCED_STOP_SECONDS = 3.0
POLL_SECONDS = 0.005


class NginxError(InfraError):
    """nginx did not start, reload or stop as asked; the message ends with its error.log."""


def free_port(host: str) -> int:
    """A port nobody listens on at `host` now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class NginxProcess:
    """One nginx master serving `listen_host:listen_port` (a free port when 0), connecting
    to the pods from `upstream_bind` (the ingress controller's pod address; None: the
    kernel's choice, 127.0.0.1)."""

    def __init__(
        self,
        state_dir: Path,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        *,
        binary: Path = NGINX_BINARY,
        upstream_bind: str | None = INGRESS_POD_ADDRESS,
    ) -> None:
        for address in (listen_host, upstream_bind or listen_host):
            if not ipaddress.ip_address(address).is_loopback:
                raise ValueError(f"the sandbox ingress binds loopback only, not {address}")
        self.state_dir = state_dir
        self.paths = NginxPaths.under(state_dir)
        self.listen_host = listen_host
        self.port = listen_port or free_port(listen_host)
        self.binary = binary
        self.upstream_bind = upstream_bind
        # as root, workers would otherwise run as nobody, who cannot enter the state dir
        self.worker_user: str | None = "root" if os.geteuid() == 0 else None
        self.config_text: str | None = None  # what the running master serves
        self.reloads = 0
        self._process: asyncio.subprocess.Process | None = None
        self._pid_file: Path | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def empty_config(self) -> str:
        """The config with no Ingress: every path answers 404 JSON."""
        return render_config(
            [],
            [],
            [],
            self.listen_host,
            self.port,
            self.paths,
            worker_user=self.worker_user,
            upstream_bind=self.upstream_bind,
        )

    def worker_pids(self) -> set[int]:
        """Workers accepting connections (not the old ones finishing their requests)."""
        if not self.running or self.pid is None:
            return set()
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        found = set()
        for child in children:
            with contextlib.suppress(psutil.Error):
                title = " ".join(part for part in child.cmdline() if part)
                if "worker process" in title and "shutting down" not in title:
                    found.add(child.pid)
        return found

    async def start(self, config_text: str | None = None) -> None:
        """Write the config, start the master, return once a worker accepts connections."""
        async with self._lock:
            if self.running:
                raise NginxError(f"nginx is already running (pid {self.pid})")
            text = config_text if config_text is not None else self.empty_config()
            for directory in self.paths.directories():
                directory.mkdir(parents=True, exist_ok=True)
            self.paths.conf.write_text(text, encoding="utf-8")
            problem = await self._check(self.paths.conf)
            if problem is not None:
                raise NginxError(f"nginx rejected its initial config:\n{problem}")
            await self._spawn()
            try:
                await self._wait_serving(START_TIMEOUT_SECONDS)
            except NginxError:
                await self._stop_locked()
                raise
            self.config_text = text

    async def reload(self, config_text: str) -> bool:
        """Apply a new config; False (logged, old config still in force) when nginx rejects it.

        Raises `NginxError` when nginx is not running or the reload does not finish in time.
        """
        async with self._lock:
            if not self.running:
                raise NginxError("nginx is not running")
            candidate = self.paths.conf.with_name("nginx.conf.next")
            candidate.write_text(config_text, encoding="utf-8")
            problem = await self._check(candidate)
            if problem is not None:
                candidate.unlink(missing_ok=True)
                log.error("nginx rejected the new config, keeping the old one:\n%s", problem)
                return False
            candidate.replace(self.paths.conf)
            old_workers = self.worker_pids()
            log_offset = _size(self.paths.error_log)
            assert self._process is not None
            self._process.send_signal(signal.SIGHUP)
            await self._wait_reloaded(old_workers, log_offset)
            self.config_text = config_text
            self.reloads += 1
            return True

    async def stop(self) -> None:
        """SIGQUIT (finish requests), then SIGTERM, then SIGKILL the group; all bounded."""
        async with self._lock:
            await self._stop_locked()

    # ---- internals ----

    def _argv(self, conf: Path) -> list[str]:
        return [
            str(self.binary),
            "-p",
            f"{self.paths.prefix}/",
            "-c",
            str(conf),
            "-e",
            str(self.paths.error_log),
        ]

    async def _check(self, conf: Path) -> str | None:
        """`nginx -t` on a file: None when it passes, else what nginx said."""
        checker = await asyncio.create_subprocess_exec(
            *self._argv(conf),
            "-t",
            "-q",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.die_with_parent(os.getpid(), signal.SIGTERM),
        )
        record = processes.record(pids_dir(self.state_dir), checker.pid, f"nginx -t -c {conf}")
        try:
            output, _ = await asyncio.wait_for(checker.communicate(), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                checker.kill()
            await checker.wait()
            return f"nginx -t did not finish within {CHECK_TIMEOUT_SECONDS:g} s"
        finally:
            record.unlink(missing_ok=True)
        if checker.returncode == 0:
            return None
        return output.decode("utf-8", errors="replace").strip() or f"exit {checker.returncode}"

    async def _spawn(self) -> None:
        stderr_path = self.paths.logs / "stderr.log"
        with stderr_path.open("ab") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv(self.paths.conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=processes.die_with_parent(os.getpid(), signal.SIGTERM),
            )
        self._pid_file = processes.record(
            pids_dir(self.state_dir), self._process.pid, f"nginx ingress {self.url}"
        )

    async def _wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._fail_if_exited("nginx exited while starting")
            if self.worker_pids() and await _accepts(self.listen_host, self.port):
                return
            if time.monotonic() >= deadline:
                raise NginxError(self._with_log(f"nginx did not serve {self.url} in {timeout:g} s"))
            await asyncio.sleep(POLL_SECONDS)

    async def _wait_reloaded(self, old_workers: set[int], log_offset: int) -> None:
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        while True:
            self._fail_if_exited("nginx exited while reloading")
            workers = self.worker_pids()
            if workers and workers.isdisjoint(old_workers):
                return
            emergencies = [
                line for line in _read_from(self.paths.error_log, log_offset) if "[emerg]" in line
            ]
            if emergencies:
                raise NginxError("nginx could not apply the new config:\n" + "\n".join(emergencies))
            if time.monotonic() >= deadline:
                raise NginxError(
                    self._with_log(f"nginx did not reload within {RELOAD_TIMEOUT_SECONDS:g} s")
                )
            await asyncio.sleep(POLL_SECONDS)

    async def _stop_locked(self) -> None:
        process = self._process
        if process is None:
            return
        for signo, timeout in (
            (signal.SIGQUIT, GRACEFUL_STOP_SECONDS),
            (signal.SIGTERM, FORCED_STOP_SECONDS),
        ):
            if process.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signo)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout)
        if process.returncode is None:
            log.warning("nginx (pid %d) ignored SIGQUIT and SIGTERM; killing it", process.pid)
            processes.kill_group(process.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), FORCED_STOP_SECONDS)
        if process.returncode is None:
            raise NginxError(self._with_log(f"nginx (pid {process.pid}) would not stop"))
        processes.kill_group(process.pid)  # a worker the master lost track of
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
        self._process, self._pid_file, self.config_text = None, None, None

    def _fail_if_exited(self, what: str) -> None:
        if self._process is not None and self._process.returncode is not None:
            code = self._process.returncode
            stderr = log_tail(self.paths.logs / "stderr.log")
            message = self._with_log(f"{what} (exit code {code})")
            if stderr:
                message += f"\n--- nginx stderr:\n{stderr}"
            processes.kill_group(self._process.pid)  # workers a killed master left behind
            if self._pid_file is not None:
                self._pid_file.unlink(missing_ok=True)
            self._process, self._pid_file, self.config_text = None, None, None
            raise NginxError(message)

    def _with_log(self, message: str) -> str:
        return with_log(message, self.paths.error_log)


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []
