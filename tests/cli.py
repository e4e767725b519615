"""The tests' one way to run the `resilience` command (and kubectl): as users run them.

`python -m resilience.cli` with the interpreter of the test run, from the checkout,
bounded, its output captured and its stdin closed (a command that asked for input would
otherwise wait for the test's terminal). Tests that must watch or interrupt a run start
`resilience_command(...)` with `subprocess.Popen` themselves. `run_kubectl` is the same
for kubectl, used by every harness (tests/live.py, the control-plane harnesses).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.builders import REPO_ROOT

TIMEOUT_SECONDS = 120.0


def resilience_command(*args: str) -> list[str]:
    """`resilience ARGS` as a command line of this interpreter.

    >>> resilience_command("chaos", "run")[1:]
    ['-m', 'resilience.cli', 'chaos', 'run']
    """
    return [sys.executable, "-m", "resilience.cli", *args]


def run_resilience(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    timeout: float = TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """`resilience ARGS` to its end; `env` is the whole environment (None: the test's)."""
    return subprocess.run(
        resilience_command(*args),
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def run_kubectl(
    *args: str, env: Mapping[str, str], timeout: float = TIMEOUT_SECONDS, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`kubectl ARGS` to its end, with `env` (its KUBECONFIG names the cluster); unless
    `check` is off, a non-zero exit fails the test, naming the command and its output."""
    completed = subprocess.run(
        ["kubectl", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({completed.returncode}): "
            f"{completed.stderr}{completed.stdout}"
        )
    return completed
