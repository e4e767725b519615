"""Every experiment with the stock `chaos run` against a sandbox: it runs, and the
cluster ends as it started. Then the suite's own runner, strict where `chaos run`
is lenient, and interruptions in the middle of an AZ drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from resilience.chaos.verdict import failures
from resilience.safety import undo_journal
from tests.builders import REPO_ROOT
from tests.chaos.runs import EXPERIMENTS, journal_of, run_env
from tests.cli import resilience_command
from tests.live import LiveSandbox, all_whole, cluster_state, zone_cordoned
from tests.sandbox.cluster_harness import wait_for

pytestmark = pytest.mark.usefixtures("servers_installed")
CHAOS = Path(sys.executable).with_name("chaos")
# experiments that fail on the seed's settings: a finding, asserted as such below
FINDINGS = {"liveness-hang": "service-answers = False"}
BROKER_PARTS = pytest.mark.sandbox_with("rabbitmq", "monitoring")


def run_stock_chaos(
    live: LiveSandbox, tmp_path: Path, experiment: Path, *args: str
) -> dict[str, Any]:
    journal = tmp_path / "journal.json"
    chaos = [str(CHAOS), "--no-version-check", "--no-log-file", "run", "--journal-path"]
    return journal_of(live, tmp_path, [*chaos, str(journal), *args, str(experiment)], journal)


def run_with_the_runner(live: LiveSandbox, tmp_path: Path, experiment: Path) -> dict[str, Any]:
    """`resilience chaos run`: the hypothesis is also checked during the method."""
    journal = tmp_path / "journal.json"
    runner = resilience_command("chaos", "run", "--journal")
    return journal_of(live, tmp_path, [*runner, str(journal), str(experiment)], journal)


def experiment_params(in_ci: frozenset[str] = frozenset()) -> list[Any]:
    """Every experiment in experiments/ (by glob: a new one is run without being listed),
    `slow` unless named in `in_ci`; those tagged `rabbitmq` run where the sandbox has
    RabbitMQ and Prometheus."""
    params = []
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        tags = yaml.safe_load(path.read_text()).get("tags") or []
        marks = [] if path.stem in in_ci else [pytest.mark.slow]
        if "rabbitmq" in tags:
            marks.append(BROKER_PARTS)
        params.append(pytest.param(path.stem, marks=marks, id=path.stem))
    return params


# In CI: pod-kill here; elsewhere the drain by the interruption tests below and the
# suites, the failovers by tests/sandbox/live/test_sandbox_aws.py and the short game day, the
# releases by the runner test below and suites/test_rolling_update.py, the broker faults
# by suites/test_broker.py (one node lost, and the drops-events twin).
@pytest.mark.parametrize("name", experiment_params(frozenset({"pod-kill"})))
def test_experiment_runs_with_stock_chaos_and_leaves_the_cluster_as_it_was(
    chaos_sandbox: LiveSandbox, tmp_path: Path, name: str
) -> None:
    passes_and_leaves_the_cluster_as_it_was(chaos_sandbox, tmp_path, name, run_stock_chaos)


@pytest.mark.slow  # in CI: pod-kill and rds-failover by the short game day
@pytest.mark.parametrize("name", experiment_params())
def test_experiment_holds_its_hypothesis_throughout_with_the_runner(
    chaos_sandbox: LiveSandbox, tmp_path: Path, name: str
) -> None:
    """`resilience chaos run` (and so every game day) checks the hypothesis during the method
    too: a probe the fault itself must break (a stopped broker, a stopped database's
    errors) has no place in it. Stock `chaos run` never notices."""
    passes_and_leaves_the_cluster_as_it_was(chaos_sandbox, tmp_path, name, run_with_the_runner)


def passes_and_leaves_the_cluster_as_it_was(
    chaos_sandbox: LiveSandbox,
    tmp_path: Path,
    name: str,
    run: Callable[[LiveSandbox, Path, Path], dict[str, Any]],
) -> None:
    wait_for(lambda: all_whole(chaos_sandbox), 120, "the deployment whole before the experiment")
    before = cluster_state(chaos_sandbox)
    assert before["cordoned"] == [] and before["db"] == "available"
    journal = run(chaos_sandbox, tmp_path, EXPERIMENTS / f"{name}.yaml")
    reasons = failures(journal)
    if name in FINDINGS:
        assert any(FINDINGS[name] in reason for reason in reasons), reasons
    else:
        assert reasons == [], reasons
    wait_for(lambda: all_whole(chaos_sandbox), 180, "the deployment whole after the experiment")
    wait_for(lambda: cluster_state(chaos_sandbox) == before, 120, "the cluster as it started")
    assert undo_journal.pending(undo_journal.read(tmp_path / "recovery.jsonl")) == []
    assert list((tmp_path / "reports").glob("journal-*.json")), (
        "the journal control wrote the journal"
    )


def resilience(live: LiveSandbox, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        resilience_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(live, tmp_path),
        cwd=REPO_ROOT,
        start_new_session=True,
    )


def test_runner_fails_a_bad_release_left_without_its_rollback(
    chaos_sandbox: LiveSandbox, tmp_path: Path
) -> None:
    experiment = yaml.safe_load((EXPERIMENTS / "bad-release.yaml").read_text())
    experiment["method"] = [a for a in experiment["method"] if a["name"] != "roll-back-release"]
    path = tmp_path / "bad-release-no-undo.yaml"
    path.write_text(yaml.safe_dump(experiment))
    wait_for(lambda: all_whole(chaos_sandbox), 120, "the deployment whole before the experiment")
    before = cluster_state(chaos_sandbox)
    process = resilience(
        chaos_sandbox,
        tmp_path,
        "chaos",
        "run",
        str(path),
        "--var",
        "recovery_timeout=15",
        "--var",
        "stall_seconds=5",  # the image never becomes ready: a longer hold shows nothing more
    )
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-2000:]
    assert "chaos: FAILED: activity 'time-to-recovery' failed" in out, out
    assert "whole not reached after 15 s" in out, out
    wait_for(
        lambda: cluster_state(chaos_sandbox) == before, 180, "the rollback restored the release"
    )


@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "kill-9"]
)
def test_an_interrupted_az_drain_still_uncordons(
    chaos_sandbox: LiveSandbox, tmp_path: Path, how: signal.Signals
) -> None:
    wait_for(lambda: all_whole(chaos_sandbox), 120, "the deployment whole before the experiment")
    zone = "us-west-2a"
    process = resilience(
        chaos_sandbox,
        tmp_path,
        "chaos",
        "run",
        str(EXPERIMENTS / "az-drain.yaml"),
        "--var",
        f"zone={zone}",
        "--var",
        "hold_seconds=120",
    )
    try:
        wait_for(lambda: zone_cordoned(chaos_sandbox, zone), 90, f"{zone} cordoned by the drain")
        time.sleep(1)
        process.send_signal(how)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
        if how is not signal.SIGKILL:  # whatever happened, leave the zone uncordoned
            resilience(chaos_sandbox, tmp_path, "recover").communicate(timeout=120)
    assert process.returncode != 0
    if how is signal.SIGKILL:
        assert zone_cordoned(chaos_sandbox, zone), "kill -9 leaves no chance to roll back"
        # the experiment's Locust (its own process group) outlives a kill -9 of the run;
        # it is bounded by its run time, and stopped here so the test leaves nothing behind
        for stray in psutil.process_iter(["cmdline"]):
            if str(tmp_path) in " ".join(stray.info["cmdline"] or []):
                stray.terminate()
        recover = resilience(chaos_sandbox, tmp_path, "recover")
        out, err = recover.communicate(timeout=120)
        assert recover.returncode == 0, err
        assert "recover: uncordoned" in out, out
    assert not zone_cordoned(chaos_sandbox, zone)
    assert undo_journal.pending(undo_journal.read(tmp_path / "recovery.jsonl")) == []
    wait_for(lambda: all_whole(chaos_sandbox), 180, "the deployment whole again")
