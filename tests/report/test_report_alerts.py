"""The alerts of a game day: per window (tables), against the plan's expectations, and
on the page and in report.json of the recorded day."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from resilience.errors import InvalidInputError
from resilience.gameday.plan import Experiment, parse_plan
from resilience.report import alerts
from resilience.report.alerts import (
    AlertsCapture,
    AlertSeries,
    alerts_per_window,
    capture_alerts,
    missing_alerts,
    read_alerts,
)
from resilience.report.build import build_report
from resilience.report.windows import StepWindows
from tests.report.builders import write_run

WINDOWS = StepWindows((0.0, 10.0), (10.0, 20.0), (20.0, 30.0))


def firing(name: str, *times: float, step: float = 1.0) -> AlertSeries:
    return AlertSeries(name, (), tuple(times), step)


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(alerts).failed == 0


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param([], {"baseline": [], "fault": [], "recovery": []}, id="none"),
        pytest.param(
            [firing("A", 3, 4)], {"baseline": ["A"], "fault": [], "recovery": []}, id="baseline"
        ),
        pytest.param(
            [firing("A", 9, 10, 11)],
            {"baseline": ["A"], "fault": ["A"], "recovery": []},
            id="across-the-fault-start",
        ),
        pytest.param(
            [firing("A", 25)], {"baseline": [], "fault": [], "recovery": ["A"]}, id="recovery"
        ),
        pytest.param(
            [firing("A", 19)],
            {"baseline": [], "fault": ["A"], "recovery": []},
            id="last-sample-before-the-end-lasts-one-step",
        ),
        pytest.param(
            [firing("A", 5, 25)],
            {"baseline": ["A"], "fault": [], "recovery": ["A"]},
            id="a-gap-splits-the-firing",
        ),
        pytest.param(
            [firing("A", 0, 15, step=15.0)],
            {"baseline": ["A"], "fault": ["A"], "recovery": ["A"]},
            id="coarse-step-still-one-interval",
        ),
        pytest.param(
            [firing("B", 12), firing("A", 13), firing("A", 40)],
            {"baseline": [], "fault": ["A", "B"], "recovery": []},
            id="sorted-each-once-and-after-the-day",
        ),
    ],
)
def test_alerts_per_window(series: list[AlertSeries], expected: dict[str, list[str]]) -> None:
    assert alerts_per_window(series, WINDOWS) == expected


@pytest.mark.parametrize(
    ("expected", "fired", "missing"),
    [
        pytest.param([], ["A"], [], id="nothing-expected"),
        pytest.param(["A"], ["A"], [], id="fired"),
        pytest.param(["A", "B"], ["B"], ["A"], id="one-missing"),
        pytest.param(["B", "A", "B"], [], ["B", "A"], id="plan-order-each-once"),
    ],
)
def test_missing_alerts(expected: list[str], fired: list[str], missing: list[str]) -> None:
    assert missing_alerts(expected, fired) == missing


def test_the_recorded_day_lists_alerts_per_step_and_flags_the_missing_one(
    tmp_path: Path,
) -> None:
    run_dir = write_run(tmp_path)
    report = build_report(run_dir, secrets=[]).report
    pod_kill, rds, skipped = report["steps"]
    assert report["alerts"] == {"collected": True, "note": ""}
    assert pod_kill["alerts"] == {
        "collected": True,
        "expected": ["SessionStateTooFewReadyPods"],
        "baseline": [],
        "fault": ["SessionStateTooFewReadyPods"],
        "recovery": [],
        "missing": [],
    }
    assert not [f for f in pod_kill["findings"] if f["kind"] == "alert"]
    assert rds["alerts"]["baseline"] == ["SessionStateHighErrorRate"]
    assert rds["alerts"]["missing"] == ["DatabaseReplicaLagHigh"]
    texts = [f["text"] for f in rds["findings"] if f["kind"] == "alert"]
    assert any("expected alert DatabaseReplicaLagHigh did not fire" in t for t in texts)
    assert any("SessionStateHighErrorRate" in t and "not steady" in t for t in texts)
    assert skipped["alerts"] == {"collected": True, "expected": []}
    page = (run_dir / "index.html").read_text()
    assert "<caption>alerts</caption>" in page
    assert "DatabaseReplicaLagHigh (did not fire)" in page
    assert page.count("SessionStateTooFewReadyPods") >= 2


def test_without_alerts_json_the_report_says_so(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    (run_dir / "alerts.json").unlink()
    report = build_report(run_dir, secrets=[]).report
    assert report["alerts"]["collected"] is False
    assert "alerts were not collected" in report["alerts"]["note"]
    assert all(not [f for f in s["findings"] if f["kind"] == "alert"] for s in report["steps"])
    assert "Alerts: no alerts.json in the run" in (run_dir / "index.html").read_text()


def test_without_prometheus_url_alerts_json_holds_the_note(tmp_path: Path) -> None:
    capture_alerts(tmp_path, None, 0.0, 10.0)
    assert read_alerts(tmp_path) == AlertsCapture(
        False, note="PROMETHEUS_URL was not set: alerts not collected"
    )


def test_an_unreachable_prometheus_is_written_down_not_raised(tmp_path: Path) -> None:
    capture_alerts(tmp_path, "http://user:pw@127.0.0.1:9", 0.0, 10.0, timeout=2.0)
    capture = read_alerts(tmp_path)
    assert not capture.collected
    assert "alerts not collected from http://127.0.0.1:9" in capture.note
    assert "is unreachable" in capture.note
    assert "pw" not in (tmp_path / "alerts.json").read_text()


def test_an_unreadable_alerts_json_is_a_note(tmp_path: Path) -> None:
    (tmp_path / "alerts.json").write_text(json.dumps({"format": "other"}))
    assert "not a harmonyflow-alerts/v1 file" in read_alerts(tmp_path).note


KNOWN = {"pod-kill": Experiment("pod-kill", Path("pod-kill.yaml"), ("seed",))}


def test_a_plan_step_may_expect_alerts() -> None:
    plan = parse_plan(
        {
            "name": "p",
            "steps": [
                {"experiment": "pod-kill", "expect_alerts": ["SessionStateTooFewReadyPods"]},
                {"experiment": "pod-kill", "name": "again"},
            ],
        },
        "p.yaml",
        KNOWN,
    )
    assert [s.expect_alerts for s in plan.steps] == [("SessionStateTooFewReadyPods",), ()]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("A", "steps[0].expect_alerts: expected a list of alert names", id="not-list"),
        pytest.param(["bad name"], "steps[0].expect_alerts[0]: expected an alert name", id="name"),
        pytest.param([3], "expect_alerts[0]: expected an alert name", id="number"),
        pytest.param(
            ["SessionStateTooFewReadyPod"],
            "expect_alerts[0]: no alert 'SessionStateTooFewReadyPod' in deploy/monitoring/rules",
            id="unknown",
        ),
    ],
)
def test_bad_expect_alerts_is_one_line(value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_plan(
            {"name": "p", "steps": [{"experiment": "pod-kill", "expect_alerts": value}]},
            "p.yaml",
            KNOWN,
        )
