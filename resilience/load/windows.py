"""Windows of a run (baseline / fault / recovery), cut by the chaos timeline's marks.

The caller (a Chaos Toolkit activity, a pytest suite, `resilience certify
--chaos-timeline`) gives timestamped fault start and end marks; every request is
judged in the window its start fell in, so the error budget of "during the fault" is
not diluted by the quiet minutes around it. Times are Unix seconds (`time.time()`),
the clock Locust's workers and the chaos code share on one machine or an NTP'd fleet.

    >>> marks = [FaultMark("pod-kill", start=10.0, end=20.0)]
    >>> [window_of(t, marks).value for t in (5.0, 10.0, 19.9, 20.0, 99.0)]
    ['baseline', 'fault', 'fault', 'recovery', 'recovery']
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from resilience.slo.objectives import Window

Phase = Literal["start", "end"]


@dataclass(frozen=True)
class FaultMark:
    """A fault active from `start` until `end` (None: still active at the end of the run)."""

    name: str
    start: float
    end: float | None = None

    def active_at(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class MarkEvent:
    """One line of a chaos timeline file: a fault started or ended at `t`."""

    t: float
    fault: str
    phase: Phase

    def to_json(self) -> str:
        return json.dumps({"t": self.t, "fault": self.fault, "phase": self.phase})


def window_of(t: float, marks: Sequence[FaultMark]) -> Window:
    """FAULT while any mark is active, BASELINE before the first start, else RECOVERY."""
    if any(mark.active_at(t) for mark in marks):
        return Window.FAULT
    if not marks or t < min(mark.start for mark in marks):
        return Window.BASELINE
    return Window.RECOVERY


def second_window(second: int, marks: Sequence[FaultMark]) -> Window:
    """The window of a whole second of requests (the timeline's records): FAULT when any
    fault was active at any moment of [second, second + 1), else the window of its middle.

    Requests within one second cannot be told apart; when a fault starts or ends inside
    it, those requests may have met the fault, so they count against the fault's budget,
    never against the steady state around it.

        >>> marks = [FaultMark("failover", start=54.52, end=56.12)]
        >>> [second_window(s, marks).value for s in (53, 54, 55, 56, 57)]
        ['baseline', 'fault', 'fault', 'fault', 'recovery']
    """
    if any(m.start < second + 1 and (m.end is None or m.end > second) for m in marks):
        return Window.FAULT
    return window_of(second + 0.5, marks)


def window_seconds(
    marks: Sequence[FaultMark], run_start: float, run_end: float
) -> dict[Window, float]:
    """How long each window lasted within [run_start, run_end); windows of 0 s are left out
    (a window that did not happen is skipped by the SLO evaluation, not failed).

        >>> window_seconds([FaultMark("f", 10.0, 15.0)], 0.0, 30.0)[Window.RECOVERY]
        15.0
        >>> Window.FAULT in window_seconds([], 0.0, 30.0)
        False
    """
    edges = sorted(
        {run_start, run_end}
        | {m.start for m in marks if run_start < m.start < run_end}
        | {m.end for m in marks if m.end is not None and run_start < m.end < run_end}
    )
    seconds: dict[Window, float] = {Window.ALL: max(0.0, run_end - run_start)}
    for left, right in itertools.pairwise(edges):
        window = window_of((left + right) / 2, marks)
        seconds[window] = seconds.get(window, 0.0) + (right - left)
    return {w: s for w, s in seconds.items() if s > 0 or w is Window.ALL}


def marks_from_events(events: Iterable[MarkEvent]) -> list[FaultMark]:
    """Pair start and end events per fault name, in time order; an unmatched start stays
    open (None), an end without a start is ignored (it belongs to an earlier run).

        >>> marks_from_events([MarkEvent(1.0, "a", "start"), MarkEvent(4.0, "a", "end"),
        ...                    MarkEvent(6.0, "a", "start")])
        [FaultMark(name='a', start=1.0, end=4.0), FaultMark(name='a', start=6.0, end=None)]
    """
    open_marks: dict[str, float] = {}
    marks: list[FaultMark] = []
    for event in sorted(events, key=lambda e: e.t):
        if event.phase == "start":
            open_marks.setdefault(event.fault, event.t)
        elif event.fault in open_marks:
            marks.append(FaultMark(event.fault, open_marks.pop(event.fault), event.t))
    marks += [FaultMark(name, start) for name, start in open_marks.items()]
    return sorted(marks, key=lambda m: m.start)


def parse_mark_event(data: Mapping[str, Any]) -> MarkEvent:
    """`{"t": 1712.5, "fault": "pod-kill", "phase": "start"}`; `ValueError` says what is wrong."""
    t, fault, phase = data.get("t"), data.get("fault"), data.get("phase")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        raise ValueError("t must be a Unix time in seconds")
    if not isinstance(fault, str) or not fault:
        raise ValueError("fault must be a non-empty string")
    if phase not in ("start", "end"):
        raise ValueError(f"phase must be start or end, got {phase!r}")
    return MarkEvent(float(t), fault, phase)
