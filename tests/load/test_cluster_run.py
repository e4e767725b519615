"""Locust in pods on a sandbox control plane: `ClusterLoadRun` creates deploy/locust's master
and workers, reads the end from the master, collects its files and deletes everything, also
when `resilience certify --on-cluster` gets SIGINT mid-run.

The target is the seeded loopback server (tests/load/seeded.py); the pods are the venv's
real Locust (sandbox/images/locust.py), reaching `locust-master` through its Service."""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from resilience.chaos.undo import recover
from resilience.load.cluster import LOAD_NAMESPACE, RUN_LABEL
from resilience.load.cluster_run import ClusterLoadRun
from resilience.load.runner import LoadPlan
from resilience.preflight import review
from resilience.preflight.needs import Needs, on_cluster_load_needs
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


def ws_plan(target: str, tmp_path: Path, **changes: Any) -> LoadPlan:
    """WebSocket users with short waits against `target`, results in tmp_path/out."""
    fields: dict[str, Any] = {"locustfiles": (LOADTESTS / "sessions_ws.py",), "env": FAST}
    fields.update(stop_timeout=1.0, **changes)
    return LoadPlan(host=target, out_dir=tmp_path / "out", **fields)


def run_pods(harness: SandboxHarness) -> list[str]:
    pods = client.CoreV1Api(harness.api_client()).list_namespaced_pod(
        LOAD_NAMESPACE, label_selector=RUN_LABEL
    )
    return sorted(p.metadata.name for p in pods.items)


def test_a_run_on_worker_pods_collects_the_masters_results_and_leaves_nothing(
    harness: SandboxHarness, target: str, tmp_path: Path
) -> None:
    plan = ws_plan(target, tmp_path, users=2, spawn_rate=2.0, run_time=6.0)
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
    plan = ws_plan(target, tmp_path, run_time=300.0)
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


def grant_exactly(admin: client.ApiClient, needs: Needs, account: str, namespace: str) -> None:
    """A Role in the load's namespace and a ClusterRole, one rule per permission needed,
    bound to the ServiceAccount: what a cluster admin would grant from the preflight."""
    rules: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for p in sorted(needs.permissions, key=str):
        resource = f"{p.resource}/{p.subresource}" if p.subresource else p.resource
        rule = {"verbs": [p.verb], "apiGroups": [p.group], "resources": [resource]}
        rules[p.namespace is None].append(rule)
    rbac = client.RbacAuthorizationV1Api(admin)
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    role = {"metadata": {"name": "load"}, "rules": rules[False]}
    rbac.create_namespaced_role(namespace, role)
    rbac.create_cluster_role({"metadata": {"name": "load"}, "rules": rules[True]})
    for kind in ("Role", "ClusterRole"):
        binding: dict[str, Any] = {
            "metadata": {"name": "load"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "load"},
            "subjects": subject,
        }
        if kind == "Role":
            rbac.create_namespaced_role_binding(namespace, binding)
        else:
            rbac.create_cluster_role_binding(binding)


def test_the_preflights_permissions_are_all_a_run_needs(
    harness: SandboxHarness, target: str, tmp_path: Path
) -> None:
    """Run as a ServiceAccount granted exactly `on_cluster_load_needs`: the preflight passes
    and so does the whole run (create, log, exec, port-forward, delete)."""
    admin = harness.api_client()
    core = client.CoreV1Api(admin)
    with contextlib.suppress(client.ApiException):
        core.create_namespace({"metadata": {"name": LOAD_NAMESPACE}})
    core.create_namespaced_service_account(LOAD_NAMESPACE, {"metadata": {"name": "loader"}})
    needs = on_cluster_load_needs(LOAD_NAMESPACE)
    token = core.create_namespaced_service_account_token(
        "loader", LOAD_NAMESPACE, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    configuration = copy.deepcopy(admin.configuration)
    configuration.refresh_api_key_hook = None
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    as_loader = client.ApiClient(configuration)
    with pytest.raises(review.PermissionsMissingError, match="cannot create pods/exec"):
        review.check(as_loader, needs, lambda line: None)  # the API server does authorize
    grant_exactly(admin, needs, "loader", LOAD_NAMESPACE)
    review.check(as_loader, needs, lambda line: None)
    plan = ws_plan(target, tmp_path, users=1, spawn_rate=1.0, run_time=3.0)
    with ClusterLoadRun(plan, as_loader, 1, recovery_journal=tmp_path / "j.jsonl") as run:
        result = run.wait()
    log = (plan.out_dir / "locust.log").read_text()
    assert not result.stopped_by_runner and "not collected" not in log, log
    assert "not fetched" not in log and (plan.out_dir / "locust.html").is_file(), log
    assert sum(r.ok for r in result.timeline.records) > 0
    assert run_pods(harness) == []
