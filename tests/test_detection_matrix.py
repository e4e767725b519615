"""Detection power, asserted: every seeded-fault tag of the matrix is caught by the suite
that owns its concern and by the short game day, and the healthy release passes both.

The whole matrix takes about 45 minutes on 2 cores, so it is `slow`; CI keeps one cheap
row, the abrupt-exit release through the pod-kill suite
(tests/test_suites_can_fail.py, twin `abrupt-exit`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.detection_matrix import ROWS, Outcome, Row, as_expected
from tests.builders import REPO_ROOT

MATRIX_TIMEOUT_SECONDS = 3600


@pytest.mark.parametrize(
    ("tag", "caught", "expected"),
    [
        pytest.param("1.0.0", False, True, id="healthy-passes"),
        pytest.param("1.0.0", True, False, id="healthy-false-alarm"),
        pytest.param("abrupt-exit", True, True, id="fault-caught"),
        pytest.param("abrupt-exit", False, False, id="fault-missed"),
    ],
)
def test_what_counts_as_expected(tag: str, caught: bool, expected: bool) -> None:
    row = Row(tag, "suites/x.py::t", True, "")
    assert as_expected(row, Outcome(True, caught)) is expected


def test_a_fault_the_sandbox_cannot_deliver_yet_is_expected_missed_until_it_is_caught() -> None:
    row = Row("no-request-timeout", "suites/x.py::t", True, "", awaits="issue 16")
    assert as_expected(row, Outcome(True, caught=False))
    assert not as_expected(row, Outcome(True, caught=True))  # caught: drop `awaits`


def test_every_row_has_a_seeded_tag_of_the_registry() -> None:
    golden = (REPO_ROOT / "tests" / "sandbox" / "golden" / "images.txt").read_text()
    tags = {line.split()[0].rsplit(":", 1)[1] for line in golden.splitlines() if line.strip()}
    assert {row.tag for row in ROWS} <= tags


@pytest.mark.slow
@pytest.mark.full_sandbox
@pytest.mark.timeout(MATRIX_TIMEOUT_SECONDS + 120)
def test_every_seeded_fault_is_caught_and_the_healthy_release_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "detection_matrix.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=MATRIX_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [matrix] = tmp_path.glob("*/matrix.json")
    wrong = []
    for entry in json.loads(matrix.read_text()):
        row = Row(**entry["row"])
        for check in ("suite", "gameday"):
            if entry[check] is None:
                continue
            outcome = Outcome(**entry[check])
            if not outcome.ran or not as_expected(row, outcome):
                wrong.append(f"{row.tag} / {check}: {outcome}")
    assert wrong == [], "\n".join(wrong) + "\n" + done.stdout[-3000:]
