"""Window assignment from the chaos marks, and the timeline cut into windows."""

from __future__ import annotations

import json

import pytest

from resilience.load.requests import parse_lines, window_stats
from resilience.load.windows import (
    FaultMark,
    MarkEvent,
    marks_from_events,
    parse_mark_event,
    second_window,
    window_of,
    window_seconds,
)
from resilience.slo.objectives import Window

KILL = FaultMark("pod-kill", 10.0, 20.0)
DRAIN = FaultMark("drain", 30.0, 35.0)
OPEN = FaultMark("failover", 40.0, None)


@pytest.mark.parametrize(
    ("t", "marks", "window"),
    [
        pytest.param(5.0, [], Window.BASELINE, id="no-marks"),
        pytest.param(999.0, [], Window.BASELINE, id="no-marks-late"),
        pytest.param(9.99, [KILL], Window.BASELINE, id="before"),
        pytest.param(10.0, [KILL], Window.FAULT, id="start-inclusive"),
        pytest.param(19.99, [KILL], Window.FAULT, id="inside"),
        pytest.param(20.0, [KILL], Window.RECOVERY, id="end-exclusive"),
        pytest.param(25.0, [KILL, DRAIN], Window.RECOVERY, id="between-faults"),
        pytest.param(31.0, [KILL, DRAIN], Window.FAULT, id="second-fault"),
        pytest.param(1e9, [OPEN], Window.FAULT, id="never-ended"),
        pytest.param(
            12.0, [FaultMark("a", 10, 15), FaultMark("b", 11, 13)], Window.FAULT, id="overlap"
        ),
    ],
)
def test_window_of(t: float, marks: list[FaultMark], window: Window) -> None:
    assert window_of(t, marks) is window


FAILOVER = FaultMark("failover", 54.52, 56.12)


@pytest.mark.parametrize(
    ("second", "marks", "window"),
    [
        pytest.param(53, [FAILOVER], Window.BASELINE, id="whole-second-before"),
        # the fault starts after this second's middle: its requests may have met it
        pytest.param(54, [FAILOVER], Window.FAULT, id="second-the-fault-starts-in"),
        pytest.param(55, [FAILOVER], Window.FAULT, id="inside"),
        pytest.param(56, [FAILOVER], Window.FAULT, id="second-the-fault-ends-in"),
        pytest.param(57, [FAILOVER], Window.RECOVERY, id="whole-second-after"),
        pytest.param(9, [KILL], Window.BASELINE, id="ends-exactly-at-the-start"),
        pytest.param(20, [KILL], Window.RECOVERY, id="starts-exactly-at-the-end"),
        pytest.param(10**6, [OPEN], Window.FAULT, id="never-ended"),
        pytest.param(3, [], Window.BASELINE, id="no-marks"),
    ],
)
def test_second_window(second: int, marks: list[FaultMark], window: Window) -> None:
    assert second_window(second, marks) is window


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        pytest.param([], {Window.ALL: 60.0, Window.BASELINE: 60.0}, id="no-faults"),
        pytest.param(
            [KILL],
            {Window.ALL: 60.0, Window.BASELINE: 10.0, Window.FAULT: 10.0, Window.RECOVERY: 40.0},
            id="one-fault",
        ),
        pytest.param(
            [KILL, DRAIN],
            {Window.ALL: 60.0, Window.BASELINE: 10.0, Window.FAULT: 15.0, Window.RECOVERY: 35.0},
            id="two-faults",
        ),
        pytest.param(
            [FaultMark("late", 50.0, 90.0)],
            {Window.ALL: 60.0, Window.BASELINE: 50.0, Window.FAULT: 10.0},
            id="clipped-at-run-end",
        ),
        pytest.param(
            [FaultMark("early", -5.0, 5.0)],
            {Window.ALL: 60.0, Window.FAULT: 5.0, Window.RECOVERY: 55.0},
            id="started-before-run",
        ),
    ],
)
def test_window_seconds(marks: list[FaultMark], expected: dict[Window, float]) -> None:
    assert window_seconds(marks, 0.0, 60.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("events", "marks"),
    [
        pytest.param([], [], id="none"),
        pytest.param(
            [MarkEvent(5, "a", "end"), MarkEvent(1, "a", "start")],
            [FaultMark("a", 1, 5)],
            id="out-of-order-lines",
        ),
        pytest.param([MarkEvent(3, "a", "end")], [], id="end-without-start"),
        pytest.param([MarkEvent(3, "a", "start")], [FaultMark("a", 3, None)], id="still-open"),
        pytest.param(
            [MarkEvent(1, "a", "start"), MarkEvent(2, "b", "start"), MarkEvent(4, "a", "end")],
            [FaultMark("a", 1, 4), FaultMark("b", 2, None)],
            id="two-names",
        ),
        pytest.param(
            [MarkEvent(1, "a", "start"), MarkEvent(2, "a", "start"), MarkEvent(4, "a", "end")],
            [FaultMark("a", 1, 4)],
            id="repeated-start-keeps-first",
        ),
    ],
)
def test_marks_from_events(events: list[MarkEvent], marks: list[FaultMark]) -> None:
    assert marks_from_events(events) == marks


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"fault": "a", "phase": "start"}, "t must be", id="no-time"),
        pytest.param({"t": "now", "fault": "a", "phase": "start"}, "t must be", id="text-time"),
        pytest.param({"t": 1, "fault": "", "phase": "start"}, "fault must be", id="no-fault"),
        pytest.param({"t": 1, "fault": "a", "phase": "begin"}, "phase must be", id="bad-phase"),
    ],
)
def test_bad_mark_lines(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mark_event(data)


def record(t: int, ok: int, fail: int, name: str = "/a", **lat: int) -> str:
    return json.dumps(
        {"kind": "requests", "t": t, "type": "GET", "name": name, "ok": ok, "fail": fail,
         "lat": {k.removeprefix("ms"): v for k, v in lat.items()}}
    )  # fmt: skip


def test_records_land_in_the_window_their_second_started_in() -> None:
    timeline = parse_lines(
        [
            record(9, 10, 0, ms5=10),
            record(10, 3, 7, ms900=3),  # second 10.0-11.0: in the fault
            record(10, 1, 0, ms900=1),  # a second worker's record of the same second adds up
            record(20, 10, 0, ms6=10),
            '{"kind": "users", "t": 9.5, "users": 4}',
            "not json",
            '{"kind": "requests", "t": 21',  # a torn line (in a file: left for the next read)
        ]
    )
    assert timeline.skipped_lines == 2 and timeline.users[0].users == 4
    windows = window_stats(timeline, [KILL], 9.0, 21.0)
    assert windows[Window.BASELINE].endpoints[("GET", "/a")].requests == 10
    fault = windows[Window.FAULT].endpoints[("GET", "/a")]
    assert (fault.ok, fault.failed, dict(fault.latency_ms)) == (4, 7, {900.0: 4})
    assert windows[Window.RECOVERY].endpoints[("GET", "/a")].ok == 10
    assert windows[Window.ALL].endpoints[("GET", "/a")].requests == 31
    assert windows[Window.FAULT].seconds == 10.0
