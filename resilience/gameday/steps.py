"""One game-day step: `resilience chaos run EXPERIMENT` as a subprocess.

Why a subprocess: chaoslib's `run_experiment` must own a main thread (it installs
signal handlers and turns SIGINT/SIGTERM into an interrupted run whose rollbacks
then run), and the game day's main thread is busy with progress and the load.
The child gets its own session, so a terminal's Ctrl-C reaches the game day only
and is forwarded once, deliberately; the child then rolls back and exits. A child
that does not finish its rollbacks in time is killed, and the game day runs
`resilience recover` from the recovery journal afterwards.

    >>> chaos_command(Path("pod-kill.yaml"), {"load_profile": "external"},
    ...               Path("j.json"), None, None)[3:]
    ['chaos', 'run', 'pod-kill.yaml', '--var', 'load_profile=external', '--journal', 'j.json']
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

ROLLBACK_GRACE = 180.0  # seconds a signalled child may take to roll back before SIGKILL


def chaos_command(
    experiment: Path,
    variables: Mapping[str, str],
    journal: Path,
    kube_context: str | None,
    allow_production: str | None,
    stop_alerts: Sequence[str] = (),
) -> list[str]:
    """The `resilience chaos run` command line of a step (pure); the step's stop conditions
    join the experiment's own (`--stop-on-alert`)."""
    command = [sys.executable, "-m", "resilience.cli", "chaos", "run", str(experiment)]
    for key, value in variables.items():
        command += ["--var", f"{key}={value}"]
    command += ["--journal", str(journal)]
    if kube_context:
        command += ["--kube-context", kube_context]
    if allow_production:
        command += ["--allow-production", allow_production]
    for alert in stop_alerts:
        command += ["--stop-on-alert", alert]
    return command


def recover_command(kube_context: str | None) -> list[str]:
    command = [sys.executable, "-m", "resilience.cli", "recover"]
    return command + (["--kube-context", kube_context] if kube_context else [])


class StepProcess:
    """A running step; `signal()` forwards, `poll()` says whether it ended, `kill()` ends it."""

    def __init__(self, command: list[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log.open("ab")
        self.started = time.time()
        self.signalled_at: float | None = None
        self.process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None:
            self._close()
        return code

    def wait(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        return self.poll()

    def signal(self, signum: int = signal.SIGINT) -> None:
        """Ask the experiment to stop: chaoslib interrupts the method and rolls back."""
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def overdue(self, grace: float = ROLLBACK_GRACE) -> bool:
        """Signalled more than `grace` seconds ago and still running."""
        return (
            self.signalled_at is not None
            and time.monotonic() - self.signalled_at > grace
            and self.process.poll() is None
        )

    def kill(self) -> int | None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        return self.poll()

    def _close(self) -> None:
        if not self._log.closed:
            self._log.close()


def run_recover(env: Mapping[str, str], kube_context: str | None, cwd: Path) -> list[str]:
    """`resilience recover`: undo whatever an interrupted step left (bounded, 5 min)."""
    try:
        done = subprocess.run(
            recover_command(kube_context),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return ["resilience recover did not finish within 300 s"]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        lines.append(f"resilience recover exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return lines
