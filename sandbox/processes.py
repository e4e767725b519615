"""Processes the sandbox started, recorded so that nothing outlives `sandbox down`.

A pid alone can be reused by an unrelated process; each record also keeps the
process's start time (field 22 of /proc/<pid>/stat), and only a process whose
pid and start time both match is ever signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int, signo: int = signal.SIGKILL) -> Callable[[], None]:
    """`preexec_fn` making the child get `signo` when `parent` dies, so nothing outlives it.

    Runs after any setuid (which would clear it). nginx wants SIGTERM: its
    workers survive a SIGKILLed master, but a terminated master takes them along.
    """

    def preexec() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + signo)

    return preexec


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def record(directory: Path, pid: int, what: str = "") -> Path:
    """`<directory>/<pid>` holding `<start time> <what>`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(pid)
    path.write_text(f"{start_time(pid) or ''} {what}".rstrip() + "\n", encoding="utf-8")
    return path


def forget(directory: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / str(pid)).unlink()


def is_alive(pid: int, expected_start: str | None) -> bool:
    current = start_time(pid)
    if current is None:
        return False
    return expected_start is None or current == expected_start


def signal_if_same(pid: int, expected_start: str | None, signo: int) -> bool:
    if not is_alive(pid, expected_start):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signo)
        return True
    return False


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_recorded(directory: Path) -> list[int]:
    """SIGKILL every recorded process still alive (its whole group); return their pids."""
    killed: list[int] = []
    if not directory.is_dir():
        return killed
    for entry in directory.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = entry.read_text(encoding="utf-8").split()
        started = fields[0] if fields else None
        if started is not None and is_alive(pid, started):
            kill_group(pid)
            signal_if_same(pid, started, signal.SIGKILL)
            killed.append(pid)
        entry.unlink(missing_ok=True)
    return killed


def wait_gone(pid: int, expected_start: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, expected_start) or _is_zombie(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid, expected_start)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")
