"""Boot and teardown of the whole sandbox, for `resilience sandbox up | down | status | env`.

The sandbox runs as one daemon process (`python -m sandbox serve`) in its own
session; the CLI that started it may exit or be killed. `down` stops the
daemon (SIGTERM, then SIGKILL after a bounded wait) and then kills any recorded
pod process still alive, so that nothing survives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox import processes
from sandbox.cni import podnetwork
from sandbox.infra import hostfaults
from sandbox.kube.kubelet.cgroups import remove_all_now, sandbox_id
from sandbox.state import (
    SandboxState,
    kubeconfig_path,
    pids_dir,
    read_state,
)

BOOT_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 45.0
REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_OVERLAY = REPO_ROOT / "deploy" / "overlays" / "sandbox"


class SandboxError(Exception):
    """The sandbox could not do what was asked; the message says why."""


@dataclass(frozen=True)
class DaemonRecord:
    pid: int
    started: str | None


def running_state(directory: Path) -> SandboxState | None:
    state = read_state(directory)
    if state is None or not processes.is_alive(state.pid, _recorded_start(directory)):
        return None
    return state


def start_daemon(directory: Path, extra_args: list[str] | None = None) -> SandboxState:
    """Start the daemon unless one is running; wait until it serves."""
    existing = running_state(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "state.json").unlink(missing_ok=True)
    log = (directory / "sandbox.log").open("ab")
    command = [sys.executable, "-m", "sandbox", "serve", "--state-dir", str(directory)]
    daemon = subprocess.Popen(
        command + (extra_args or []),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO_ROOT,
    )
    log.close()
    (directory / "daemon.pid").write_text(f"{daemon.pid} {processes.start_time(daemon.pid) or ''}")
    deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = read_state(directory)
        if state is not None and state.pid == daemon.pid:
            return state
        if daemon.poll() is not None:
            raise SandboxError(f"the sandbox daemon exited at start: {_log_tail(directory)}")
        time.sleep(0.1)
    stop(directory)
    raise SandboxError(f"the sandbox did not start within {BOOT_TIMEOUT_SECONDS:.0f}s")


def apply_overlay(directory: Path, overlay: Path = SANDBOX_OVERLAY, timeout: float = 120) -> None:
    """`kubectl apply -k` the sandbox overlay: the same path users take on a real cluster."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig_path(directory)),
        "KUBECACHEDIR": str(directory / "kubecache"),
    }
    try:
        completed = subprocess.run(
            ["kubectl", "apply", "-k", str(overlay)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SandboxError("kubectl not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise SandboxError(f"kubectl apply -k {overlay} took longer than {timeout:.0f}s") from None
    if completed.returncode != 0:
        raise SandboxError(f"kubectl apply -k {overlay} failed: {completed.stderr.strip()}")


def stop(directory: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> list[str]:
    """Stop the daemon and everything it started; report what had to be killed."""
    notes = []
    record = _daemon_record(directory)
    if record is not None and processes.is_alive(record.pid, record.started):
        processes.signal_if_same(record.pid, record.started, signal.SIGTERM)
        if not processes.wait_gone(record.pid, record.started, timeout):
            notes.append(f"daemon {record.pid} ignored SIGTERM for {timeout:.0f}s: killed")
            processes.kill_group(record.pid)
            processes.signal_if_same(record.pid, record.started, signal.SIGKILL)
            processes.wait_gone(record.pid, record.started, 5)
    leftovers = processes.kill_recorded(pids_dir(directory))
    if leftovers:
        notes.append(f"killed {len(leftovers)} leftover pod process(es)")
    if record is not None and (cgroups := remove_all_now(directory)):
        notes.append(f"removed {cgroups} pod cgroup(s) a crashed sandbox left")
    if record is not None and podnetwork.delete_now(sandbox_id(directory)):
        notes.append(
            "removed the pod network's nft table and iptables chain a crashed sandbox left"
        )
    # the table is one per machine, like the addresses: only a sandbox that ran here owns it
    if record is not None and hostfaults.delete_table_now():
        notes.append(f"removed the nft table {hostfaults.TABLE} a crashed sandbox left")
    for name in ("state.json", "daemon.pid"):
        (directory / name).unlink(missing_ok=True)
    return notes


def _daemon_record(directory: Path) -> DaemonRecord | None:
    try:
        pid_text, _, started = (directory / "daemon.pid").read_text().partition(" ")
        return DaemonRecord(int(pid_text), started.strip() or None)
    except (FileNotFoundError, ValueError):
        return None


def _recorded_start(directory: Path) -> str | None:
    record = _daemon_record(directory)
    return record.started if record else None


def _log_tail(directory: Path, lines: int = 5) -> str:
    try:
        text = (directory / "sandbox.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
