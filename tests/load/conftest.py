"""Fixtures of the load tests: the locustfiles' package on sys.path, a running sandbox
for the live tests, and a check that no Locust process outlives a test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from kubernetes import client, config

from tests.builders import REPO_ROOT

LOADTESTS = REPO_ROOT / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.insert(0, str(LOADTESTS))  # the locustfiles' pure helpers: `import harmonyflow.x`

NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"


def locust_processes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "locust" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(autouse=True)
def no_locust_left_behind() -> Iterator[None]:
    yield
    left = locust_processes()
    for process in left:  # clean up for the next test, then fail this one
        process.kill()
    assert not left, f"Locust processes outlived the test: {[p.pid for p in left]}"


def resilience(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resilience.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class LiveSandbox:
    state: Path
    ingress: str
    kubeconfig: Path

    def api(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))
        return api

    def env(self) -> dict[str, str]:
        """What `resilience` needs to find this sandbox (and nothing else's)."""
        return {"HARMONYFLOW_SANDBOX_DIR": str(self.state), "KUBECONFIG": str(self.kubeconfig)}


@pytest.fixture(scope="module")
def live_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """One whole sandbox (PostgreSQL, Redis, nginx, three pods) for a test module, started
    and stopped the way users do it; every process it started is gone afterwards."""
    state = tmp_path_factory.mktemp("load") / "sandbox"
    env = {"HARMONYFLOW_SANDBOX_DIR": str(state)}
    up = resilience("sandbox", "up", env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in resilience("sandbox", "env", env=env).stdout.splitlines()
        )
        yield LiveSandbox(state, exports["HARMONYFLOW_INGRESS_URL"], Path(exports["KUBECONFIG"]))
    finally:
        down = resilience("sandbox", "down", env=env, timeout=300)
        assert down.returncode == 0, down.stderr + down.stdout
        survivors = [p.pid for p in psutil.process_iter(["cmdline"]) if _started_here(p, state)]
        assert not survivors, f"processes outlived the sandbox: {survivors}"


def _started_here(process: psutil.Process, state: Path) -> bool:
    """A live process whose command line names the sandbox's state dir (daemon, nginx)."""
    try:
        cmdline = " ".join(process.info["cmdline"] or [])
        return str(state) in cmdline and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
