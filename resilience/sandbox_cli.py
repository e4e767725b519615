"""`resilience sandbox up | down | status | env`: the local staging cluster.

The only module of `resilience` allowed to import `sandbox` (import-linter
contract); everything else reaches the sandbox through its kubeconfig.
"""

from __future__ import annotations

import argparse
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client, config

from resilience.errors import InvalidInputError, ResilienceError
from sandbox import cluster
from sandbox.aws.inventory import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, REGION
from sandbox.infra.extras import EXTRAS, parse_extras
from sandbox.infra.nginx_config import NginxPaths
from sandbox.state import ENV_VAR, kubeconfig_path, state_dir

NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"


def add_commands(commands: Any) -> None:
    """Add `sandbox` and its actions to the `resilience` sub-command parser."""
    sandbox = commands.add_parser("sandbox", help="the local staging cluster")
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True)
    for name, handler, text in (
        ("up", _up, "boot the sandbox, apply deploy/overlays/sandbox, wait until Available"),
        ("down", _down, "stop the sandbox and every process it started"),
        ("status", _status, "show whether the sandbox runs, its nodes and the deployment"),
        ("env", _env, "print the exports clients need (KUBECONFIG, ...)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--state-dir", default=None, help=f"default: ${ENV_VAR} or .sandbox")
        action.set_defaults(run=handler)
        if name == "up":
            action.add_argument(
                "--timeout",
                type=float,
                default=180.0,
                help="seconds to wait for the deployment (default 180)",
            )
            action.add_argument(
                "--no-apply", action="store_true", help="boot the control plane only"
            )
            action.add_argument(
                "--with",
                dest="extras",
                action="append",
                default=[],
                metavar="|".join(EXTRAS),
                help="also run an optional part of the seed (repeatable)",
            )
            upstream = "the upstream flag of that name"
            rds = "how long the RDS instance's {} takes (README, 'The sandbox')"
            for flag, default, kind, metavar, meaning in (
                ("--node-monitor-grace-period", 50, float, "SECONDS", upstream),
                ("--hpa-sync-period", 15, float, "SECONDS", upstream),
                ("--default-unreachable-toleration-seconds", 300, int, "SECONDS", upstream),
                ("--sync-rate-limit", 0.3, float, "PER_SECOND", upstream),
                ("--rds-failover-seconds", 60, float, "SECONDS", rds.format("failover")),
                ("--rds-reboot-seconds", 60, float, "SECONDS", rds.format("reboot")),
                ("--rds-stop-seconds", 30, float, "SECONDS", rds.format("stop")),
                ("--rds-start-seconds", 60, float, "SECONDS", rds.format("start")),
            ):
                action.add_argument(
                    flag,
                    type=kind,
                    default=None,
                    metavar=metavar,
                    help=f"{meaning} (default {default})",
                )
            action.add_argument(
                "--rds-failover-connections",
                choices=["blackhole", "reset"],
                default=None,
                help="what the failed primary's clients see: silence (default) or a RST",
            )


def _up(arguments: argparse.Namespace) -> int:
    if arguments.timeout <= 0:
        raise InvalidInputError(f"--timeout must be positive, got {arguments.timeout}")
    directory = state_dir(arguments.state_dir)
    began = time.monotonic()
    try:
        state = cluster.start_daemon(directory, _daemon_flags(arguments))
        print(f"sandbox: API server {state.api_url}")
        if arguments.no_apply:
            return 0
        cluster.apply_overlay(directory)
        print("sandbox: applied deploy/overlays/sandbox")
        _wait_available(directory, arguments.timeout)
        _wait_ingress(state.ingress_url, max(1.0, arguments.timeout - (time.monotonic() - began)))
    except cluster.SandboxError as error:
        raise ResilienceError(str(error)) from None
    print(f"sandbox: deployment {DEPLOYMENT} Available after {time.monotonic() - began:.1f}s")
    print(f"sandbox: export KUBECONFIG={kubeconfig_path(directory)}")
    return 0


def _daemon_flags(arguments: argparse.Namespace) -> list[str]:
    flags = []
    for name in (
        "node_monitor_grace_period",
        "hpa_sync_period",
        "default_unreachable_toleration_seconds",
        "sync_rate_limit",
        "rds_failover_seconds",
        "rds_reboot_seconds",
        "rds_stop_seconds",
        "rds_start_seconds",
    ):
        value = getattr(arguments, name)
        if value is not None:
            if value <= 0:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be positive, got {value}")
            flags += [f"--{name.replace('_', '-')}", str(value)]
    if arguments.rds_failover_connections is not None:
        flags += ["--rds-failover-connections", arguments.rds_failover_connections]
    try:
        extras = parse_extras(arguments.extras)
    except ValueError as error:
        raise InvalidInputError(f"--with: {error}") from None
    for extra in sorted(extras):
        flags += ["--with", extra]
    return flags


def _down(arguments: argparse.Namespace) -> int:
    directory = state_dir(arguments.state_dir)
    for note in cluster.stop(directory):
        print(f"sandbox: {note}")
    print("sandbox: stopped")
    return 0


def _status(arguments: argparse.Namespace) -> int:
    directory = state_dir(arguments.state_dir)
    state = cluster.running_state(directory)
    if state is None:
        print("sandbox: not running")
        return 3
    print(f"sandbox: running (pid {state.pid}) at {state.api_url}")
    api = _api(directory)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ready: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for node in core.list_node(_request_timeout=10).items:
        labels = (node.metadata.labels if node.metadata else None) or {}
        zone = labels.get("topology.kubernetes.io/zone", "?")
        total[zone] += 1
        conditions = (node.status.conditions if node.status else None) or []
        ready[zone] += any(c.type == "Ready" and c.status == "True" for c in conditions)
    for zone in sorted(total):
        print(f"  nodes {zone}: {ready[zone]}/{total[zone]} Ready")
    deployments = apps.list_namespaced_deployment(NAMESPACE, _request_timeout=10).items
    for deployment in deployments:
        name = deployment.metadata.name if deployment.metadata else "?"
        print(f"  deployment {name}: {_available(deployment)}/{_desired(deployment)} available")
    return 0


def _env(arguments: argparse.Namespace) -> int:
    directory = state_dir(arguments.state_dir)
    state = cluster.running_state(directory)
    if state is None:
        raise InvalidInputError("the sandbox is not running; start it with: resilience sandbox up")
    print(f"export KUBECONFIG={kubeconfig_path(directory)}")
    print(f"export {ENV_VAR}={directory}")
    if state.ingress_url:
        print(f"export HARMONYFLOW_INGRESS_URL={state.ingress_url}")
        # what `kubectl logs` of the ingress controller shows on staging (suites/test_ws_storm.py)
        print(f"export HARMONYFLOW_INGRESS_ERROR_LOG={NginxPaths.under(directory).error_log}")
    if state.ingress_sources:
        print(f"export HARMONYFLOW_INGRESS_SOURCES={state.ingress_sources}")
    if state.aws_url:
        for name, value in aws_environment(state.aws_url).items():
            print(f"export {name}={value}")
    if state.amqp_urls:
        print(f"export HARMONYFLOW_AMQP_URLS={','.join(state.amqp_urls)}")
    if state.prometheus_url:
        print(f"export PROMETHEUS_URL={state.prometheus_url}")
    if state.alertmanager_url:
        print(f"export ALERTMANAGER_URL={state.alertmanager_url}")
    return 0


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """What boto3 and the aws CLI need to reach the sandbox's AWS endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
    }


def _api(directory: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig_path(directory))
    )
    return api


def _available(deployment: client.V1Deployment) -> int:
    return (deployment.status.available_replicas or 0) if deployment.status else 0


def _desired(deployment: client.V1Deployment) -> int:
    return (deployment.spec.replicas or 0) if deployment.spec else 0


def _condition(deployment: client.V1Deployment, kind: str) -> client.V1DeploymentCondition | None:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _wait_ingress(ingress_url: str, timeout: float) -> None:
    """Until nginx routes to the ready pods: the ingress syncs at most 0.3 times a second
    (--sync-rate-limit), so a Deployment can be Available up to 3.3 s before nginx knows.
    A GET of a session that does not exist answers 404 from a pod, 503 from nginx alone."""
    if not ingress_url:
        return
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{ingress_url}/api/v1/sessions/sandbox-up", timeout=5):
                return
        except urllib.error.HTTPError as error:
            status = error.code
            if status != 503:
                return
        except OSError:
            status = 0
        time.sleep(0.25)
    raise ResilienceError(
        f"the ingress {ingress_url} still answers {status or 'nothing'} after {timeout:.0f}s"
    )


def _wait_available(directory: Path, timeout: float) -> None:
    apps = client.AppsV1Api(_api(directory))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE, _request_timeout=10)
        available = _condition(deployment, "Available")
        progressing = _condition(deployment, "Progressing")
        if (
            available is not None
            and available.status == "True"
            and _available(deployment) >= _desired(deployment)
        ):
            return
        line = f"{_available(deployment)}/{_desired(deployment)} available"
        if line != last:
            print(f"sandbox: {DEPLOYMENT} {line}")
            last = line
        if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
            raise ResilienceError(f"{DEPLOYMENT}: {progressing.message}")
        time.sleep(0.5)
    raise ResilienceError(f"{DEPLOYMENT} not Available within {timeout:.0f}s ({last})")


def running_sandbox(explicit_dir: str | Path | None = None) -> tuple[str, Path] | None:
    """The running sandbox's ingress URL and kubeconfig, or None when none runs.

    For commands that target the sandbox by default (`resilience certify`) without
    importing `sandbox` themselves (the import-linter contract).
    """
    directory = state_dir(explicit_dir)
    state = cluster.running_state(directory)
    if state is None or not state.ingress_url:
        return None
    return state.ingress_url, kubeconfig_path(directory)
