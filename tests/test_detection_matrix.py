"""Detection power, asserted: every seeded-fault tag of the matrix is caught by the suite
that owns its concern and by the short game day, and the healthy release passes both.

The whole matrix takes about 45 minutes on 2 cores, so it is `slow`; CI keeps one cheap
row, the abrupt-exit release through the pod-kill suite
(tests/test_suites_can_fail.py, twin `abrupt-exit`).
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import detection_matrix
from bench.detection_matrix import (
    DEPENDENCY_PARTITION,
    POD_KILL,
    ROWS,
    SHORT_DAY,
    Outcome,
    Row,
    as_expected,
    experiment_command,
    experiment_env,
    first_chaos_failure,
    is_experiment,
)
from resilience.targets.sandbox import SANDBOX_CONTEXT, SandboxSession
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
    golden = (REPO_ROOT / "tests" / "sandbox" / "images" / "golden" / "images.txt").read_text()
    tags = {line.split()[0].rsplit(":", 1)[1] for line in golden.splitlines() if line.strip()}
    assert {row.tag for row in ROWS} <= tags


@pytest.mark.parametrize(
    ("check", "experiment"),
    [
        pytest.param(DEPENDENCY_PARTITION, True, id="experiment"),
        pytest.param("experiments/gameday/short.yml", True, id="yml"),
        pytest.param(POD_KILL, False, id="suite-node"),
        pytest.param("suites/test_probes.py", False, id="suite-file"),
        pytest.param("deploy/base/deployment.yaml", False, id="not-an-experiment"),
    ],
)
def test_a_check_is_an_experiment_file_or_a_pytest_node(check: str, experiment: bool) -> None:
    assert is_experiment(check) is experiment


@pytest.mark.parametrize(
    ("output", "first"),
    [
        pytest.param(
            "chaos: FAILED: steady state deviated: service-answers-promptly = False\n"
            "chaos: FAILED: activity 'load-slos-met' failed\n",
            "steady state deviated: service-answers-promptly = False",
            id="first-of-two",
        ),
        pytest.param("noise\nchaos: FAILED:  x \n", "x", id="after-noise"),
        pytest.param("chaos: passed: Dependency partition\n", "", id="passed"),
        pytest.param("", "", id="nothing"),
    ],
)
def test_first_chaos_failure_is_the_runners_first_reason(output: str, first: str) -> None:
    assert first_chaos_failure(output) == first


def test_an_experiment_runs_with_the_strict_runner_through_the_sandbox_context(
    tmp_path: Path,
) -> None:
    command = experiment_command(DEPENDENCY_PARTITION, tmp_path / "journal.json")
    assert command[1:5] == ["-m", "resilience.cli", "chaos", "run"]
    assert Path(command[5]) == REPO_ROOT / DEPENDENCY_PARTITION
    assert command[6:] == [
        "--kube-context",
        SANDBOX_CONTEXT,
        "--journal",
        str(tmp_path / "journal.json"),
    ]
    session = SandboxSession(tmp_path, {"KUBECONFIG": "/k", "HARMONYFLOW_INGRESS_URL": "http://i"})
    env = experiment_env(session, tmp_path / "row")
    assert env["KUBECONFIG"] == "/k" and env["HARMONYFLOW_INGRESS_URL"] == "http://i"
    assert env["HARMONYFLOW_RECOVERY_JOURNAL"] == str(tmp_path / "row" / "recovery.jsonl")


def test_every_rows_check_exists() -> None:
    for row in ROWS:
        if is_experiment(row.suite):
            assert (REPO_ROOT / row.suite).is_file(), row
            continue
        path, _, test = row.suite.partition("::")
        assert f"def {test}(" in (REPO_ROOT / path).read_text(), row


def test_a_missing_redis_timeout_is_owned_by_the_partition_toward_redis() -> None:
    """Only silence shows it: the row runs the Chaos Mesh partition to REDIS_URL's endpoint,
    and the short day, which has no Redis fault, is not asked to catch it."""
    [row] = [row for row in ROWS if row.tag == "no-redis-timeout"]
    assert row.suite == DEPENDENCY_PARTITION and not row.awaits and not row.in_short_day
    experiment = yaml.safe_load((REPO_ROOT / row.suite).read_text())
    faults = [
        a["provider"]["arguments"]
        for a in experiment["method"]
        if a["provider"].get("func") == "inject_network_fault"
    ]
    assert [(f["action"], f["targets_from_env"]) for f in faults] == [
        ("${fault_action}", ["REDIS_URL"])
    ]
    assert experiment["configuration"]["fault_action"] == "partition"
    short_day = yaml.safe_load(SHORT_DAY.read_text())
    assert "dependency-partition" not in [step["experiment"] for step in short_day["steps"]]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(detection_matrix).failed == 0


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
