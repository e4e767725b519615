"""The request timeline: the JSON lines the locustfiles' plugin writes, read back and cut
into windows. Reading is tolerant, because it happens while Locust still appends:
a torn last line is left for the next read, an unknown line kind is skipped.

Line kinds (written by `loadtests/harmonyflow/plugin.py`):

    {"kind": "requests", "t": 1712000000, "type": "GET", "name": "/api/v1/sessions/[id]",
     "ok": 41, "fail": 1, "lat": {"3.14": 2, ...}, "errors": {"HTTPError: 503 ...": 1}, "len": 0}
    {"kind": "users", "t": 1712000000.5, "users": 10}
    {"kind": "run", "event": "start" | "stop", "t": 1712000000.1}

`t` of a requests record is the whole second its requests *started* in; `lat` is the
histogram of successful requests only (ms, three significant digits).

    >>> timeline = parse_lines([
    ...     '{"kind":"requests","t":10,"type":"GET","name":"/a","ok":2,"fail":1,"lat":{"5":2}}',
    ...     '{"kind":"requests","t":12,"type":"GET","name":"/a","ok":1,"fail":0,"lat":{"9":1}}'])
    >>> stats = window_stats(timeline, [FaultMark("kill", 11.0, 12.0)], 10.0, 14.0)
    >>> stats[Window.BASELINE].endpoints[("GET", "/a")]
    EndpointStats(ok=2, failed=1, latency_ms={5.0: 2})
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience.load.windows import FaultMark, second_window, window_seconds
from resilience.slo.objectives import (
    EndpointStats,
    Window,
    WindowStats,
    merge_histograms,
    percentile,
)

Key = tuple[str, str]  # (request type, name)


@dataclass(frozen=True)
class RequestRecord:
    t: int
    request_type: str
    name: str
    ok: int
    failed: int
    latency_ms: Mapping[float, int]
    errors: Mapping[str, int] = field(default_factory=dict)
    length: int = 0

    @property
    def key(self) -> Key:
        return (self.request_type, self.name)


@dataclass(frozen=True)
class UserSample:
    t: float
    users: int


@dataclass(frozen=True)
class RequestTimeline:
    records: tuple[RequestRecord, ...] = ()
    users: tuple[UserSample, ...] = ()
    started: float | None = None  # the test's start, as Locust saw it
    stopped: float | None = None
    skipped_lines: int = 0

    def span(self) -> tuple[float, float] | None:
        """[first start, last end) of the load: the run's start/stop marks, widened to
        cover every record (a worker's last report can arrive after the stop mark)."""
        starts = [r.t for r in self.records] + ([self.started] if self.started else [])
        ends = [r.t + 1 for r in self.records] + ([self.stopped] if self.stopped else [])
        if not starts or not ends:
            return None
        return float(min(starts)), float(max(ends))


def parse_lines(lines: Iterable[str]) -> RequestTimeline:
    records: list[RequestRecord] = []
    users: list[UserSample] = []
    started: float | None = None
    stopped: float | None = None
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.get("kind")
            if kind == "requests":
                records.append(_request_record(data))
            elif kind == "users":
                users.append(UserSample(float(data["t"]), int(data["users"])))
            elif kind == "run" and data.get("event") == "start":
                started = float(data["t"]) if started is None else started
            elif kind == "run" and data.get("event") == "stop":
                stopped = float(data["t"])
            else:
                skipped += 1
        except (ValueError, KeyError, TypeError, AttributeError):
            skipped += 1
    return RequestTimeline(tuple(records), tuple(users), started, stopped, skipped)


def read_timeline(path: Path) -> RequestTimeline:
    """The complete lines of `path` so far (an empty timeline if it does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RequestTimeline()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return parse_lines(complete.splitlines())


def _request_record(data: Mapping[str, Any]) -> RequestRecord:
    latency = {float(k): int(v) for k, v in (data.get("lat") or {}).items()}
    errors = {str(k): int(v) for k, v in (data.get("errors") or {}).items()}
    t = data["t"]
    if not isinstance(t, int | float) or not math.isfinite(t):
        raise ValueError("t")
    return RequestRecord(
        t=int(t),
        request_type=str(data["type"]),
        name=str(data["name"]),
        ok=int(data.get("ok", 0)),
        failed=int(data.get("fail", 0)),
        latency_ms=latency,
        errors=errors,
        length=int(data.get("len", 0)),
    )


def window_stats(
    timeline: RequestTimeline, marks: Sequence[FaultMark], run_start: float, run_end: float
) -> dict[Window, WindowStats]:
    """Every window that happened, with its endpoints' totals. A record counts in the
    window of its second (`second_window`: a second a fault touched is the fault's),
    and in ALL."""
    seconds = window_seconds(marks, run_start, run_end)
    grouped: dict[Window, dict[Key, list[RequestRecord]]] = {w: {} for w in seconds}
    for record in timeline.records:
        for window in (Window.ALL, second_window(record.t, marks)):
            if window in grouped:
                grouped[window].setdefault(record.key, []).append(record)
    return {
        window: WindowStats(seconds[window], {k: _sum(rs) for k, rs in endpoints.items()})
        for window, endpoints in grouped.items()
    }


def span_stats(timeline: RequestTimeline, start: float, end: float) -> WindowStats | None:
    """The load's statistics while one fault was in place, [start, end): the seconds it
    touched, as `window_stats` counts a fault window (None: it lasted no time).

        >>> timeline = parse_lines([
        ...     '{"kind":"requests","t":10,"type":"GET","name":"/a","ok":2,"fail":1,"lat":{}}',
        ...     '{"kind":"requests","t":12,"type":"GET","name":"/a","ok":1,"fail":0,"lat":{}}'])
        >>> span_stats(timeline, 11.5, 13.0).endpoints[("GET", "/a")].ok
        1
    """
    if end <= start:
        return None
    return window_stats(timeline, [FaultMark("span", start, end)], start, end).get(Window.FAULT)


def _sum(records: Sequence[RequestRecord]) -> EndpointStats:
    return EndpointStats(
        ok=sum(r.ok for r in records),
        failed=sum(r.failed for r in records),
        latency_ms=merge_histograms(r.latency_ms for r in records),
    )


@dataclass(frozen=True)
class Second:
    """One second of the run, all entries together: what a chart plots."""

    t: int
    ok: int
    failed: int
    p95_ms: float | None
    users: int | None


def per_second(
    timeline: RequestTimeline, exclude_types: frozenset[str] = frozenset()
) -> list[Second]:
    """The run second by second (ok, failed, p95 of successes, users), for charts."""
    by_second: dict[int, list[RequestRecord]] = {}
    for record in timeline.records:
        if record.request_type not in exclude_types:
            by_second.setdefault(record.t, []).append(record)
    users = {math.floor(sample.t): sample.users for sample in timeline.users}
    seconds = sorted(set(by_second) | set(users))
    result = []
    for t in seconds:
        records = by_second.get(t, [])
        histogram = merge_histograms(r.latency_ms for r in records)
        result.append(
            Second(
                t=t,
                ok=sum(r.ok for r in records),
                failed=sum(r.failed for r in records),
                p95_ms=percentile(histogram, 95),
                users=users.get(t),
            )
        )
    return result


def error_counts(timeline: RequestTimeline, limit: int = 10) -> list[tuple[str, str, int]]:
    """The most frequent failures: (entry, message, count), most first."""
    counts: dict[tuple[str, str], int] = {}
    for record in timeline.records:
        for message, count in record.errors.items():
            key = (f"{record.request_type} {record.name}", message)
            counts[key] = counts.get(key, 0) + count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(entry, message, count) for (entry, message), count in ranked[:limit]]
