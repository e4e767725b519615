"""Identifying and stopping a process we started, without ever signalling a stranger.

A pid alone can be reused by an unrelated process; a record also keeps the
process's start time (field 22 of /proc/<pid>/stat, clock ticks since boot) and
the boot id (a restarted machine counts ticks from zero again), and only a process
whose pid and start time both match is ever signalled. Shared by the sandbox
(`sandbox/processes.py`, which may import the library) and the load runner and
`resilience recover` (which may not import the sandbox).
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
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int, signo: int = signal.SIGKILL) -> Callable[[], None]:
    """`preexec_fn` making the child get `signo` when `parent` dies, so nothing outlives it.

    Runs after any setuid (which would clear it). The kernel sends it when the
    *thread* that started the child exits: start such children from a thread that
    lives as long as they should (the main thread).
    """

    def preexec() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + signo)

    return preexec


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def boot_id() -> str:
    """This boot of this machine ('' where /proc does not say): a start time means
    something only within the boot it was read in."""
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


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


def kill_group(pgid: int, signo: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signo)


def wait_gone(pid: int, expected_start: str | None, timeout: float) -> bool:
    """Until `pid` (started at `expected_start`) is gone or a zombie, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, expected_start) or is_zombie(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid, expected_start)


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].startswith("Z")
