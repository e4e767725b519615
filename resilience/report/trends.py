"""Trends: this game day against the previous run of the same plan (pure comparison).

A score means more next to the last one: "72, was 80" says that something got
worse; the per-step recovery times say where. The previous run is the newest
`report.json` in the reports directory with the same plan name that started
before this one (interrupted runs count: they are runs, and say so).

    >>> def run(i, score, ttr):
    ...     steps = [{"name": "a", "time_to_recovery_s": ttr}]
    ...     return {"run_id": i, "score": score, "steps": steps}
    >>> t = compare(run("b", 70, 12.0), run("a", 80, 10.0))
    >>> t.score_delta, t.steps[0].delta_s
    (-10, 2.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepTrend:
    name: str
    previous_s: float | None
    current_s: float | None

    @property
    def delta_s(self) -> float | None:
        if self.previous_s is None or self.current_s is None:
            return None
        return round(self.current_s - self.previous_s, 3)


@dataclass(frozen=True)
class Trend:
    previous_run: str
    previous_score: int | None
    current_score: int | None
    steps: tuple[StepTrend, ...]

    @property
    def score_delta(self) -> int | None:
        if self.previous_score is None or self.current_score is None:
            return None
        return self.current_score - self.previous_score


def compare(current: Mapping[str, Any], previous: Mapping[str, Any]) -> Trend:
    """Score and each step's time to recovery, matched by step name (steps that
    have no time in either run, e.g. skipped twice, are left out)."""
    before = {s["name"]: s.get("time_to_recovery_s") for s in previous.get("steps") or []}
    steps = tuple(
        StepTrend(s["name"], before.get(s["name"]), s.get("time_to_recovery_s"))
        for s in current.get("steps") or []
        if s["name"] in before
        and (before[s["name"]] is not None or s.get("time_to_recovery_s") is not None)
    )
    return Trend(str(previous.get("run_id")), previous.get("score"), current.get("score"), steps)


def previous_report(
    reports_dir: Path, plan: str, run_id: str, started: float
) -> dict[str, Any] | None:
    """The newest earlier report of the same plan in `reports_dir`, if any."""
    best: dict[str, Any] | None = None
    for path in reports_dir.glob("*/report.json"):
        if path.parent.name == run_id:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("plan") != plan:
            continue
        when = data.get("started")
        if not isinstance(when, int | float) or when >= started:
            continue
        if best is None or when > best["started"]:
            best = data
    return best


def trend_json(trend: Trend) -> dict[str, Any]:
    return {
        "previous_run": trend.previous_run,
        "previous_score": trend.previous_score,
        "score": trend.current_score,
        "score_delta": trend.score_delta,
        "steps": [
            {
                "name": s.name,
                "previous_s": s.previous_s,
                "current_s": s.current_s,
                "delta_s": s.delta_s,
            }
            for s in trend.steps
        ],
    }
