"""Detection power: every seeded-fault tag against the suite that owns its concern and the
short game day, on one sandbox. A PASS is worth what this matrix says it catches.

    flock /tmp/hf-sandbox.lock .venv/bin/python bench/detection_matrix.py [--tags a,b]

For each row the sandbox's Deployment runs the tag (set through the Kubernetes API and
waited for until no pod of another image is left, terminating or not), then:

1. the owning check runs against the sandbox through `--kube-context`, as staging runs
   it: a suite test as a pytest subprocess, or an experiment (`experiments/<name>.yaml`,
   for a fault only an engine such as Chaos Mesh delivers) with `resilience chaos run`,
   the strict runner the game days use; it has caught the tag when it fails;
2. the short game day (experiments/gameday/short.yaml) runs against the same sandbox,
   for the tags whose fault it contains; it has caught the tag when its verdict is FAIL;
3. the overlay is applied again.

The healthy release must pass both, every fault tag must be caught by both. The script
prints the matrix (tag x (suite, game day) -> caught / missed / passed, and for each
catch the first violated limit with its observed value), the share caught, and writes
the whole as JSON under reports/detection/. It never asserts: tests/test_detection_matrix.py
does, on the rows it runs.

Tags whose pods never become Ready (never-ready, crash, slow-start, liveness-hang) are
injected by their owning suite tests themselves (the rolling-update suite's bad
release, the probes suites); for those rows the suite test passing is the catch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resilience.targets.sandbox import (
    SANDBOX_CONTEXT,
    SandboxSession,
    sandbox_down,
    sandbox_up,
    suite_command,
)

REPO = Path(__file__).resolve().parent.parent

IMAGE = "ghcr.io/harmonyflow/session-state"
HEALTHY = "1.0.0"
NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"
SHORT_DAY = REPO / "experiments" / "gameday" / "short.yaml"
POD_KILL = (
    "suites/test_pod_kill.py::test_pod_kill_recovers_in_time_without_losing_acknowledged_writes"
)
ROLLOUT = "suites/test_rolling_update.py::test_rollout_stays_within_surge_and_availability_limits"
RDS = (
    "suites/test_rds_failover.py::test_forced_failover_loses_no_committed_write_and_restarts_no_pod"
)
DB_OUTAGE = (
    "suites/test_probes.py::"
    "test_losing_the_database_takes_pods_out_of_the_endpoints_without_restarts"
)
DEPENDENCY_PARTITION = "experiments/dependency-partition.yaml"
REDIS_FAILOVER = "experiments/redis-failover.yaml"
SUITE_TIMEOUT_SECONDS = 900
EXPERIMENT_TIMEOUT_SECONDS = 900
RECOVER_TIMEOUT_SECONDS = 180
GAMEDAY_TIMEOUT_SECONDS = 900
ROLLOUT_TIMEOUT_SECONDS = 240
CHAOS_FAILED = "chaos: FAILED:"  # resilience/chaos/cli.py, one line per reason


@dataclass(frozen=True)
class Row:
    """One tag, the check that owns its concern, and whether the short day has its fault.

    `suite` is a suite test (a pytest node, `suites/<file>.py::<test>`) or an experiment
    (`experiments/<name>.yaml`), run with the strict runner: `is_experiment` tells which.
    """

    tag: str
    suite: str
    in_short_day: bool
    why: str
    # A fault the sandbox cannot deliver yet, so the miss is known and expected until then:
    # printed as such, and tests/test_detection_matrix.py fails once it is caught.
    awaits: str = ""


ROWS: tuple[Row, ...] = (
    Row(HEALTHY, POD_KILL, True, "the reference release: must pass both"),
    Row("abrupt-exit", POD_KILL, True, "sockets reset, no close frame"),
    Row("drops-writes", POD_KILL, True, "acknowledged writes lost at SIGTERM"),
    Row("ignore-sigterm", POD_KILL, True, "SIGKILL after the grace period resets its sockets"),
    Row("errors", POD_KILL, True, "one API request in five answers 500"),
    Row("slow-shutdown", POD_KILL, True, "SIGKILL cuts its requests and sockets"),
    Row("ws-resume-from-head", POD_KILL, True, "reconnecting sockets skip missed events"),
    # Closed connections never replaced: a stop (a clean shutdown) closes them; a failover
    # does not (the failed primary goes silent), so the RDS failover no longer shows it.
    Row("no-db-reconnect", DB_OUTAGE, False, "closed pool connections never replaced"),
    Row("no-request-timeout", RDS, True, "requests hang on a dependency that does not answer"),
    # Only silence shows a missing Redis timeout: a stop or a restart closes or resets the
    # connections, which fails a call at once, bound or none. The partition drops packets
    # (Chaos Mesh's way) while the pods are still Ready; the hypothesis's timed write then
    # hangs. The short day has no Redis fault; the standard day's redis-failover (its primary
    # silenced until the election) should show it too.
    Row("no-redis-timeout", DEPENDENCY_PARTITION, False, "requests hang on a partitioned Redis"),
    # Readiness that ignores Redis keeps every pod a ready endpoint through the partition;
    # the partition's pods-leave-endpoints probe judges the endpoints themselves.
    Row("readiness-ignores-redis", DEPENDENCY_PARTITION, False, "ready without its Redis"),
    # The short day's failover judges readiness directly: the pods must leave the endpoints.
    Row("ready-before-db", DB_OUTAGE, True, "ready without its database"),
    # A cache update lost to a Redis failover leaves an older entry on the promoted
    # replica; only a build that checks the version against PostgreSQL never serves it.
    # The short day has no Redis fault.
    Row("trusts-stale-cache", REDIS_FAILOVER, False, "stale reads after a Redis failover"),
)


@dataclass(frozen=True)
class Outcome:
    """What one check said of one tag: `caught` when it failed, with its first violation."""

    ran: bool
    caught: bool
    first_violation: str = ""
    seconds: float = 0.0


# ---- pure: reading the runs and the matrix ----


def first_failure_line(pytest_output: str) -> str:
    """The first violation pytest printed: its first `E` line after a "N violation(s)"
    header, else the first `E` line, else the `FAILED node - message` summary.

    >>> first_failure_line("E   x.InvariantViolated: load SLOs: 1 violation(s)\\n"
    ...                    "E     kill of p: load SLO s failed\\nFAILED t.py::a\\n")
    'kill of p: load SLO s failed'
    >>> first_failure_line("FAILED suites/t.py::a - AssertionError: boom\\n")
    'AssertionError: boom'
    """
    errors = [line[1:].strip() for line in pytest_output.splitlines() if line.startswith("E ")]
    errors = [line for line in errors if line]
    if errors:
        if errors[0].endswith("violation(s)") and len(errors) > 1:
            return errors[1]
        return errors[0]
    for line in pytest_output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")) and " - " in line:
            return line.split(" - ", 1)[1].strip()
    return ""


def first_failed_step(report: dict[str, Any]) -> str:
    """`<step>: <first finding>` of the first step that did not pass.

    >>> first_failed_step({"steps": [{"name": "a", "verdict": "PASS"},
    ...   {"name": "b", "verdict": "FAIL", "findings": [{"text": "slo X"}]}]})
    'b: slo X'
    """
    for step in report.get("steps") or []:
        if step.get("verdict") not in ("PASS", "SKIP"):
            findings = step.get("findings") or [{"text": step.get("verdict", "")}]
            return f"{step['name']}: {findings[0]['text']}"
    return ""


def is_experiment(check: str) -> bool:
    """Whether a row's check is an experiment file rather than a pytest node.

    >>> is_experiment("experiments/dependency-partition.yaml"), is_experiment(POD_KILL)
    (True, False)
    """
    return check.startswith("experiments/") and check.endswith((".yaml", ".yml"))


def first_chaos_failure(runner_output: str) -> str:
    """The first reason `resilience chaos run` printed for failing the experiment.

    >>> first_chaos_failure("chaos: FAILED: steady state deviated: service-answers-promptly"
    ...                     " = False\\nchaos: FAILED: activity 'load-slos-met' failed\\n")
    'steady state deviated: service-answers-promptly = False'
    >>> first_chaos_failure("chaos: passed: Dependency partition\\n")
    ''
    """
    for line in runner_output.splitlines():
        if line.startswith(CHAOS_FAILED):
            return line.removeprefix(CHAOS_FAILED).strip()
    return ""


def as_expected(row: Row, outcome: Outcome) -> bool:
    """The healthy release passes; every fault tag is caught, but one the sandbox cannot
    deliver yet (`awaits`), which is missed until it can."""
    return outcome.caught == (row.tag != HEALTHY and not row.awaits)


def render(results: Sequence[tuple[Row, Outcome, Outcome | None]]) -> str:
    """The matrix as text, one line per tag and check, then the share caught."""
    lines = []
    expected = met = 0
    for row, suite, day in results:
        for name, outcome in (("suite", suite), ("game day", day)):
            if outcome is None:
                continue
            expected += 1
            if not outcome.ran:
                lines.append(
                    f"{row.tag:22} {name:9} {'NOT RUN':11} {_short(outcome.first_violation)}"
                )
                continue
            met += as_expected(row, outcome)
            word = "caught" if outcome.caught else "passed"
            said = outcome.first_violation
            if row.tag != HEALTHY and not outcome.caught:
                word = "MISSED"
                said = f"known, awaits {row.awaits}" if row.awaits else said
            if row.tag == HEALTHY and outcome.caught:
                word = "FALSE ALARM"
            detail = f": {_short(said)}" if said else ""
            lines.append(f"{row.tag:22} {name:9} {word:11} ({outcome.seconds:.0f} s){detail}")
    caught = sum(
        1
        for row, suite, day in results
        for outcome in (suite, day)
        if outcome is not None and outcome.ran and outcome.caught and row.tag != HEALTHY
    )
    faults = sum(
        1
        for row, suite, day in results
        for outcome in (suite, day)
        if outcome is not None and outcome.ran and row.tag != HEALTHY
    )
    lines.append(
        f"as expected: {met} of {expected}; fault tags caught: {caught} of {faults}"
        + (f" ({caught / faults:.0%})" if faults else "")
    )
    return "\n".join(lines)


def _short(text: str, width: int = 220) -> str:
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- I/O ----


def kubectl(session: SandboxSession, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(session.kubeconfig), "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "KUBECACHEDIR": str(session.state_dir / "kubecache")},
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def run_only(session: SandboxSession, image: str) -> None:
    """The Deployment on `image`, every pod of it Ready and no other pod left (bounded)."""
    kubectl(session, "set", "image", f"deployment/{DEPLOYMENT}", f"{DEPLOYMENT}={image}")
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pods = json.loads(kubectl(session, "get", "pods", "-l", f"app={DEPLOYMENT}", "-o", "json"))
        items = pods["items"]
        images = {c["image"] for p in items for c in p["spec"]["containers"]}
        terminating = [p for p in items if p["metadata"].get("deletionTimestamp")]
        ready = [
            p
            for p in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        ]
        if images == {image} and not terminating and len(ready) >= 3:
            return
        time.sleep(2)
    raise RuntimeError(f"the Deployment did not run only {image} within {ROLLOUT_TIMEOUT_SECONDS}s")


def fresh(session: SandboxSession, image: str) -> None:
    """New pods of `image`: a suite may leave its pods broken (a dead pool, a hang), and the
    game day must meet the release as it starts, not the suite's leftovers."""
    kubectl(session, "rollout", "restart", f"deployment/{DEPLOYMENT}")
    run_only(session, image)


