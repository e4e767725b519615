"""`resilience sandbox up | status | env | down` as a user runs them, as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from kubernetes import client, config

from tests.cli import run_resilience

# `sandbox up` here starts whole sandboxes on the fixed addresses: one at a time.
pytestmark = pytest.mark.full_sandbox


def resilience(state: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": str(state)}
    return run_resilience(*args, env=env, timeout=timeout)


def started_processes(state: Path) -> list[psutil.Process]:
    """The daemon and every pod process it recorded, while they run."""
    pids = [int((state / "daemon.pid").read_text().split()[0])]
    pids += [int(p.name) for p in (state / "pids").iterdir() if p.name.isdigit()]
    return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]


def gone(processes: list[psutil.Process]) -> bool:
    return not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "sandbox"
    yield directory
    resilience(directory, "sandbox", "down")


def test_up_status_env_down_leaves_nothing_behind(state: Path) -> None:
    up = resilience(state, "sandbox", "up")
    assert up.returncode == 0, up.stderr + up.stdout
    assert "Available after" in up.stdout
    status = resilience(state, "sandbox", "status")
    assert status.returncode == 0
    assert "deployment session-state-service: 3/3 available" in status.stdout
    assert status.stdout.count("2/2 Ready") == 3
    env = resilience(state, "sandbox", "env")
    assert f"export KUBECONFIG={state / 'kubeconfig'}" in env.stdout
    exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.")
    assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "us-west-2"
    assert exports["AWS_ACCESS_KEY_ID"] and exports["AWS_SECRET_ACCESS_KEY"]
    processes = started_processes(state)
    # the daemon, three pods, PostgreSQL, Redis and nginx
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert names.count("sandbox.images.session_state") == 3, names
    assert "postgres" in names and "redis-server" in names and "nginx" in names, names
    down = resilience(state, "sandbox", "down")
    assert down.returncode == 0
    assert gone(processes)
    assert resilience(state, "sandbox", "status").returncode == 3
    env_after = resilience(state, "sandbox", "env")
    assert env_after.returncode == 2
    assert env_after.stderr.count("\n") == 1 and "not running" in env_after.stderr


def test_down_cleans_up_after_a_killed_daemon(state: Path) -> None:
    assert resilience(state, "sandbox", "up").returncode == 0
    processes = started_processes(state)
    pid = json.loads((state / "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    down = resilience(state, "sandbox", "down")
    assert down.returncode == 0
    assert gone(processes)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["sandbox", "up", "--timeout", "-1"], "--timeout must be positive", id="timeout"
        ),
        pytest.param(
            ["sandbox", "up", "--hpa-sync-period", "0"],
            "--hpa-sync-period must be positive",
            id="flag-not-positive",
        ),
        pytest.param(
            ["sandbox", "up", "--sync-rate-limit", "-0.3"],
            "--sync-rate-limit must be positive",
            id="rate-not-positive",
        ),
        pytest.param(["sandbox", "launch"], "invalid choice: 'launch'", id="unknown-action"),
        pytest.param(
            ["sandbox", "up", "--timeout", "soon"], "invalid float value", id="not-a-number"
        ),
    ],
)
def test_cli_mistakes_get_one_line_and_exit_2(state: Path, args: list[str], message: str) -> None:
    completed = resilience(state, *args, timeout=60)
    assert completed.returncode == 2
    assert message in completed.stderr and completed.stderr.count("\n") == 1, completed.stderr


def test_control_plane_flags_reach_the_daemon(state: Path) -> None:
    up = resilience(
        state,
        "sandbox",
        "up",
        "--no-apply",
        "--node-monitor-grace-period",
        "12",
        "--hpa-sync-period",
        "4",
        "--default-unreachable-toleration-seconds",
        "7",
        "--sync-rate-limit",
        "2",
    )
    assert up.returncode == 0, up.stderr
    pid = json.loads((state / "state.json").read_text())["pid"]
    cmdline = psutil.Process(pid).cmdline()
    assert cmdline[cmdline.index("--node-monitor-grace-period") + 1] == "12.0"
    assert cmdline[cmdline.index("--sync-rate-limit") + 1] == "2.0"
    assert cmdline[cmdline.index("--hpa-sync-period") + 1] == "4.0"
    api = config.new_client_from_config(config_file=str(state / "kubeconfig"))
    pod = client.CoreV1Api(api).create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "tolerant"},
            "spec": {"containers": [{"name": "c", "image": "sandbox.local/virtual:latest"}]},
        },
    )
    seconds = {t.key: t.toleration_seconds for t in pod.spec.tolerations}
    assert seconds == {"node.kubernetes.io/not-ready": 7, "node.kubernetes.io/unreachable": 7}
