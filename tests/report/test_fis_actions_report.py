"""AWS FIS actions in the game-day report: one band per action, from GetExperiment's start
and end times, and the step's list of them."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from resilience.report import fisactions
from resilience.report.build import build_report
from resilience.report.fisactions import fis_actions
from tests.report.builders import T0, entry, write_run


def fis_output(actions: dict[str, tuple[str, float | None, float | None]]) -> dict[str, Any]:
    return {
        "experiment_id": "EXP1",
        "template_id": "EXT1",
        "state": {"status": "completed"},
        "actions": {
            name: {"status": status, "action_id": f"aws:x:{name.lower()}", "start": s, "end": e}
            for name, (status, s, e) in actions.items()
        },
    }


def test_doctests() -> None:
    assert doctest.testmod(fisactions).failed == 0


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        pytest.param(
            {"Cut": ("completed", 12.0, 132.0), "Stop": ("completed", 12.0, 72.5)},
            [("Cut", 12.0, 132.0), ("Stop", 12.0, 72.5)],
            id="each-from-its-start-to-its-end",
        ),
        pytest.param(
            {"Skipped": ("skipped", None, None), "Cut": ("completed", 12.0, 20.0)},
            [("Cut", 12.0, 20.0)],
            id="an-action-that-never-ran-has-no-band",
        ),
        pytest.param(
            {"Skipped": ("skipped", 11.5, 13.5), "Gone": ("cancelled", 11.5, 11.6)},
            [],
            id="skipped-or-cancelled-with-times-has-no-band",
        ),
        pytest.param(
            {"Cut": ("running", 12.0, None)},
            [("Cut", 12.0, 99.0)],
            id="still-running-lasts-until-the-step-ends",
        ),
    ],
)
def test_fis_actions_become_bands(
    actions: dict[str, tuple[str, float | None, float | None]],
    expected: list[tuple[str, float, float]],
) -> None:
    journal = {"run": [entry("run_fis_experiment", 10.0, 140.0, fis_output(actions))]}
    assert [(a.name, a.start, a.end) for a in fis_actions(journal, 99.0)] == expected


def test_a_recorded_day_with_an_fis_experiment_shows_each_action(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path)
    output = fis_output(
        {"Cut": ("completed", T0 + 62, T0 + 75), "Stop": ("completed", T0 + 62, T0 + 70)}
    )
    journal = {"run": [entry("run_fis_experiment", T0 + 61, T0 + 76, output, name="fis-az")]}
    (run_dir / "steps" / "02-rds-failover" / "journal.json").write_text(json.dumps(journal))
    report = build_report(run_dir, secrets=[]).report
    step = report["steps"][1]
    assert [(a["action"], a["start_offset_s"], a["seconds"]) for a in step["fis_actions"]] == [
        ("Cut", 2.0, 13.0),
        ("Stop", 2.0, 8.0),
    ]
    page = (run_dir / "index.html").read_text()
    assert "fis: rds-failover: FIS Cut (aws:x:cut) (13 s)" in page
    assert (
        "Cut (<code>aws:x:cut</code>, FIS experiment EXP1): completed, from +2.0 s for 13.0 s"
        in page
    )
