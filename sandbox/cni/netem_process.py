"""Starting and stopping a netem worker from the sandbox's event loop, all bounded.

`await start_worker(queue, params, pids_dir=..., log_path=...)` starts
`python -m sandbox.cni.netem_worker`, records its pid in `pids_dir` (so `sandbox down`
kills a leftover), and returns once the worker says it has bound the queue, or raises
`NetemWorkerError` with its stderr. `await worker.stop()` sends SIGTERM (the worker
unbinds its queue), then SIGKILL if it lingers, and forgets the record.

Start it from the thread that lives as long as the worker should (the event loop's):
the kernel sends the PR_SET_PDEATHSIG signal when that thread exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import processes
from sandbox.cni.faults import NetemParams
from sandbox.cni.netem_worker import params_to_json

READY_TIMEOUT_SECONDS = 5.0
STOP_TIMEOUT_SECONDS = 3.0
KILL_TIMEOUT_SECONDS = 2.0


class NetemWorkerError(RuntimeError):
    """The worker did not become ready (its stderr, if any, ends the message)."""


@dataclass
class NetemWorker:
    """A running worker shaping NFQUEUE `queue` with `params`."""

    queue: int
    params: NetemParams
    process: asyncio.subprocess.Process
    pids_dir: Path
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL; returns the exit code (None if it would not die)."""
        if not self._stopped:
            self._stopped = True
            for signo, timeout in (
                (signal.SIGTERM, STOP_TIMEOUT_SECONDS),
                (signal.SIGKILL, KILL_TIMEOUT_SECONDS),
            ):
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signo)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), timeout)
            if self.process.returncode is not None:
                processes.forget(self.pids_dir, self.pid)
        return self.process.returncode


def worker_command(queue: int, params: NetemParams, seed: int | None = None) -> list[str]:
    """The worker's command line, tied to this process's life with `--parent`."""
    command = [
        sys.executable,
        "-m",
        "sandbox.cni.netem_worker",
        "--queue",
        str(queue),
        "--spec",
        params_to_json(params),
        "--parent",
        str(os.getpid()),
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    return command


async def start_worker(
    queue: int,
    params: NetemParams,
    *,
    pids_dir: Path,
    log_path: Path,
    seed: int | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> NetemWorker:
    """Start a worker for `queue` and wait (at most `ready_timeout` s) until it has bound it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *worker_command(queue, params, seed),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            preexec_fn=processes.die_with_parent(os.getpid(), signal.SIGTERM),
            env={**os.environ, "PYTHONPATH": _source_root()},
        )
    processes.record(pids_dir, process.pid, f"netem worker queue {queue}")
    worker = NetemWorker(queue, params, process, pids_dir, log_path)
    try:
        await _wait_ready(worker, ready_timeout)
    except BaseException:
        await worker.stop()
        raise
    return worker


async def _wait_ready(worker: NetemWorker, timeout: float) -> None:
    assert worker.process.stdout is not None
    try:
        line = await asyncio.wait_for(worker.process.stdout.readline(), timeout)
    except TimeoutError:
        raise NetemWorkerError(
            _with_log(f"netem worker for queue {worker.queue} not ready in {timeout:g} s", worker)
        ) from None
    try:
        ready = json.loads(line) if line else {}
    except json.JSONDecodeError:
        ready = {}
    if not isinstance(ready, dict) or ready.get("ready") is not True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.process.wait(), KILL_TIMEOUT_SECONDS)
        code = worker.process.returncode
        raise NetemWorkerError(
            _with_log(f"netem worker for queue {worker.queue} failed (exit code {code})", worker)
        )


def _with_log(message: str, worker: NetemWorker) -> str:
    try:
        tail = worker.log_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
    except OSError:
        tail = ""
    return f"{message}: {tail.splitlines()[-1]}" if tail else message


def _source_root() -> str:
    """The directory holding the `sandbox` package, for the child's PYTHONPATH."""
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root
