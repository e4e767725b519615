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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

PR_SET_PDEATHSIG = 1
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_LIBC = ctypes.CDLL(None, use_errno=True)
_PRCTL = _LIBC.prctl  # looked up now: a preexec_fn should not allocate after fork


def die_with_parent(parent: int, signo: int = signal.SIGKILL) -> Callable[[], None]:
    """`preexec_fn` making the child get `signo` when `parent` dies, so nothing outlives it.

    Runs after any setuid (which would clear it). The kernel sends it when the
    *thread* that started the child exits: start such children from a thread that
    lives as long as they should (the main thread).
    """

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signo, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(128 + signo)

    return preexec


def can_die_with_us() -> bool:
    """Whether a child started now can be tied to our life with `die_with_parent`: only
    from the main thread, as the kernel signals the child when the starting thread
    exits (a worker thread of a pool may end long before the process)."""
    return threading.current_thread() is threading.main_thread()


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


@dataclass(frozen=True)
class StartedProcess:
    """A process group we started, as the recovery journal keeps it: enough to find it
    again after our own `kill -9` and to be sure it is still the one we started."""

    pid: int  # also its process group id: it was started in a session of its own
    start_time: str
    boot_id: str
    command: tuple[str, ...]
    owner_pid: int  # the process that started it (a chaos run, a game day, a suite)
    owner_start_time: str

    @classmethod
    def of(cls, pid: int, command: Sequence[str]) -> StartedProcess:
        """The record of `pid`, just started by this process."""
        owner = os.getpid()
        return cls(
            pid=pid,
            start_time=start_time(pid) or "",
            boot_id=boot_id(),
            command=tuple(command),
            owner_pid=owner,
            owner_start_time=start_time(owner) or "",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
            "command": list(self.command),
            "owner_pid": self.owner_pid,
            "owner_start_time": self.owner_start_time,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StartedProcess:
        """Raises KeyError or ValueError naming nothing more: the journal is ours."""
        return cls(
            pid=int(raw["pid"]),
            start_time=str(raw["start_time"]),
            boot_id=str(raw.get("boot_id") or ""),
            command=tuple(str(part) for part in raw.get("command") or ()),
            owner_pid=int(raw.get("owner_pid") or 0),
            owner_start_time=str(raw.get("owner_start_time") or ""),
        )

    def short(self) -> str:
        """The command as people recognise it: `locust -f ... --host ...`, at most 120 chars."""
        words = list(self.command)
        if len(words) > 2 and words[1:3] == ["-m", "locust"]:
            words = ["locust", *words[3:]]
        text = " ".join(words)
        return text if len(text) <= 120 else text[:117] + "..."


@dataclass(frozen=True)
class Seen:
    """What /proc shows now about a recorded process and its owner."""

    boot_id: str
    start_time: str | None  # of the recorded pid; None: no such process
    owner_start_time: str | None  # of the recorded owner pid


Fate = Literal["stop", "gone", "owned"]


def fate(record: StartedProcess, seen: Seen) -> Fate:
    """What `recover` does with a recorded process: stop it only when it is still the
    very process we started (same boot, same pid, same start time) and the run that
    started it is gone; "owned" when that run still lives (it stops its own load);
    "gone" when it exited, its pid now names another process, or the machine restarted."""
    if not record.start_time:
        return "gone"  # it exited before its start time could be read
    if record.boot_id and seen.boot_id and record.boot_id != seen.boot_id:
        return "gone"
    if seen.start_time != record.start_time:
        return "gone"
    if record.owner_start_time and seen.owner_start_time == record.owner_start_time:
        return "owned"
    return "stop"


def look(record: StartedProcess) -> Seen:
    """/proc now; a zombie counts as gone: it has exited, only its parent has not reaped it
    (a reparented one waits for init), and its pid cannot be reused meanwhile."""
    return Seen(boot_id(), _live_start_time(record.pid), _live_start_time(record.owner_pid))


def _live_start_time(pid: int) -> str | None:
    started = start_time(pid)
    return None if started is None or is_zombie(pid) else started


def stop_group(record: StartedProcess, kill_after: float) -> bool:
    """SIGTERM the recorded group, SIGKILL it after `kill_after` s; each signal only while
    the leader is still the recorded process. True when it is gone (bounded: at most
    `kill_after` + 5 s)."""
    if not is_alive(record.pid, record.start_time):
        return True
    kill_group(record.pid, signal.SIGTERM)
    if wait_gone(record.pid, record.start_time, kill_after):
        kill_group_if_same(record, signal.SIGKILL)  # stragglers of the group
        return True
    kill_group_if_same(record, signal.SIGKILL)
    return wait_gone(record.pid, record.start_time, 5.0)


def kill_group_if_same(record: StartedProcess, signo: int) -> None:
    """Signal the group only while its leader is the recorded process, a zombie included
    (a reaped leader's pid, and so the group id, may be another's by now)."""
    if is_alive(record.pid, record.start_time):
        kill_group(record.pid, signo)
