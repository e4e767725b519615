"""Each step's baseline, fault and recovery windows on the day's one load (pure).

The day runs one load across all steps, so the windows of a step are cut from it:
fault = the step itself (from its start to its end, rollbacks included); the gap
between two steps is split in half, its first half the previous step's recovery,
its second half the next step's baseline, so that no second counts twice. The
first step's baseline starts with the load, the last step's recovery ends with it.

    >>> [w.baseline for w in step_windows([(10.0, 20.0), (30.0, 40.0)], 0.0, 50.0)]
    [(0.0, 10.0), (25.0, 30.0)]
    >>> [w.recovery for w in step_windows([(10.0, 20.0), (30.0, 40.0)], 0.0, 50.0)]
    [(20.0, 25.0), (40.0, 50.0)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from resilience.load.requests import RequestTimeline, window_stats
from resilience.load.windows import FaultMark
from resilience.slo.objectives import Slo, Verdict, Window, WindowStats, evaluate

Span = tuple[float, float]
NOT_TRAFFIC = "LEDGER"


@dataclass(frozen=True)
class StepWindows:
    baseline: Span
    fault: Span
    recovery: Span


@dataclass(frozen=True)
class WindowErrors:
    seconds: float
    requests: int
    failures: int

    @property
    def error_ratio(self) -> float | None:
        return self.failures / self.requests if self.requests else None


def step_windows(spans: Sequence[Span], day_start: float, day_end: float) -> list[StepWindows]:
    """Windows of each step that ran, in order (`spans` are the steps' (start, end))."""
    windows = []
    for index, (start, end) in enumerate(spans):
        before = spans[index - 1][1] if index else None
        after = spans[index + 1][0] if index + 1 < len(spans) else None
        baseline_start = day_start if before is None else (before + start) / 2
        recovery_end = day_end if after is None else (end + after) / 2
        windows.append(
            StepWindows(
                (min(baseline_start, start), start),
                (start, end),
                (end, max(end, recovery_end)),
            )
        )
    return windows


def step_stats(
    timeline: RequestTimeline, name: str, windows: StepWindows
) -> dict[Window, WindowStats]:
    """The load's statistics in one step's windows (only the records inside them count)."""
    first, last = windows.baseline[0], windows.recovery[1]
    inside = RequestTimeline(
        records=tuple(r for r in timeline.records if first <= r.t + 0.5 < last)
    )
    return window_stats(inside, [FaultMark(name, *windows.fault)], first, last)


def errors_per_window(stats: Mapping[Window, WindowStats]) -> dict[str, WindowErrors]:
    """Requests and failures per window, LEDGER checks left out (they are not requests).

    >>> from resilience.slo.objectives import EndpointStats
    >>> stats = {Window.FAULT: WindowStats(10.0, {("GET", "/a"): EndpointStats(9, 1),
    ...                                          ("LEDGER", "read verified"): EndpointStats(5, 0)})}
    >>> errors_per_window(stats)["fault"].error_ratio
    0.1
    """
    result = {}
    for window in (Window.BASELINE, Window.FAULT, Window.RECOVERY):
        entry = stats.get(window)
        if entry is None:
            continue
        traffic = [e for key, e in entry.endpoints.items() if key[0] != NOT_TRAFFIC]
        result[window.value] = WindowErrors(
            round(entry.seconds, 3),
            sum(e.requests for e in traffic),
            sum(e.failed for e in traffic),
        )
    return result


def step_verdicts(stats: Mapping[Window, WindowStats], slos: Sequence[Slo]) -> list[Verdict]:
    return evaluate(slos, stats)
