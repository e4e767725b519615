"""`resilience certify` as users run it: every mistake is one line and exit 2, before any
load; a run against `--host` (the seeded loopback server) issues a certificate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli import run_resilience
from tests.load.seeded import serving

WS_ONLY = """
description: WebSocket users against the seeded loopback server
load:
  locustfiles: [sessions_ws.py]
  users: 2
  spawn_rate: 2
  run_time: 5s
  env: {HF_WAIT_MIN: "0.05", HF_WAIT_MAX: "0.1", HF_TIMEOUT: "3"}
slos:
  - {name: ping-p95, kind: latency, percentile: 95, max_ms: 500, types: [WS], names: [ping]}
  - name: ws-errors
    kind: error_rate
    max_ratio: 0.0
    types: [WS, WSCONN]
    exclude_names: [seq gap, seq duplicate]
  - {name: seq-faults, kind: failures, max_failures: 0, names: [seq gap, seq duplicate]}
  - {name: fault-budget, kind: error_rate, window: fault, max_ratio: 0}
"""


@pytest.fixture
def no_sandbox(tmp_path: Path) -> dict[str, str]:
    """An environment in which no sandbox runs and no kubeconfig is set."""
    return {**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(tmp_path / "no-sandbox"), "KUBECONFIG": ""}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "the following arguments are required: --profile", id="no-profile"),
        pytest.param(["--profile", "nope"], "no profile 'nope' in", id="unknown-profile"),
        pytest.param(["--profile", "bad.yaml"], "bad.yaml: invalid YAML at line 3", id="bad-yaml"),
        pytest.param(
            ["--profile", "typo.yaml"], "typo.yaml: load.usres: unknown key", id="unknown-key"
        ),
        pytest.param(
            ["--profile", "type.yaml"],
            "type.yaml: load.users: expected an integer",
            id="wrong-type",
        ),
        pytest.param(
            ["--profile", "smoke"],
            "no target: the sandbox is not running and no --host was given; "
            "run `resilience sandbox up` or pass --host URL",
            id="no-target",
        ),
        pytest.param(
            ["--profile", "smoke", "--host", "127.0.0.1:80"], "--host: expected a URL", id="host"
        ),
        pytest.param(
            ["--profile", "smoke", "--host", "http://127.0.0.1:9/api"],
            "without a path",
            id="host-path",
        ),
        pytest.param(
            ["--profile", "smoke", "--run-time", "-1"], "--run-time must be positive", id="time"
        ),
        pytest.param(
            [
                "--profile",
                "smoke",
                "--chaos-timeline",
                "marks.jsonl",
                "--host",
                "http://127.0.0.1:9",
            ],
            "marks.jsonl:1: phase must be start or end",
            id="bad-marks",
        ),
        pytest.param(
            ["--profile", "smoke", "--on-cluster", "--processes", "2"],
            "--on-cluster runs worker pods: use --workers, not --processes",
            id="on-cluster-processes",
        ),
        pytest.param(
            ["--profile", "smoke", "--workers", "2"],
            "--workers needs --on-cluster",
            id="workers-without-on-cluster",
        ),
        pytest.param(
            ["--profile", "smoke", "--on-cluster", "--workers", "0"],
            "--workers must be at least 1, got 0",
            id="no-workers",
        ),
        pytest.param(
            ["--profile", "smoke", "--on-cluster", "--host", "http://127.0.0.1:9"],
            "--on-cluster needs a kubeconfig: pass --kubeconfig or set KUBECONFIG",
            id="on-cluster-without-kubeconfig",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, no_sandbox: dict[str, str], args: list[str], message: str
) -> None:
    write(tmp_path, "bad.yaml", "load:\n  users: [1\n")
    write(tmp_path, "typo.yaml", WS_ONLY.replace("users: 2", "usres: 2"))
    write(tmp_path, "type.yaml", WS_ONLY.replace("users: 2", "users: many"))
    write(tmp_path, "marks.jsonl", '{"t": 1, "fault": "x", "phase": "middle"}\n')
    args = [str(tmp_path / a) if a.endswith((".yaml", ".jsonl")) else a for a in args]
    done = run_resilience(
        "certify", "--reports-dir", str(tmp_path / "reports"), *args, env=no_sandbox, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "reports").exists()  # refused before any load ran


def test_certify_against_a_host_issues_a_certificate(
    tmp_path: Path, no_sandbox: dict[str, str]
) -> None:
    profile = write(tmp_path, "ws.yaml", WS_ONLY)
    with serving("healthy") as url:
        done = run_resilience(
            "certify", "--profile", str(profile), "--host", url,
            "--reports-dir", str(tmp_path / "reports"), env=no_sandbox, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [x.split(":")[0] for x in lines if x.startswith(("PASS", "SKIP", "FAIL"))] == [
        "PASS ping-p95",
        "PASS ws-errors",
        "PASS seq-faults",
        "SKIP fault-budget",  # no fault was marked: nothing to judge
    ]
    (path,) = (tmp_path / "reports").glob("certify-ws-*/certificate.json")
    certificate = json.loads(path.read_text())
    assert certificate["verdict"] == "PASS" and certificate["target"]["source"] == "--host"
    assert "unavailable" in certificate["environment"]["cluster"]
    assert certificate["environment"]["tools"]["locust"].startswith("2.")
    assert (path.parent / "certificate.html").read_text().count("<svg") == 1


def test_a_failed_slo_exits_1_naming_it_and_the_observed_value(
    tmp_path: Path, no_sandbox: dict[str, str]
) -> None:
    profile = write(tmp_path, "gaps.yaml", WS_ONLY)
    with serving("skip") as url:
        done = run_resilience(
            "certify", "--profile", str(profile), "--host", url,
            "--reports-dir", str(tmp_path / "reports"), env=no_sandbox, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [x for x in done.stdout.splitlines() if x.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL seq-faults: failures in window all = ")
    assert failed[0].endswith(", limit <= 0")
