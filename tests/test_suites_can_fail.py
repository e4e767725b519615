"""Every resilience assertion can fail: the suites run against a seeded fault must fail,
naming the violated limit and the observed value.

How a twin injects its fault: a pre-step through the Kubernetes API (the same
calls an operator's mistake would make) on a sandbox of this module's own,
then the suite module runs as a pytest subprocess against that sandbox with
`--kube-context` -- which also exercises the real-cluster target path (kubeconfig
context, interlocks, AWS from the environment, --base-url). After each twin the
sandbox is put back with `kubectl apply -k deploy/overlays/sandbox`.

Three twins run in CI (one per mechanism: observed rollout limits, live
configuration, observed disruption budget); the longer ones are `slow`, among them
HPA maxReplicas lowered below what the load needs and a release without the zone
spread (the spread never comes back after an AZ drain). The twins shorten the
suites' load windows to a few seconds (HARMONYFLOW_LOAD_WINDOW_SECONDS): they
judge the seeded fault, not the load; the load's own verdicts are proven able to
fail in tests/test_traffic.py (a sequence gap on a seeded loopback server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from resilience.targets.live import terminating_pods
from resilience.targets.sandbox import (
    SANDBOX_CONTEXT,
    SandboxSession,
    suite_command,
)
from tests.builders import REPO_ROOT
from tests.cli import run_kubectl
from tests.live import only_pods_of, started
from tests.sandbox.cluster_harness import wait_for

NAMESPACE = "harmonyflow"
DEPLOYMENT = "session-state-service"
HPA = "session-state-service-hpa"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUITE_TIMEOUT_SECONDS = 600
# Seconds of load before and after each fault: the twins judge the seeded fault, not the load.
TWIN_LOAD_WINDOW = "3"


@pytest.fixture(scope="module")
def twin_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxSession]:
    """A whole sandbox (tests/live.py); the twins need only its session, as the suites do."""
    yield from (live.session for live in started(tmp_path_factory.mktemp("twins") / "sandbox"))


@pytest.fixture
def api(twin_sandbox: SandboxSession) -> client.ApiClient:
    made: client.ApiClient = config.new_client_from_config(config_file=str(twin_sandbox.kubeconfig))
    return made


def kubectl(session: SandboxSession, *args: str, timeout: float = 240) -> str:
    env = {**os.environ, "KUBECACHEDIR": str(session.state_dir / "kubecache")}
    return run_kubectl(
        "--kubeconfig", str(session.kubeconfig), *args, env=env, timeout=timeout
    ).stdout


@pytest.fixture
def restored(twin_sandbox: SandboxSession) -> Iterator[None]:
    """After the twin: the sandbox overlay applied again and the rollout finished."""
    yield
    kubectl(twin_sandbox, "apply", "-k", str(REPO_ROOT / "deploy" / "overlays" / "sandbox"))
    kubectl(
        twin_sandbox,
        "rollout",
        "status",
        f"deployment/{DEPLOYMENT}",
        "-n",
        NAMESPACE,
        "--timeout=180s",
        timeout=200,
    )


def run_suite(
    session: SandboxSession, node: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The suite test against the running sandbox, as staging runs it."""
    return subprocess.run(
        suite_command(session, node, tmp_path / "reports"),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={
            **os.environ,
            **session.service_env,
            "HARMONYFLOW_LOAD_WINDOW_SECONDS": TWIN_LOAD_WINDOW,
        },
        timeout=SUITE_TIMEOUT_SECONDS,
        check=False,
    )


def patch_deployment(api: client.ApiClient, body: object) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment(DEPLOYMENT, NAMESPACE, body)


def container_patch(**fields: object) -> dict[str, object]:
    return {"spec": {"template": {"spec": {"containers": [{"name": DEPLOYMENT, **fields}]}}}}


