"""Prometheus and Alertmanager against a live sandbox control plane.

The first part uses the test harness's control plane (API server, controllers, six
kubelets; no backing services) with a Monitoring of its own on free loopback ports
(never the fixed 127.0.3.40/41 a full sandbox uses): Prometheus discovers the pods
from the EndpointSlices, scrapes the control plane, evaluates deploy/monitoring's
rules, and an availability drop below the PDB becomes a firing alert in Prometheus
and in Alertmanager. The harness's pods run `sandbox.local/testapp`, which has no
/metrics: their targets are discovered with the right labels and answer 404.

The last test starts a full sandbox `--with monitoring` (the reference service, RDS,
Redis): every pod target is up. It is slow; run it under `flock /tmp/hf-sandbox.lock`.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from sandbox.infra.monitoring import CONTROL_PLANE_JOB, PROMETHEUS_JOB, Monitoring
from sandbox.infra.nginx_process import free_port
from sandbox.infra.supervisor import Endpoint
from tests.builders import REPO_ROOT
from tests.live import NAMESPACE as LIVE_NAMESPACE
from tests.live import LiveSandbox, started
from tests.sandbox.cluster_harness import SandboxHarness, app_deployment, wait_for

DEPLOYMENT = "session-state-service"
DASHBOARD = REPO_ROOT / "deploy" / "monitoring" / "grafana" / "session-state.json"
ALERT = "SessionStateBelowDisruptionBudget"


def get_json(url: str, path: str, **query: str) -> Any:
    address = f"{url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with opener.open(address, timeout=10) as response:
        return json.loads(response.read())


def instant(url: str, query: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = get_json(url, "/api/v1/query", query=query)["data"]["result"]
    return result


def active_targets(url: str, job: str) -> list[dict[str, Any]]:
    targets = get_json(url, "/api/v1/targets", state="active")["data"]["activeTargets"]
    return [t for t in targets if t["labels"]["job"] == job]


def prometheus_alerts(url: str, name: str, namespace: str) -> list[dict[str, Any]]:
    alerts = get_json(url, "/api/v1/alerts")["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == name and a["labels"].get("namespace") == namespace
    ]


@pytest.fixture(scope="module")
def service(sandbox: SandboxHarness) -> Iterator[tuple[str, list[str]]]:
    """The service's Deployment (3 testapp replicas), Service and PDB in a fresh namespace.

    Like deploy/base, the Deployment requires one replica per zone (maxSkew 1,
    DoNotSchedule), which the zone labels of the scraped targets then show.
    """
    namespace = sandbox.new_namespace()
    api = sandbox.api_client()
    labels = {"app": DEPLOYMENT}
    deployment = app_deployment(DEPLOYMENT)
    deployment["spec"]["template"]["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": labels},
        }
    ]
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)
    client.CoreV1Api(api).create_namespaced_service(
        namespace,
        {
            "metadata": {"name": DEPLOYMENT, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080}]},
        },
    )
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        namespace,
        {
            "metadata": {"name": DEPLOYMENT},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": labels}},
        },
    )
    apps = client.AppsV1Api(api)
    wait_for(
        lambda: (
            apps.read_namespaced_deployment(DEPLOYMENT, namespace).status.available_replicas == 3
        ),
        60,
        "3 available replicas",
    )
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={DEPLOYMENT}")
    yield namespace, sorted(p.metadata.name for p in pods.items)


@pytest.fixture(scope="module")
def monitoring(
    sandbox: SandboxHarness, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitoring]:
    state = tmp_path_factory.mktemp("monitoring")
    started = sandbox.on_loop(
        lambda: Monitoring(
            state,
            sandbox.url,
            sandbox.kubeconfig,
            prometheus=Endpoint("127.0.0.1", free_port("127.0.0.1")),
            alertmanager=Endpoint("127.0.0.1", free_port("127.0.0.1")),
        )
    )
    sandbox.thread.run(started.start(), timeout=90)
    try:
        yield started
    finally:
        sandbox.thread.run(started.stop(), timeout=60)


def test_monitoring_starts_quickly_and_says_where_it_is(monitoring: Monitoring) -> None:
    assert monitoring.start_seconds is not None and monitoring.start_seconds < 30
    assert monitoring.prometheus_url.startswith("http://127.0.0.1:")
    assert (
        get_json(monitoring.alertmanager_url, "/api/v2/status")["cluster"]["status"] == "disabled"
    )


def test_prometheus_discovers_every_pod_with_its_labels(
    monitoring: Monitoring, service: tuple[str, list[str]]
) -> None:
    namespace, pods = service

    def discovered() -> list[dict[str, Any]]:
        targets = [
            t
            for t in active_targets(monitoring.prometheus_url, PROMETHEUS_JOB)
            if t["labels"].get("namespace") == namespace and t["health"] != "unknown"
        ]
        return targets if sorted(t["labels"]["pod"] for t in targets) == pods else []

    targets = wait_for(discovered, 60, f"scraped targets for {pods}", interval=1.0)
    for target in targets:
        labels = target["labels"]
        assert labels["instance"].endswith(":8080") and labels["instance"].startswith("127.0.2.")
        assert labels["node"].startswith("ip-127-0-1-") and labels["zone"].startswith("us-west-2")
        # testapp serves no /metrics: the scrape reached the pod and got its 404.
        assert "404" in target["lastError"], target
    assert len({t["labels"]["zone"] for t in targets}) == 3  # the spread constraint's doing


def test_the_control_plane_job_is_up_and_matches_the_deployment(
    sandbox: SandboxHarness, monitoring: Monitoring, service: tuple[str, list[str]]
) -> None:
    namespace, _ = service

    def up() -> bool:
        targets = active_targets(monitoring.prometheus_url, CONTROL_PLANE_JOB)
        return bool(targets) and all(t["health"] == "up" for t in targets)

    wait_for(up, 30, "the control plane target up", interval=1.0)
    status = client.AppsV1Api(sandbox.api_client()).read_namespaced_deployment(
        DEPLOYMENT, namespace
    )

    def available() -> list[dict[str, Any]]:
        return instant(
            monitoring.prometheus_url,
            f'kube_deployment_status_replicas_available{{namespace="{namespace}"}}',
        )

    [series] = wait_for(available, 30, "kube_deployment_status_replicas_available", interval=1.0)
    assert int(series["value"][1]) == status.status.available_replicas == 3
    [budget] = instant(
        monitoring.prometheus_url,
        f'kube_poddisruptionbudget_status_desired_healthy{{namespace="{namespace}"}}',
    )
    assert int(budget["value"][1]) == 2
    assert not prometheus_alerts(monitoring.prometheus_url, ALERT, namespace)


def test_too_few_ready_pods_fires_in_prometheus_and_reaches_alertmanager(
    sandbox: SandboxHarness, monitoring: Monitoring, service: tuple[str, list[str]]
) -> None:
    namespace, _ = service
    client.AppsV1Api(sandbox.api_client()).patch_namespaced_deployment_scale(
        DEPLOYMENT, namespace, {"spec": {"replicas": 1}}
    )
    began = time.monotonic()

    def firing() -> list[dict[str, Any]]:
        alerts = prometheus_alerts(monitoring.prometheus_url, ALERT, namespace)
        return [a for a in alerts if a["state"] == "firing"]

    # for: 30s, plus a scrape and an evaluation interval (5 s each), plus the rollout.
    [alert] = wait_for(firing, 90, f"{ALERT} firing in Prometheus", interval=1.0)
    assert time.monotonic() - began >= 30  # `for:` was honoured
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["deployment"] == DEPLOYMENT

    def in_alertmanager() -> list[dict[str, Any]]:
        alerts = get_json(monitoring.alertmanager_url, "/api/v2/alerts", active="true")
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == ALERT and a["labels"].get("namespace") == namespace
        ]

    [received] = wait_for(in_alertmanager, 30, f"{ALERT} in Alertmanager", interval=1.0)
    assert received["status"]["state"] == "active"
    assert received["annotations"]["summary"].startswith("session-state: only 1 available")


@pytest.fixture
def full_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSandbox]:
    """`resilience sandbox up --with monitoring` (fixed addresses: run under the flock)."""
    yield from started(tmp_path_factory.mktemp("full") / "sandbox", ["--with", "monitoring"])


@pytest.mark.slow
@pytest.mark.sandbox_with("monitoring")
def test_a_full_sandbox_with_monitoring_scrapes_every_pod(full_sandbox: LiveSandbox) -> None:
    """Every pod target of the reference service up, the control plane up, the RDS lag known.

    Starts the fixed-address sandbox: run under `flock /tmp/hf-sandbox.lock`.
    """
    live = full_sandbox
    prometheus = live.exports["PROMETHEUS_URL"]
    alertmanager = live.exports["ALERTMANAGER_URL"]
    assert prometheus == "http://127.0.3.40:9090" and alertmanager == "http://127.0.3.41:9093"
    pods = sorted(p.metadata.name for p in live.pods())

    def all_up() -> list[dict[str, Any]]:
        targets = [
            t
            for t in active_targets(prometheus, PROMETHEUS_JOB)
            if t["labels"].get("namespace") == LIVE_NAMESPACE
        ]
        healthy = [t for t in targets if t["health"] == "up"]
        return healthy if sorted(t["labels"]["pod"] for t in healthy) == pods else []

    targets = wait_for(all_up, 90, f"every pod target up ({pods})", interval=1.0)
    assert {t["labels"]["zone"] for t in targets} == {"us-west-2a", "us-west-2b", "us-west-2c"}
    [plane] = active_targets(prometheus, CONTROL_PLANE_JOB)
    assert plane["health"] == "up", plane

    def lag() -> list[dict[str, Any]]:
        return instant(prometheus, "pg_replication_lag_seconds")

    [series] = wait_for(lag, 60, "pg_replication_lag_seconds", interval=1.0)
    assert 0 <= float(series["value"][1]) < 5
    deployment = client.AppsV1Api(live.api).read_namespaced_deployment(DEPLOYMENT, LIVE_NAMESPACE)
    query = (
        f'kube_deployment_status_replicas_available{{namespace="{LIVE_NAMESPACE}",'
        f'deployment="{DEPLOYMENT}"}}'
    )

    def available() -> list[dict[str, Any]]:
        return instant(prometheus, query)

    [value] = wait_for(available, 30, query, interval=1.0)
    assert int(value["value"][1]) == deployment.status.available_replicas
    served = instant(prometheus, "sum(session_state_http_requests_total)")
    assert served and float(served[0]["value"][1]) > 0  # probes at least
    assert get_json(alertmanager, "/api/v2/status")["cluster"]["status"] == "disabled"
    # The dashboard's queries run on the live data: one ready pod in each zone.
    board = json.loads(DASHBOARD.read_text())
    [zones_panel] = [p for p in board["panels"] if p["title"] == "Ready pods per zone"]
    zones_query = zones_panel["targets"][0]["expr"].replace("$namespace", LIVE_NAMESPACE)
    zones = {
        r["metric"]["label_topology_kubernetes_io_zone"]: float(r["value"][1])
        for r in instant(prometheus, zones_query)
    }
    assert zones == {"us-west-2a": 1.0, "us-west-2b": 1.0, "us-west-2c": 1.0}
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", LIVE_NAMESPACE)
            get_json(prometheus, "/api/v1/query", query=expr)  # a bad query is an HTTP 400