def restore(session: SandboxSession) -> None:
    kubectl(session, "apply", "-k", str(REPO / "deploy" / "overlays" / "sandbox"), timeout=120)
    run_only(session, f"{IMAGE}:{HEALTHY}")


def run_suite(session: SandboxSession, node: str, reports: Path) -> Outcome:
    began = time.monotonic()
    done = subprocess.run(
        suite_command(session, node, reports),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **session.service_env},
        timeout=SUITE_TIMEOUT_SECONDS,
        check=False,
    )
    (reports / "pytest.log").parent.mkdir(parents=True, exist_ok=True)
    (reports / "pytest.log").write_text(done.stdout + done.stderr)
    caught = done.returncode == 1
    ran = done.returncode in (0, 1)
    first = first_failure_line(done.stdout) if caught else ""
    if not ran:
        first = f"pytest exit {done.returncode}: {done.stdout[-400:]}"
    return Outcome(ran, caught, first, time.monotonic() - began)


def experiment_command(experiment: str, journal: Path) -> list[str]:
    """`resilience chaos run <experiment>` against the sandbox through `--kube-context`, as
    `suite_command` runs a suite; run it with `experiment_env` (its kubeconfig)."""
    return [
        sys.executable,
        "-m",
        "resilience.cli",
        "chaos",
        "run",
        str(REPO / experiment),
        "--kube-context",
        SANDBOX_CONTEXT,
        "--journal",
        str(journal),
    ]


