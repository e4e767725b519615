"""Game days on a live sandbox: a short plan end to end, an interrupted day, the full plan.

The sandbox is started once per module (`resilience sandbox up`, node life cycle
shortened); the game day finds it through HARMONYFLOW_SANDBOX_DIR and leaves it
running. A token is planted in the game day's environment: no report file may
contain it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import psutil
import pytest

from resilience.report.alerts import read_alerts
from resilience.safety import undo_journal
from resilience.targets.sandbox import requested_extras, with_flags
from tests.builders import REPO_ROOT
from tests.cli import resilience_command
from tests.live import (
    FAST_NODE_LIFECYCLE_FLAGS,
    LiveSandbox,
    all_whole,
    cluster_state,
    started,
    zone_cordoned,
)
from tests.sandbox.cluster_harness import wait_for

pytestmark = [
    pytest.mark.gameday,
    pytest.mark.full_sandbox,
    pytest.mark.usefixtures("servers_installed"),
]
PLANTED = "hf-planted-gameday-token-7c6b5a4d3e2f"
SHORT = REPO_ROOT / "experiments" / "gameday" / "short.yaml"


@pytest.fixture(scope="module")
def sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveSandbox]:
    """As `make gameday` starts it: with Prometheus and Alertmanager, whose alerts the report
    lists, and RabbitMQ when a selected test asks for it (the standard day's broker step)."""
    selected = (i for i in request.session.items if getattr(i, "module", None) is request.module)
    extras = sorted({"monitoring", *requested_extras(selected)})
    flags = [*FAST_NODE_LIFECYCLE_FLAGS, *with_flags(extras)]
    yield from started(tmp_path_factory.mktemp("gameday") / "sandbox", flags)


def gameday(live: LiveSandbox, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "HARMONYFLOW_SANDBOX_DIR": str(live.state),
        "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl"),
        "HARMONYFLOW_TEST_API_TOKEN": PLANTED,
    }
    return subprocess.Popen(
        resilience_command("gameday", "--plain", "--reports-dir", str(tmp_path / "reports"), *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=30)
        raise AssertionError(
            f"the game day did not finish within {timeout:.0f}s:\n{out[-3000:]}"
        ) from None
    return out


def the_run(tmp_path: Path) -> Path:
    [run_dir] = (tmp_path / "reports").glob("*-*")
    return run_dir


def no_leaks(run_dir: Path) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert files == [], f"the planted token leaked into {files}"
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(run_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert left == [], f"processes of the run still running: {left}"


def raw_fault_failures(run_dir: Path, start: float, end: float) -> int:
    failures = 0
    for line in (run_dir / "load" / "timeline.jsonl").read_text().splitlines():
        data = json.loads(line)
        if (
            data.get("kind") == "requests"
            and data["type"] != "LEDGER"
            and start <= data["t"] + 0.5 < end
        ):
            failures += data["fail"]
    return failures


def test_a_short_game_day_writes_a_full_report(sandbox: LiveSandbox, tmp_path: Path) -> None:
    wait_for(lambda: all_whole(sandbox), 120, "the deployment whole before the game day")
    before = cluster_state(sandbox)
    out = finish(gameday(sandbox, tmp_path, "--plan", str(SHORT)), 420)
    run_dir = the_run(tmp_path)
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    assert [(s["name"], s["status"]) for s in report["steps"]] == [
        ("pod-kill", "passed"),
        ("rds-failover", "passed"),
    ], out[-3000:]
    assert report["verdict"] in ("PASS", "FAIL") and not report["interrupted"]
    assert f"gameday: {report['verdict']}, score {report['score']}/100" in out
    pod_kill = report["steps"][0]
    assert pod_kill["time_to_recovery_s"] is not None and pod_kill["time_to_recovery_s"] > 0
    assert pod_kill["actions"], "the journal's fault actions are drawn as bands"
    gameday_record = json.loads((run_dir / "gameday.json").read_text())
    step = gameday_record["steps"][0]
    fault = raw_fault_failures(run_dir, step["started"], step["ended"])
    assert pod_kill["errors"]["fault"]["failures"] == fault
    html = (run_dir / "index.html").read_text()
    assert "<svg class='chart'" in html and "pod-kill: kill-one-pod" in html
    suite = ElementTree.parse(run_dir / "junit.xml").getroot()
    assert suite.get("tests") == "2"
    for name in ("locust_stats.csv", "locust_stats_history.csv", "timeline.jsonl", "chaos.jsonl"):
        assert (run_dir / "load" / name).is_file(), name
    assert (run_dir / "observe.jsonl").stat().st_size > 1000
    assert len(list((run_dir / "steps").glob("*/journal.json"))) == 2
    alerts = read_alerts(run_dir)
    assert alerts.collected, alerts.note
    no_leaks(run_dir)
    wait_for(lambda: cluster_state(sandbox) == before, 120, "the cluster as it started")
    assert undo_journal.pending(undo_journal.read(tmp_path / "recovery.jsonl")) == []


def test_ctrl_c_in_a_step_rolls_back_and_still_writes_the_report(
    sandbox: LiveSandbox, tmp_path: Path
) -> None:
    zone = "us-west-2a"
    plan = tmp_path / "interrupted.yaml"
    plan.write_text(
        "name: interrupted\nwarmup_seconds: 5\npause_seconds: 5\nsteps:\n"
        f"  - {{experiment: az-drain, vars: {{zone: {zone}, hold_seconds: 120}}, timeout: 300}}\n"
        "  - experiment: rds-failover\n"
    )
    wait_for(lambda: all_whole(sandbox), 120, "the deployment whole before the game day")
    before = cluster_state(sandbox)
    process = gameday(sandbox, tmp_path, "--plan", str(plan))
    try:
        wait_for(
            lambda: zone_cordoned(sandbox, zone) or process.poll() is not None,
            150,
            f"{zone} cordoned by the game day's drain",
        )
        assert process.poll() is None, "the game day ended before its drain"
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        out = finish(process, 300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, out[-3000:]
    assert not zone_cordoned(sandbox, zone), "the drain's rollback uncordoned the zone"
    run_dir = the_run(tmp_path)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "INTERRUPTED" and report["interrupted"]
    assert report["stopped_at"].startswith("step 1 (az-drain): interrupted by SIGINT")
    assert [(s["name"], s["verdict"]) for s in report["steps"]] == [
        ("az-drain", "FAIL"),
        ("rds-failover", "NOT RUN"),
    ]
    assert "The game day stopped early" in (run_dir / "index.html").read_text()
    assert undo_journal.pending(undo_journal.read(tmp_path / "recovery.jsonl")) == []
    no_leaks(run_dir)
    wait_for(lambda: all_whole(sandbox), 180, "the deployment whole again")
    wait_for(lambda: cluster_state(sandbox) == before, 120, "the cluster as it started")


@pytest.mark.slow
@pytest.mark.sandbox_with("rabbitmq")
def test_the_standard_game_day(sandbox: LiveSandbox, tmp_path: Path) -> None:
    """The default plan, as `make gameday` runs it (about 8 minutes here)."""
    wait_for(lambda: all_whole(sandbox), 120, "the deployment whole before the game day")
    before = cluster_state(sandbox)
    began = time.monotonic()
    out = finish(gameday(sandbox, tmp_path), 1500)
    run_dir = the_run(tmp_path)
    report = json.loads((run_dir / "report.json").read_text())
    assert [s["name"] for s in report["steps"]] == [
        "pod-kill",
        "rolling-update",
        "az-drain",
        "rds-failover",
        "redis-failover",
        "dependency-latency",
        "broker-node-loss",
        "hpa-surge",
        "az-power-interruption",
    ]
    assert all(s["verdict"] in ("PASS", "FAIL") for s in report["steps"]), out[-3000:]
    assert time.monotonic() - began < 25 * 60
    no_leaks(run_dir)
    wait_for(lambda: all_whole(sandbox), 300, "the deployment whole again")
    wait_for(lambda: cluster_state(sandbox) == before, 180, "the cluster as it started")
