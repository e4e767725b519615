"""Root fixtures shared by suites/ and tests/.

Options live in one named group. Locust's pytest plugin is disabled in
pyproject (`-p no:locust`): load runs as a Locust subprocess, so nothing here
imports locust and the gevent import-order trap cannot bite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resilience.manifests import RenderedManifests, render
from resilience.policy import IntendedPolicy, policy_from_manifests

REPO_ROOT = Path(__file__).resolve().parent
OVERLAYS = ("sandbox", "staging")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harmonyflow", "HarmonyFlow resilience")
    group.addoption(
        "--deploy-dir",
        default=str(REPO_ROOT / "deploy"),
        help="directory holding base/ and overlays/ (default: the repository's deploy/)",
    )


@pytest.fixture(scope="session")
def deploy_dir(pytestconfig: pytest.Config) -> Path:
    path = Path(pytestconfig.getoption("--deploy-dir"))
    if not (path / "base").is_dir():
        raise pytest.UsageError(f"--deploy-dir {path}: no base/ directory in it")
    return path


@pytest.fixture(scope="session")
def base_manifests(deploy_dir: Path) -> RenderedManifests:
    """deploy/base rendered: the intended policy's source."""
    return render(deploy_dir / "base")


@pytest.fixture(scope="session")
def intended_policy(base_manifests: RenderedManifests) -> IntendedPolicy:
    """What the service must guarantee; suites compare observations with this."""
    return policy_from_manifests(base_manifests)
