"""The alerts that fired during a game day, per step window, against what the plan expected.

At the end of a run the game day asks Prometheus once for `ALERTS{alertstate="firing"}`
over the whole run (a range query) and stores the answer as `alerts.json` in the run
directory, so `resilience report RUN_ID` rebuilds without Prometheus. Without
PROMETHEUS_URL, or when Prometheus cannot answer, `alerts.json` says why instead.

A step's alerts are those whose firing overlaps its baseline, fault or recovery
window (`windows.step_windows`). A step may expect alerts (`expect_alerts` in the
plan): one that did not fire in the fault window or up to the end of the recovery
window is a finding (the on-call would not have been paged). An alert firing in the
baseline window is noted too: the steady state was not steady.

    >>> s = AlertSeries("TooFewPods", (), (12.0, 13.0, 14.0), 1.0)
    >>> from resilience.report.windows import StepWindows
    >>> alerts_per_window([s], StepWindows((0.0, 10.0), (10.0, 20.0), (20.0, 30.0)))
    {'baseline': [], 'fault': ['TooFewPods'], 'recovery': []}
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resilience.report.windows import Span, StepWindows

FORMAT = "harmonyflow-alerts/v1"
ALERTS_FILE = "alerts.json"
QUERY = 'ALERTS{alertstate="firing"}'
MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series
TIMEOUT = 30.0


@dataclass(frozen=True)
class AlertSeries:
    """One firing alert series: its name, its other labels, the times it was seen firing."""

    name: str
    labels: tuple[tuple[str, str], ...]
    times: tuple[float, ...]
    step: float

    def spans(self) -> list[Span]:
        """Firing intervals: samples at most 1.5 steps apart belong to one interval, which
        lasts until one step after its last sample."""
        spans: list[Span] = []
        for t in sorted(self.times):
            if spans and t - spans[-1][1] <= 0.5 * self.step:
                spans[-1] = (spans[-1][0], t + self.step)
            else:
                spans.append((t, t + self.step))
        return spans


@dataclass(frozen=True)
class AlertsCapture:
    """What alerts.json holds: the series, or why there are none."""

    collected: bool
    series: tuple[AlertSeries, ...] = ()
    note: str = ""


def range_step(start: float, end: float) -> float:
    """The query's step: 1 s, coarser only past MAX_POINTS points.

    >>> range_step(0.0, 600.0), range_step(0.0, 36_000.0)
    (1.0, 4.0)
    """
    return float(max(1, math.ceil((end - start) / MAX_POINTS)))


def alerts_per_window(series: Sequence[AlertSeries], windows: StepWindows) -> dict[str, list[str]]:
    """Names of the alerts that fired in each window of a step (an overlap counts)."""
    named = {"baseline": windows.baseline, "fault": windows.fault, "recovery": windows.recovery}
    return {
        window: sorted({s.name for s in series for a, b in s.spans() if a < end and b > start})
        for window, (start, end) in named.items()
    }


def missing_alerts(expected: Iterable[str], fired: Iterable[str]) -> list[str]:
    """Expected alerts that did not fire, in the plan's order, each once.

    >>> missing_alerts(["A", "B", "A"], ["B", "C"])
    ['A']
    """
    seen = set(fired)
    return list(dict.fromkeys(name for name in expected if name not in seen))


def step_alerts(
    capture: AlertsCapture, windows: StepWindows | None, expected: Sequence[str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A step's alerts entry of report.json, and its findings as (kind, text)."""
    entry: dict[str, Any] = {"collected": capture.collected, "expected": list(expected)}
    if not capture.collected or windows is None:
        return entry, []
    fired = alerts_per_window(capture.series, windows)
    missing = missing_alerts(expected, fired["fault"] + fired["recovery"])
    entry.update(fired)
    entry["missing"] = missing
    found = [
        (
            "alert",
            f"expected alert {name} did not fire during the fault or by the end of the "
            "recovery window",
        )
        for name in missing
    ]
    if fired["baseline"]:
        found.append(
            (
                "alert",
                f"alert(s) firing in the baseline window: {', '.join(fired['baseline'])} "
                "(the steady state was not steady)",
            )
        )
    return entry, found


# ---- the file ----


def capture_from_json(data: Any) -> AlertsCapture:
    """alerts.json as read; an unreadable file is 'not collected', saying why."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        return AlertsCapture(False, note=f"{ALERTS_FILE} is not a {FORMAT} file")
    if not data.get("collected"):
        return AlertsCapture(False, note=str(data.get("note") or "alerts were not collected"))
    step = float(data.get("step") or 1.0)
    try:
        series = tuple(
            AlertSeries(
                str(raw["metric"].get("alertname")),
                tuple(
                    sorted(
                        (str(k), str(v))
                        for k, v in raw["metric"].items()
                        if k not in ("__name__", "alertname", "alertstate")
                    )
                ),
                tuple(float(t) for t, _ in raw["values"]),
                step,
            )
            for raw in data.get("series") or []
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return AlertsCapture(False, note=f"{ALERTS_FILE}: unreadable series: {error}")
    return AlertsCapture(True, series, str(data.get("note") or ""))


def read_alerts(run_dir: Path) -> AlertsCapture:
    path = run_dir / ALERTS_FILE
    if not path.is_file():
        return AlertsCapture(False, note=f"no {ALERTS_FILE} in the run (alerts were not collected)")
    try:
        return capture_from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        return AlertsCapture(False, note=f"{ALERTS_FILE}: unreadable: {error}")


def capture_alerts(
    run_dir: Path, url: str | None, start: float, end: float, timeout: float = TIMEOUT
) -> Path:
    """Ask Prometheus for the run's firing alerts once and write alerts.json (never raises
    for Prometheus's sake: its absence or failure is written down as the note)."""
    from chaoslib.exceptions import ActivityFailed  # noqa: PLC0415 - chaoslib is heavy

    from resilience.chaos import prometheus  # noqa: PLC0415

    step = range_step(start, end)
    data: dict[str, Any] = {"format": FORMAT, "query": QUERY, "start": start, "end": end}
    if not url:
        data.update(collected=False, note=f"{prometheus.URL_ENV} was not set: alerts not collected")
    else:
        where = _without_credentials(url)
        try:
            series = prometheus.query_range(
                QUERY, start, end, step, timeout, prometheus.prometheus_url(url)
            )
            data.update(collected=True, step=step, prometheus=where, series=series)
        except ActivityFailed as error:
            data.update(collected=False, note=f"alerts not collected from {where}: {error}")
    path = run_dir / ALERTS_FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