def experiment_env(session: SandboxSession, reports: Path) -> dict[str, str]:
    """The kubeconfig, AWS and ingress exports the experiment reads, and its journals (the
    run's and the recovery journal) kept with the row's reports."""
    return {
        **os.environ,
        **session.exports,
        "HARMONYFLOW_REPORTS_DIR": str(reports),
        "HARMONYFLOW_RECOVERY_JOURNAL": str(reports / "recovery.jsonl"),
    }


def run_experiment(session: SandboxSession, experiment: str, reports: Path) -> Outcome:
    """The experiment with the strict runner; then `resilience recover`, so that a run cut by
    its timeout leaves no chaos object behind for the next row."""
    reports.mkdir(parents=True, exist_ok=True)
    env = experiment_env(session, reports)
    began = time.monotonic()
    try:
        done = subprocess.run(
            experiment_command(experiment, reports / "journal.json"),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=EXPERIMENT_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "resilience.cli", "recover", "--kube-context", SANDBOX_CONTEXT],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=RECOVER_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    (reports / "chaos.log").write_text(done.stdout + done.stderr)
    caught = done.returncode == 1
    ran = done.returncode in (0, 1)
    first = first_chaos_failure(done.stdout) if caught else ""
    if not ran:
        first = f"chaos run exit {done.returncode}: {done.stderr[-400:]}"
    return Outcome(ran, caught, first, time.monotonic() - began)


