"""Where a game day runs: the sandbox (started when none runs) or a kube context.

With no `--kube-context` the target is the local sandbox: the running one when
there is one (`resilience sandbox status`), otherwise one started here with
`resilience sandbox up` and node life cycle flags shortened the way an operator
shortens them on a test cluster, and stopped again at the end. Its exports
(`resilience sandbox env`) are all the steps get: KUBECONFIG, the ingress URL, the
AWS endpoint. With a context, the environment already says where AWS and the
ingress are, and the production interlock asks for the context name typed back.

The description written into reports names the context, server and namespace,
never a credential (`resilience.targets.cluster.Target` holds none).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from resilience.errors import InvalidInputError
from resilience.safety.refusals import InterlockRefused, SafetySettings
from resilience.targets.cluster import Target, check_reachable, load_target

INGRESS_VARIABLE = "HARMONYFLOW_INGRESS_URL"
SANDBOX_FLAGS = (
    "--node-monitor-grace-period",
    "20",
    "--default-unreachable-toleration-seconds",
    "10",
    "--hpa-sync-period",
    "5",
    # Prometheus and Alertmanager: the report lists the alerts that fired per window.
    "--with",
    "monitoring",
    # The broker cluster: the standard day stops one of its nodes (about 18 s to start).
    "--with",
    "rabbitmq",
)


@dataclass(frozen=True)
class GamedayTarget:
    target: Target
    ingress_url: str
    exports: Mapping[str, str] = field(default_factory=dict)  # env the steps get
    kube_context: str | None = None  # passed on to `chaos run` (None: the kubeconfig's current)
    allow_production: str | None = None
    sandbox_started: bool = False

    def api_client(self) -> client.ApiClient:
        return self.target.api_client(retries=3)

    def describe(self) -> dict[str, Any]:
        """For the report: where, without credentials."""
        return {
            "kind": "sandbox" if self.kube_context is None else "kube-context",
            "context": self.target.context,
            "cluster": self.target.cluster,
            "server": self.target.server,
            "namespace": self.target.namespace,
            "ingress": self.ingress_url,
            "aws_endpoint": self.target.aws.endpoint_url,
            "aws_region": self.target.aws.region,
            "sandbox_started_by_gameday": self.sandbox_started,
        }


@contextmanager
def gameday_target(
    kube_context: str | None, allow_production: str | None, log: Any = print
) -> Iterator[GamedayTarget]:
    """The target for the day; a sandbox started here is stopped on the way out."""
    if kube_context is not None:
        yield _context_target(kube_context, allow_production)
        return
    from resilience import sandbox_cli  # noqa: PLC0415 - only this path needs the sandbox
    from resilience.targets.sandbox import (  # noqa: PLC0415
        parse_exports,
        sandbox_command,
        sandbox_down,
        sandbox_up,
    )

    # as `resilience sandbox` finds it: $HARMONYFLOW_SANDBOX_DIR, else ./.sandbox
    directory = Path(os.environ.get("HARMONYFLOW_SANDBOX_DIR") or ".sandbox").resolve()
    if sandbox_cli.running_sandbox(directory) is not None:
        env = subprocess.run(
            sandbox_command(directory, "env"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        yield _sandbox_target(parse_exports(env.stdout), started=False)
        return
    log(
        f"gameday: starting the sandbox in {directory} "
        f"(resilience sandbox up {' '.join(SANDBOX_FLAGS)})"
    )
    session = sandbox_up(directory, SANDBOX_FLAGS)
    try:
        yield _sandbox_target(dict(session.exports), started=True)
    finally:
        log("gameday: stopping the sandbox it started")
        sandbox_down(directory)


def _sandbox_target(exports: Mapping[str, str], started: bool) -> GamedayTarget:
    if "KUBECONFIG" not in exports or INGRESS_VARIABLE not in exports:
        raise InvalidInputError("the sandbox runs but `resilience sandbox env` printed no exports")
    aws = {k: v for k, v in exports.items() if k.startswith("AWS_")}
    target = load_target(exports["KUBECONFIG"], env=aws)
    check_reachable(target)
    return GamedayTarget(target, exports[INGRESS_VARIABLE], dict(exports), None, None, started)


def _context_target(context: str, allow_production: str | None) -> GamedayTarget:
    target = load_target(context=context)
    settings = SafetySettings(
        allow_production=allow_production is not None, confirmation=allow_production
    )
    try:
        target.check_safety(settings)
    except InterlockRefused as refusal:
        raise InvalidInputError(
            f"{refusal} (with this command: --allow-production {context})"
        ) from None
    ingress = os.environ.get(INGRESS_VARIABLE, "")
    if not ingress:
        raise InvalidInputError(
            f"--kube-context {context}: set {INGRESS_VARIABLE} to the service's base URL"
        )
    check_reachable(target)
    exports = {"KUBECONFIG": str(target.kubeconfig), INGRESS_VARIABLE: ingress}
    return GamedayTarget(target, ingress.rstrip("/"), exports, context, allow_production)


def step_environment(
    target: GamedayTarget, reports_dir: Path, recovery_journal: Path
) -> dict[str, str]:
    """The environment of a `chaos run` step and of `resilience recover`."""
    return {
        **os.environ,
        **target.exports,
        "HARMONYFLOW_REPORTS_DIR": str(reports_dir),
        "HARMONYFLOW_RECOVERY_JOURNAL": str(recovery_journal),
        "PYTHONUNBUFFERED": "1",
    }
