"""Processes the sandbox started, recorded so that nothing outlives `sandbox down`.

A pid alone can be reused by an unrelated process; each record also keeps the
process's start time (field 22 of /proc/<pid>/stat), and only a process whose
pid and start time both match is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def record(directory: Path, pid: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(pid)).write_text(start_time(pid) or "")


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


def kill_recorded(directory: Path) -> int:
    """SIGKILL every recorded process still alive (whole process group); return how many."""
    killed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        if not entry.name.isdigit():
            continue
        pid, started = int(entry.name), entry.read_text().strip() or None
        if is_alive(pid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            signal_if_same(pid, started, signal.SIGKILL)
            killed += 1
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
