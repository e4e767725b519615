"""CPU and memory of a container's processes from /proc, for the metrics store.

CPU is the delta of utime+stime over a window, in millicores; memory is the
resident set size of the process tree. Virtual containers report a small
fixed usage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
VIRTUAL_CPU_MILLICORES = 1
VIRTUAL_MEMORY_BYTES = 4 * 1024 * 1024
NODE_OVERHEAD_CPU_MILLICORES = 60  # kubelet, containerd, the OS
NODE_OVERHEAD_MEMORY_BYTES = 600 * 1024 * 1024


@dataclass(frozen=True)
class TreeUsage:
    cpu_ticks: int
    rss_bytes: int


@dataclass(frozen=True)
class Reading:
    cpu_ticks: int
    at: float  # monotonic seconds


def millicores(before: Reading, after: Reading, clk_tck: int = CLK_TCK) -> int:
    """CPU used between two readings, in millicores (1000 = one core busy)."""
    seconds = after.at - before.at
    if seconds <= 0:
        return 0
    return max(0, round((after.cpu_ticks - before.cpu_ticks) / clk_tck / seconds * 1000))


def process_tree(pid: int) -> list[int]:
    """The pid and its descendants, from /proc/<pid>/task/*/children."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue += [int(child) for child in children.read_text().split()]
            except OSError:
                continue
    return found


def read_process(pid: int) -> TreeUsage | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return TreeUsage(int(fields[11]) + int(fields[12]), int(statm.split()[1]) * PAGE_SIZE)


def read_tree(pid: int) -> TreeUsage | None:
    """CPU ticks and RSS of a process and its descendants; None once it is gone."""
    readings = [u for u in (read_process(p) for p in process_tree(pid)) if u is not None]
    if not readings:
        return None
    return TreeUsage(sum(u.cpu_ticks for u in readings), sum(u.rss_bytes for u in readings))


class CpuTracker:
    """The previous reading per container, to turn cumulative ticks into a rate."""

    def __init__(self) -> None:
        self._last: dict[str, Reading] = {}

    def rate(self, key: str, reading: Reading) -> tuple[int, float] | None:
        """(millicores, window seconds) since the previous reading, None for the first."""
        before = self._last.get(key)
        self._last[key] = reading
        if before is None:
            return None
        return millicores(before, reading), reading.at - before.at

    def forget_except(self, keys: set[str]) -> None:
        for key in set(self._last) - keys:
            del self._last[key]
