"""Locust in pods on a sandbox control plane: `ClusterLoadRun` creates deploy/locust's master
and workers, reads the end from the master, collects its files and deletes everything, also
when `resilience certify --on-cluster` gets SIGINT mid-run.

The target is the seeded loopback server (tests/load/seeded.py); the pods are the venv's
real Locust (sandbox/images/locust.py), reaching `locust-master` through its Service."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from resilience.chaos.undo import recover
from resilience.load.cluster import LOAD_NAMESPACE, RUN_LABEL
from resilience.load.cluster_run import ClusterLoadRun
from resilience.load.runner import LoadPlan
from resilience.safety import undo_journal
from tests.builders import REPO_ROOT
from tests.cli import resilience_command
from tests.load.locustrun import LOADTESTS
from tests.load.seeded import serving
from tests.sandbox.cluster_harness import SandboxHarness, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("iptables") is None,
    reason="Services (the workers dial locust-master) need the pod network: root, nft, iptables",
)
FAST = {"HF_WAIT_MIN": "0.05", "HF_WAIT_MAX": "0.1", "HF_TIMEOUT": "3"}
WS_PROFILE = """
description: WebSocket users against the seeded loopback server
load:
  locustfiles: [sessions_ws.py]
  users: 2
  spawn_rate: 2
  run_time: 120s
  env: {HF_WAIT_MIN: "0.05", HF_WAIT_MAX: "0.1", HF_TIMEOUT: "3"}
slos:
  - {name: ws-errors, kind: error_rate, max_ratio: 0.0, types: [WS, WSCONN]}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHarness]:
    cluster = SandboxHarness(tmp_path_factory.mktemp("cluster-load"))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def target() -> Iterator[str]:
    with serving("healthy") as url:
        yield url


def run_pods(harness: SandboxHarness) -> list[str]:
    pods = client.CoreV1Api(harness.api_client()).list_namespaced_pod(
        LOAD_NAMESPACE, label_selector=RUN_LABEL
    )
    return sorted(p.metadata.name for p in pods.items)


def test_a_run_on_worker_pods_collects_the_masters_results_and_leaves_nothing(
    harness: SandboxHarness, target: str, tmp_path: Path
) -> None:
    plan = LoadPlan(
        host=target,
        locustfiles=(LOADTESTS / "sessions_ws.py",),
        out_dir=tmp_path / "out",
        users=2,
        spawn_rate=2.0,
        run_time=6.0,
        env=FAST,
        stop_timeout=1.0,
    )
    journal = tmp_path / "recovery.jsonl"
    with ClusterLoadRun(plan, harness.api_client(), 2, recovery_journal=journal) as run:
        assert run.wait_for_requests(5, timeout=120), tmp_path / "out" / "locust.log"
        result = run.wait()
    assert len(run.worker_pods) >= 2, run.worker_pods
    assert not result.stopped_by_runner, (plan.out_dir / "locust.log").read_text()
    ok = sum(r.ok for r in result.timeline.records)
    assert ok > 0 and not sum(r.failed for r in result.timeline.records)
    assert (plan.out_dir / "locust_stats.csv").read_text().startswith("Type,Name")
    assert "<html" in (plan.out_dir / "locust.html").read_text()[:500].lower()
    assert "==> pod locust-worker-" in (plan.out_dir / "locust.log").read_text()
    assert run_pods(harness) == []
    assert undo_journal.pending(undo_journal.read(journal)) == []


def test_sigint_to_certify_on_cluster_deletes_its_pods(
    harness: SandboxHarness, target: str, tmp_path: Path
) -> None:
    profile = tmp_path / "ws.yaml"
    profile.write_text(WS_PROFILE)
    env = {**harness.env(), "HARMONYFLOW_RECOVERY_JOURNAL": str(tmp_path / "recovery.jsonl")}
    command = resilience_command(
        "certify",
        "--profile",
        str(profile),
        "--host",
        target,
        "--kubeconfig",
        str(harness.kubeconfig),
        "--on-cluster",
        "--workers",
        "1",
        "--reports-dir",
        str(tmp_path / "reports"),
    )
    with subprocess.Popen(
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as certify:
        try:
            wait_for(lambda: len(run_pods(harness)) == 2, 120, "the master and one worker pod")
            certify.send_signal(signal.SIGINT)
            output, _ = certify.communicate(timeout=180)
        finally:
            certify.kill()
    assert certify.returncode == 130, output
    assert run_pods(harness) == [], output
    pending = undo_journal.pending(undo_journal.read(tmp_path / "recovery.jsonl"))
    assert pending == [], output


def test_recover_deletes_what_a_killed_run_left(
    harness: SandboxHarness, target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose runner died (no `stop`) leaves its `delete-load` undo pending;
    `resilience recover` deletes the objects and marks it done."""
    plan = LoadPlan(
        host=target,
        locustfiles=(LOADTESTS / "sessions_ws.py",),
        out_dir=tmp_path / "out",
        run_time=300.0,
        env=FAST,
    )
    journal = tmp_path / "recovery.jsonl"
    ClusterLoadRun(plan, harness.api_client(), 1, recovery_journal=journal).start()
    wait_for(lambda: len(run_pods(harness)) == 2, 120, "the master and one worker pod")
    [undo] = undo_journal.pending(undo_journal.read(journal))
    assert undo.kind == "delete-load"
    monkeypatch.setenv("KUBECONFIG", str(harness.kubeconfig))
    [line] = recover(journal)
    assert "deleted Deployment/locust-master" in line, line
    assert run_pods(harness) == []
    assert undo_journal.pending(undo_journal.read(journal)) == []