def run_check(session: SandboxSession, check: str, reports: Path) -> Outcome:
    if is_experiment(check):
        return run_experiment(session, check, reports)
    return run_suite(session, check, reports)


def run_short_day(session: SandboxSession, reports: Path) -> Outcome:
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience.cli",
            "gameday",
            "--plain",
            "--plan",
            str(SHORT_DAY),
            "--reports-dir",
            str(reports),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(session.state_dir)},
        timeout=GAMEDAY_TIMEOUT_SECONDS,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    runs = sorted(reports.glob("*/report.json"))
    if done.returncode not in (0, 1) or not runs:
        return Outcome(False, False, f"gameday exit {done.returncode}: {done.stdout[-400:]}")
    report = json.loads(runs[-1].read_text())
    caught = report.get("verdict") != "PASS"
    first = first_failed_step(report) if caught else ""
    return Outcome(True, caught, first, time.monotonic() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", default="", help="comma-separated tags (default: every row)")
    parser.add_argument("--no-gameday", action="store_true", help="the suites only")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "detection")
    arguments = parser.parse_args(argv)
    wanted = {t for t in arguments.tags.split(",") if t}
    unknown = wanted - {row.tag for row in ROWS}
    if unknown:
        parser.error(f"--tags: no row for {', '.join(sorted(unknown))}")
    rows = [row for row in ROWS if not wanted or row.tag in wanted]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = arguments.out / stamp
    session = sandbox_up(out / "sandbox")
    results: list[tuple[Row, Outcome, Outcome | None]] = []
    try:
        for row in rows:
            suite, day = run_row(session, row, out / row.tag, gameday=not arguments.no_gameday)
            results.append((row, suite, day))
            for line in render(results[-1:]).splitlines()[:-1]:
                print(line, flush=True)
            write_matrix(out / "matrix.json", results)
    finally:
        sandbox_down(out / "sandbox")
    print(render(results))
    print(f"written: {out / 'matrix.json'}")
    return 0


def run_row(
    session: SandboxSession, row: Row, out: Path, *, gameday: bool
) -> tuple[Outcome, Outcome | None]:
    """The suite, then the short game day on fresh pods, then the overlay back; a row that
    cannot be set up is recorded as not run, with why, and the next row goes on."""
    image = f"{IMAGE}:{row.tag}"
    suite: Outcome = Outcome(False, False, "not run")
    day: Outcome | None = None
    try:
        run_only(session, image)
        suite = run_check(session, row.suite, out / "suite")
        if row.in_short_day and gameday:
            day = Outcome(False, False, "not run")
            fresh(session, image)
            day = run_short_day(session, out / "gameday")
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        if day is not None and not day.ran:
            day = Outcome(False, False, f"not run: {error}")
        elif not suite.ran:
            suite = Outcome(False, False, f"not run: {error}")
    finally:
        restore(session)
    return suite, day


def write_matrix(path: Path, results: Sequence[tuple[Row, Outcome, Outcome | None]]) -> None:
    entries = [
        {"row": asdict(r), "suite": asdict(s), "gameday": asdict(d) if d else None}
        for r, s, d in results
    ]
    path.write_text(json.dumps(entries, indent=2))


if __name__ == "__main__":
    sys.exit(main())
