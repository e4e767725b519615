"""The conformance suite fails on a broken copy of deploy/, naming the object and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import REPO_ROOT, copy_deploy_tree, replace_in_file

SUITE = "suites/test_manifests.py"


def run_conformance(deploy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            SUITE,
            "-m",
            "conformance",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--deploy-dir={deploy}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )


# (file, old text, new text, what the failure must say)
FAULTS = [
    pytest.param(
        "base/deployment.yaml",
        "maxSurge: 1",
        "maxSurge: 2",
        "Deployment/session-state-service: spec.strategy.rollingUpdate.maxSurge: "
        "seed says 1, manifest has 2",
        id="max-surge-2",
    ),
    pytest.param(
        "base/hpa.yaml",
        "minReplicas: 3",
        "minReplicas: 2",
        "HorizontalPodAutoscaler/session-state-service-hpa: spec.minReplicas: "
        "seed says 3, manifest has 2",
        id="min-replicas-2",
    ),
    pytest.param(
        "base/deployment.yaml",
        "path: /health/live",
        "path: /healthz",
        "livenessProbe.httpGet.path: seed says '/health/live', manifest has '/healthz'",
        id="liveness-path",
    ),
    pytest.param(
        "overlays/staging/addresses.yaml",
        "spec:\n  template:",
        "spec:\n  replicas: 2\n  template:",
        "Deployment/session-state-service: spec.replicas: base has 3, overlay has 2",
        id="overlay-changes-replicas",
    ),
    pytest.param(
        "overlays/sandbox/hpa-behavior.yaml",
        "spec:\n",
        "spec:\n  maxReplicas: 4\n",
        "HorizontalPodAutoscaler/session-state-service-hpa: spec.maxReplicas: "
        "base has 10, overlay has 4",
        id="overlay-changes-max-replicas",
    ),
]


def test_conformance_passes_on_the_repository() -> None:
    completed = run_conformance(REPO_ROOT / "deploy")
    assert completed.returncode == 0, completed.stdout[-3000:]


@pytest.mark.parametrize(("file", "old", "new", "message"), FAULTS)
def test_conformance_fails_on_a_seeded_fault(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    deploy = copy_deploy_tree(tmp_path)
    replace_in_file(deploy / file, old, new)
    completed = run_conformance(deploy)
    assert completed.returncode == 1, completed.stdout[-3000:]
    assert message in completed.stdout, completed.stdout[-3000:]