def assert_fails_naming(run: subprocess.CompletedProcess[str], *phrases: str) -> None:
    output = run.stdout + run.stderr
    assert run.returncode == 1, f"the suite did not fail (exit {run.returncode}):\n{output[-3000:]}"
    missing = [p for p in phrases if p not in output]
    assert not missing, f"the failure does not name {missing}:\n{output[-3000:]}"


Inject = Callable[[client.ApiClient, SandboxSession], None]


def max_unavailable_3(api: client.ApiClient, session: SandboxSession) -> None:
    patch_deployment(api, {"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 3}}}})


def readiness_on_liveness_path(api: client.ApiClient, session: SandboxSession) -> None:
    patch_deployment(
        api, container_patch(readinessProbe={"httpGet": {"path": "/health/live", "port": "http"}})
    )


def pdb_removed(api: client.ApiClient, session: SandboxSession) -> None:
    client.PolicyV1Api(api).delete_namespaced_pod_disruption_budget(DEPLOYMENT, NAMESPACE)


def remove_from_deployment(session: SandboxSession, path: str) -> None:
    """A JSON-patch removal, as `kubectl patch --type=json` sends it."""
    operation = json.dumps([{"op": "remove", "path": path}])
    patch = ["patch", f"deployment/{DEPLOYMENT}", "-n", NAMESPACE, "--type=json", "-p", operation]
    kubectl(session, *patch)


def no_liveness_probe(api: client.ApiClient, session: SandboxSession) -> None:
    remove_from_deployment(session, "/spec/template/spec/containers/0/livenessProbe")


def zone_spread_removed(api: client.ApiClient, session: SandboxSession) -> None:
    """A release without the zone spread constraint, started one pod per zone.

    The rollout that drops the constraint may leave two pods in a zone (the scheduler's
    system defaults only prefer the emptier one); a pod of the fullest zone is deleted
    until the spread is even, so that the drain, not the injection, makes the skew.
    """
    remove_from_deployment(session, "/spec/template/spec/topologySpreadConstraints")
    core = client.CoreV1Api(api)
    for _ in range(REBALANCE_ATTEMPTS):
        kubectl(session, "rollout", "status", f"deployment/{DEPLOYMENT}", "-n", NAMESPACE)
        wait_for(lambda: not terminating_pods(service_pods(api)), 60, "the old pods to be gone")
        by_zone = pods_by_zone(api)
        counts = [len(names) for names in by_zone.values()]
        if max(counts) - min(counts) <= 1:
            return
        fullest = max(by_zone, key=lambda zone: len(by_zone[zone]))
        core.delete_namespaced_pod(by_zone[fullest][0], NAMESPACE)
    raise AssertionError(f"the replicas did not spread over the zones: {pods_by_zone(api)}")


REBALANCE_ATTEMPTS = 5


def service_pods(api: client.ApiClient) -> list[Any]:
    return (
        client.CoreV1Api(api)
        .list_namespaced_pod(NAMESPACE, label_selector=f"app={DEPLOYMENT}")
        .items
    )


def pods_by_zone(api: client.ApiClient) -> dict[str, list[str]]:
    """Every zone (empty ones too) with the names of its running pods."""
    nodes = client.CoreV1Api(api).list_node().items
    zone_of_node = {n.metadata.name: str(n.metadata.labels[ZONE_LABEL]) for n in nodes}
    by_zone: dict[str, list[str]] = {zone: [] for zone in zone_of_node.values()}
    for pod in service_pods(api):
        if pod.metadata.deletion_timestamp is None and pod.spec.node_name in zone_of_node:
            by_zone[zone_of_node[pod.spec.node_name]].append(pod.metadata.name)
    return by_zone


def drops_writes(api: client.ApiClient, session: SandboxSession) -> None:
    patch_deployment(api, container_patch(image="ghcr.io/harmonyflow/session-state:drops-writes"))


def every_replica_on(tag: str) -> Inject:
    """Every replica on the seeded release `tag`, so that whichever pod the fault meets
    runs it (the pod killed, the pods whose database calls hang)."""

    def inject(api: client.ApiClient, session: SandboxSession) -> None:
        image = f"ghcr.io/harmonyflow/session-state:{tag}"
        patch_deployment(api, container_patch(image=image))
        wait_for(
            lambda: len(pods := service_pods(api)) == 3 and only_pods_of(pods, image),
            180,
            f"only pods of {image}",
        )

    return inject


def hpa_max_3(api: client.ApiClient, session: SandboxSession) -> None:
    client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
        HPA, NAMESPACE, {"spec": {"maxReplicas": 3}}
    )


def ingress_allow_removed(api: client.ApiClient, session: SandboxSession) -> None:
    client.NetworkingV1Api(api).delete_namespaced_network_policy(
        "allow-session-state-ingress", NAMESPACE
    )


def egress_cidr_widened(api: client.ApiClient, session: SandboxSession) -> None:
    """The databases' ipBlock opened to every address, as a hurried fix would."""
    operation = [
        {"op": "replace", "path": "/spec/egress/1/to/0/ipBlock/cidr", "value": "0.0.0.0/0"}
    ]
    kubectl(
        session,
        *("patch", "networkpolicy/allow-session-state-egress", "-n", NAMESPACE),
        *("--type=json", "-p", json.dumps(operation)),
    )


TWINS = [
    pytest.param(
        max_unavailable_3,
        "suites/test_rolling_update.py::test_rollout_stays_within_surge_and_availability_limits",
        ("available pods at", "fewer than replicas 3 - maxUnavailable 1 = 2"),
        id="maxUnavailable-3",
    ),
    pytest.param(
        readiness_on_liveness_path,
        "suites/test_probes.py::test_live_probe_configuration_equals_the_intended_one",
        (
            "readinessProbe.httpGet.path is /health/live on the cluster",
            "deploy/base says /health/ready",
        ),
        id="readiness-on-liveness-path",
    ),
    pytest.param(
        ingress_allow_removed,
        "suites/test_network_policies.py::test_live_network_policies_are_deploy_bases",
        (
            "NetworkPolicy harmonyflow/allow-session-state-ingress: (the object) is absent "
            "on the cluster, deploy/base says present",
        ),
        id="networkpolicy-removed",
    ),
    pytest.param(
        egress_cidr_widened,
        "suites/test_network_policies.py::test_live_network_policies_are_deploy_bases",
        (
            "NetworkPolicy harmonyflow/allow-session-state-egress: spec.egress[1].to[0]"
            ".ipBlock.cidr is 0.0.0.0/0 on the cluster, deploy/base says 10.0.0.0/16",
        ),
        id="networkpolicy-egress-widened",
    ),
    pytest.param(
        pdb_removed,
        "suites/test_az_drain.py::test_zone_drain_holds_the_budget_and_the_spread_returns_after_uncordon",
        # "left N": an earlier twin's rollout may leave the zones uneven
        ("Ready pods, fewer than minAvailable 2",),
        id="pdb-removed",
    ),
    pytest.param(
        zone_spread_removed,
        "suites/test_az_drain.py::test_zone_drain_holds_the_budget_and_the_spread_returns_after_uncordon",
        ("never back to 3 Ready pods spread over zones within maxSkew 1", "(skew "),
        id="zone-spread-removed",
        marks=pytest.mark.slow,  # 4 min: the spread never returns; the suite test runs in CI
    ),
    pytest.param(
        no_liveness_probe,
        "suites/test_probes.py::test_hung_container_leaves_the_endpoints_and_is_restarted_by_liveness",
        ("no restart after the liveness failure began", "failureThreshold 3 + timeout 1s = 31s"),
        id="hang-without-liveness",
        marks=pytest.mark.slow,  # 80 s; its suite test runs in CI
    ),
    pytest.param(
        drops_writes,
        "suites/test_pod_kill.py::test_pod_kill_recovers_in_time_without_losing_acknowledged_writes",
        ("lost acknowledged writes", "acknowledged version"),
        id="drops-writes",
        # Slow again: its 3 s load windows sometimes show the fault as stale 404s (the
        # error budget fails first) instead of a lost write. The ledger's own twins in CI:
        # tests/sandbox/live/test_sandbox_service.py and test_session_state_lifecycle.py.
        marks=pytest.mark.slow,
    ),
    pytest.param(
        every_replica_on("abrupt-exit"),
        "suites/test_pod_kill.py::test_pod_kill_recovers_in_time_without_losing_acknowledged_writes",
        ("load SLO websocket-closes-graceful failed", "no close frame (1006)"),
        id="abrupt-exit",
    ),
    pytest.param(
        readiness_on_liveness_path,
        "suites/test_probes.py::test_losing_the_database_takes_pods_out_of_the_endpoints_without_restarts",
        ("no pod left the endpoints during", "database outage"),
        id="readiness-on-liveness-path-db-outage",
        marks=pytest.mark.slow,  # 80 s; its suite test runs in CI
    ),
    pytest.param(
        every_replica_on("no-request-timeout"),
        "suites/test_rds_failover.py::test_forced_failover_loses_no_committed_write_and_restarts_no_pod",
        ("load SLO every-request-answered failed", "limit <= 0"),
        id="no-request-timeout",
        marks=pytest.mark.slow,  # 2 min (the failover's real minute); its suite test runs in CI
    ),
    pytest.param(
        hpa_max_3,
        "suites/test_hpa.py::test_hpa_scales_up_within_its_limits_under_load_and_back_to_min",
        (
            "maxReplicas is 3 on the cluster (deploy/base says 10)",
            "the load needs",
            "desiredReplicas stays at 3",
        ),
        id="hpa-max-below-the-need",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.timeout(SUITE_TIMEOUT_SECONDS + 300)
@pytest.mark.parametrize(("inject", "node", "phrases"), TWINS)
def test_seeded_fault_fails_the_suite_naming_the_limit(
    twin_sandbox: SandboxSession,
    api: client.ApiClient,
    restored: None,
    tmp_path: Path,
    inject: Inject,
    node: str,
    phrases: tuple[str, ...],
) -> None:
    inject(api, twin_sandbox)
    assert_fails_naming(run_suite(twin_sandbox, node, tmp_path), *phrases)


# ---- bad input: a clear failure, never a hang ----


def kubeconfig_for(tmp_path: Path, context: str, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{}}}}]
contexts: [{{name: {context}, context: {{cluster: c, user: u, namespace: harmonyflow}}}}]
current-context: {context}
"""
    )
    return path


def run_against(
    kubeconfig: Path, context: str, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/test_pod_kill.py",
            "--kube-context",
            context,
            "--kubeconfig",
            str(kubeconfig),
            "--reports-dir",
            str(tmp_path / "reports"),
            "-p",
            "no:cacheprovider",
            "-q",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(150)
def test_an_unreachable_cluster_fails_at_once_naming_the_url(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(tmp_path, "staging", "http://127.0.0.1:9")
    run = run_against(kubeconfig, "staging", tmp_path)
    assert_fails_naming(run, "cannot reach the Kubernetes API at http://127.0.0.1:9")


@pytest.mark.timeout(150)
def test_a_production_context_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(tmp_path, "eks-prod-us-west-2", "http://127.0.0.1:9")
    run = run_against(kubeconfig, "eks-prod-us-west-2", tmp_path)
    assert_fails_naming(run, "looks like production", "eks-prod-us-west-2")


@pytest.mark.timeout(150)
def test_a_missing_namespace_fails_naming_it(twin_sandbox: SandboxSession, tmp_path: Path) -> None:
    run = run_against(
        twin_sandbox.kubeconfig, SANDBOX_CONTEXT, tmp_path, "--namespace", "harmonyflow-staging"
    )
    assert_fails_naming(run, "namespace 'harmonyflow-staging' does not exist")
