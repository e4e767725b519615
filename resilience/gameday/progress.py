"""Live progress: the step, time left, the current error rate, ready pods per zone.

People watch a game day. On a terminal the view redraws in place (rich); in CI
logs and pipes it is one plain line per change of step and every `every` seconds,
so the log stays readable. What is shown is a `Snapshot`, a frozen value built by
the game day's loop; formatting it is pure.

    >>> print(format_line(Snapshot("day", 2, 6, "pod-kill", "running",
    ...       42.0, 300.0, 130.0, 0.012, 31.5, {"us-west-2a": 1, "us-west-2b": 1})))
    [day 2/6 pod-kill] running 42s (258s left), day 130s, 31.5 req/s, errors 1.2%, ready a:1 b:1
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

from resilience.load.requests import RequestTimeline

RECENT_SECONDS = 10


@dataclass(frozen=True)
class Snapshot:
    plan: str
    index: int  # 1-based; 0 before the first step
    total: int
    step: str
    phase: str  # warm-up | steady-state | running | pause | stopping | done
    step_elapsed: float
    step_timeout: float
    day_elapsed: float
    error_rate: float | None
    rps: float | None
    ready_by_zone: Mapping[str, int] = field(default_factory=dict)
    note: str = ""


def recent_rates(
    timeline: RequestTimeline, now: float, seconds: int = RECENT_SECONDS
) -> tuple[float | None, float | None]:
    """(requests per second, error ratio) over the last `seconds` whole seconds, LEDGER
    checks left out (they are not traffic); (None, None) when nothing was recorded.

        >>> from resilience.load.requests import parse_lines
        >>> t = parse_lines(['{"kind":"requests","t":98,"type":"GET","name":"/a","ok":9,"fail":1}'])
        >>> recent_rates(t, 100.5, 5)
        (2.0, 0.1)
    """
    first = int(now) - seconds
    ok = failed = 0
    for record in timeline.records:
        if first <= record.t < int(now) and record.request_type != "LEDGER":
            ok += record.ok
            failed += record.failed
    if ok + failed == 0:
        return None, None
    return (ok + failed) / seconds, failed / (ok + failed)


def _zone(zone: str) -> str:
    return zone.rsplit("-", 1)[-1][-1:] if zone.startswith(("us-", "eu-", "ap-")) else zone


def format_line(snapshot: Snapshot) -> str:
    s = snapshot
    where = f"[{s.plan} {s.index}/{s.total} {s.step}]" if s.index else f"[{s.plan}]"
    timing = f"{s.step_elapsed:.0f}s"
    if s.phase == "running" and s.step_timeout:
        timing += f" ({max(0.0, s.step_timeout - s.step_elapsed):.0f}s left)"
    rps = "-" if s.rps is None else f"{s.rps:.1f}"
    errors = "-" if s.error_rate is None else f"{100 * s.error_rate:.1f}%"
    zones = " ".join(f"{_zone(z)}:{n}" for z, n in sorted(s.ready_by_zone.items())) or "-"
    line = (
        f"{where} {s.phase} {timing}, day {s.day_elapsed:.0f}s, {rps} req/s, "
        f"errors {errors}, ready {zones}"
    )
    return line + (f" ({s.note})" if s.note else "")


class Progress:
    """Shows snapshots: rich's live view on a TTY, plain lines otherwise."""

    def __init__(
        self, stream: TextIO | None = None, every: float = 15.0, live: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.live_view = self.stream.isatty() if live is None else live
        self._live: Any = None
        self._last_key: tuple[int, str] | None = None
        self._last_time = 0.0

    def __enter__(self) -> Progress:
        if self.live_view:
            try:
                from rich.console import Console  # noqa: PLC0415 - optional nicety
                from rich.live import Live  # noqa: PLC0415
            except ImportError:
                self.live_view = False
            else:
                console = Console(file=self.stream)
                self._live = Live(console=console, refresh_per_second=2, transient=False)
                self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def show(self, snapshot: Snapshot) -> None:
        if self._live is not None:
            self._live.update(_rich_view(snapshot))
            return
        key = (snapshot.index, snapshot.phase)
        now = time.monotonic()
        if key != self._last_key or now - self._last_time >= self.every:
            self._last_key, self._last_time = key, now
            print(format_line(snapshot), file=self.stream, flush=True)

    def say(self, line: str) -> None:
        """A line that stays (a step's verdict): above the live view, or plain."""
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.stream, flush=True)


def _rich_view(s: Snapshot) -> Any:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"game day {s.plan}", show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    step = f"{s.index}/{s.total} {s.step}" if s.index else "-"
    table.add_row("step", f"{step} ({s.phase})")
    left = max(0.0, s.step_timeout - s.step_elapsed) if s.phase == "running" else None
    table.add_row(
        "time",
        f"{s.step_elapsed:.0f}s in step"
        + (f", {left:.0f}s left" if left is not None else "")
        + f", {s.day_elapsed:.0f}s in the day",
    )
    table.add_row("load", "-" if s.rps is None else f"{s.rps:.1f} req/s")
    error = "-" if s.error_rate is None else f"{100 * s.error_rate:.1f}%"
    style = "red" if (s.error_rate or 0) > 0.05 else "green"
    table.add_row("errors", f"[{style}]{error}[/{style}]")
    zones = "  ".join(f"{z}: {n}" for z, n in sorted(s.ready_by_zone.items())) or "-"
    table.add_row("ready pods", zones)
    if s.note:
        table.add_row("note", s.note)
    return table
