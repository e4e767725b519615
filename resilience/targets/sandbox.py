"""The sandbox as the suites' default target, started the way users start it.

`pytest -m resilience` with no target options runs `resilience sandbox up` in a
state directory of its own, reads `resilience sandbox env`, and runs
`resilience sandbox down` at the end. Through the CLI, as subprocesses: the
suites never import `sandbox` (import-linter contract), and the path tested is
the path users take. Every call is bounded; a `down` always follows an `up`,
also when the `up` failed or was interrupted half-way.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience.errors import ResilienceError
from resilience.paths import PROJECT_ROOT

UP_TIMEOUT_SECONDS = 240.0
DOWN_TIMEOUT_SECONDS = 90.0
ENV_TIMEOUT_SECONDS = 30.0
SERVICE_VARIABLES = (
    "PROMETHEUS_URL",
    "ALERTMANAGER_URL",
    "HARMONYFLOW_AMQP_URLS",
    "HARMONYFLOW_INGRESS_ERROR_LOG",  # what a suite reads of the ingress (test_ws_storm)
)
INGRESS_VARIABLE = "HARMONYFLOW_INGRESS_URL"
SANDBOX_CONTEXT = "harmonyflow-sandbox"  # the context of the kubeconfig `sandbox up` writes


class SandboxStartError(ResilienceError):
    """`resilience sandbox up` failed; the message carries its last lines."""


@dataclass(frozen=True)
class SandboxSession:
    """A running sandbox: its state directory and the exports `sandbox env` printed."""

    state_dir: Path
    exports: Mapping[str, str]

    @property
    def kubeconfig(self) -> Path:
        return Path(self.exports["KUBECONFIG"])

    @property
    def ingress_url(self) -> str:
        return self.exports.get(INGRESS_VARIABLE, "")

    @property
    def service_env(self) -> dict[str, str]:
        """The AWS settings and the endpoints of the optional parts (Prometheus,
        Alertmanager, RabbitMQ) the clients need besides the kubeconfig."""
        return {
            k: v for k, v in self.exports.items() if k.startswith("AWS_") or k in SERVICE_VARIABLES
        }


def suite_command(session: SandboxSession, node: str, reports_dir: Path) -> list[str]:
    """`pytest <node>` against a running sandbox through `--kube-context`, the path staging
    takes (kubeconfig context, interlocks, AWS from the environment, `--base-url`); run it
    with `session.service_env` in the environment."""
    return [
        sys.executable,
        "-m",
        "pytest",
        node,
        "--kube-context",
        SANDBOX_CONTEXT,
        "--kubeconfig",
        str(session.kubeconfig),
        "--base-url",
        session.ingress_url,
        "--reports-dir",
        str(reports_dir),
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
    ]


def parse_exports(text: str) -> dict[str, str]:
    """`export NAME=value` lines into a mapping; other lines are ignored.

    >>> parse_exports("export KUBECONFIG=/tmp/k\\nnoise\\nexport AWS_REGION=us-west-2\\n")
    {'KUBECONFIG': '/tmp/k', 'AWS_REGION': 'us-west-2'}
    """
    exports = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            exports[name.strip()] = value.strip()
    return exports


def sandbox_command(state_dir: Path, action: str, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "resilience.cli",
        "sandbox",
        action,
        "--state-dir",
        str(state_dir),
        *flags,
    ]


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def requested_extras(items: Iterable[pytest.Item]) -> tuple[str, ...]:
    """The optional sandbox parts (RabbitMQ, monitoring) that `items` ask for with
    `@pytest.mark.sandbox_with(...)`: a sandbox starts only what the selected tests need."""
    return tuple(
        sorted(
            {
                str(extra)
                for item in items
                for marker in item.iter_markers("sandbox_with")
                for extra in marker.args
            }
        )
    )


def with_flags(extras: Iterable[str]) -> list[str]:
    """`resilience sandbox up` flags for the extras: --with NAME for each."""
    return [flag for extra in extras for flag in ("--with", extra)]


def sandbox_up(
    state_dir: Path, flags: Sequence[str] = (), timeout: float = UP_TIMEOUT_SECONDS
) -> SandboxSession:
    """Start a sandbox and read its exports. On any failure it is stopped again.

    The caller must still call `sandbox_down` in a `finally` (an interrupt can
    arrive after this returns).
    """
    try:
        up = _run(sandbox_command(state_dir, "up", *flags), timeout)
        if up.returncode != 0:
            tail = " | ".join((up.stderr + up.stdout).strip().splitlines()[-5:])
            raise SandboxStartError(f"resilience sandbox up failed (exit {up.returncode}): {tail}")
        env = _run(sandbox_command(state_dir, "env"), ENV_TIMEOUT_SECONDS)
        exports = parse_exports(env.stdout)
        if env.returncode != 0 or "KUBECONFIG" not in exports:
            raise SandboxStartError(f"resilience sandbox env failed: {env.stderr.strip()}")
    except subprocess.TimeoutExpired as error:
        sandbox_down(state_dir)
        raise SandboxStartError(
            f"resilience sandbox up did not finish within {timeout:.0f}s"
        ) from error
    except BaseException:
        sandbox_down(state_dir)
        raise
    return SandboxSession(state_dir, exports)


def sandbox_down(state_dir: Path, timeout: float = DOWN_TIMEOUT_SECONDS) -> str:
    """Stop the sandbox and everything it started; returns what `down` printed."""
    try:
        down = _run(sandbox_command(state_dir, "down"), timeout)
    except subprocess.TimeoutExpired:
        return f"resilience sandbox down did not finish within {timeout:.0f}s"
    return (down.stdout + down.stderr).strip()


def sandbox_running(state_dir: Path) -> bool:
    """`resilience sandbox status` exits 0 while it runs, 3 when it does not."""
    try:
        status = _run(sandbox_command(state_dir, "status"), ENV_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return True  # it answers nothing: treat as still there
    return status.returncode == 0
