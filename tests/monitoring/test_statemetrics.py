"""The control plane's /metrics: kube-state-metrics' series from store objects (a table and a
golden), valid exposition (promtool check metrics), and the API server's route."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sandbox.kube.statemetrics import ClusterState, render
from tests.sandbox.harness import ApiHarness

GOLDEN = Path(__file__).parent / "golden" / "statemetrics.txt"


def meta(name: str, namespace: str = "harmonyflow", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


DEPLOYMENT = {
    "metadata": meta("session-state-service"),
    "spec": {"replicas": 3},
    "status": {
        "replicas": 3,
        "availableReplicas": 2,
        "unavailableReplicas": 1,
        "updatedReplicas": 3,
    },
}
HPA = {
    "metadata": meta("session-state-service-hpa"),
    "spec": {"minReplicas": 3, "maxReplicas": 10},
    "status": {"currentReplicas": 4, "desiredReplicas": 5},
}
POD = {
    "metadata": meta(
        "session-state-service-abc",
        uid="u-1",
        ownerReferences=[
            {"kind": "ReplicaSet", "name": "session-state-service-6f", "controller": True}
        ],
    ),
    "spec": {"nodeName": "ip-127-0-1-10"},
    "status": {
        "podIP": "127.0.2.5",
        "hostIP": "127.0.1.10",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "session-state-service", "restartCount": 2}],
    },
}
NODE = {
    "metadata": {"name": "ip-127-0-1-10", "labels": {"topology.kubernetes.io/zone": "us-west-2a"}},
    "spec": {"unschedulable": True},
    "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
}
PDB = {
    "metadata": meta("session-state-service"),
    "status": {
        "currentHealthy": 2,
        "desiredHealthy": 2,
        "disruptionsAllowed": 0,
        "expectedPods": 3,
    },
}
DEPLOYMENT_LABELS = 'namespace="harmonyflow",deployment="session-state-service"'
NODE_LABELS = 'node="ip-127-0-1-10",condition="Ready"'
POD_LABELS = 'namespace="harmonyflow",pod="session-state-service-abc",uid="u-1"'


@pytest.mark.parametrize(
    ("state", "lines"),
    [
        pytest.param(
            ClusterState(deployments=[DEPLOYMENT]),
            [
                f"kube_deployment_spec_replicas{{{DEPLOYMENT_LABELS}}} 3",
                f"kube_deployment_status_replicas{{{DEPLOYMENT_LABELS}}} 3",
                f"kube_deployment_status_replicas_available{{{DEPLOYMENT_LABELS}}} 2",
                f"kube_deployment_status_replicas_unavailable{{{DEPLOYMENT_LABELS}}} 1",
                f"kube_deployment_status_replicas_updated{{{DEPLOYMENT_LABELS}}} 3",
            ],
            id="deployment",
        ),
        pytest.param(
            ClusterState(deployments=[{"metadata": meta("new"), "spec": {}}]),
            [
                'kube_deployment_spec_replicas{namespace="harmonyflow",deployment="new"} 1',
                'kube_deployment_status_replicas_available{namespace="harmonyflow",'
                'deployment="new"} 0',
            ],
            id="deployment-defaults-before-first-status",
        ),
        pytest.param(
            ClusterState(hpas=[HPA]),
            [
                'kube_horizontalpodautoscaler_spec_max_replicas{namespace="harmonyflow",'
                'horizontalpodautoscaler="session-state-service-hpa"} 10',
                'kube_horizontalpodautoscaler_spec_min_replicas{namespace="harmonyflow",'
                'horizontalpodautoscaler="session-state-service-hpa"} 3',
                'kube_horizontalpodautoscaler_status_current_replicas{namespace="harmonyflow",'
                'horizontalpodautoscaler="session-state-service-hpa"} 4',
                'kube_horizontalpodautoscaler_status_desired_replicas{namespace="harmonyflow",'
                'horizontalpodautoscaler="session-state-service-hpa"} 5',
            ],
            id="hpa",
        ),
        pytest.param(
            ClusterState(pods=[POD]),
            [
                f'kube_pod_status_ready{{{POD_LABELS},condition="true"}} 0',
                f'kube_pod_status_ready{{{POD_LABELS},condition="false"}} 1',
                f'kube_pod_status_ready{{{POD_LABELS},condition="unknown"}} 0',
                f"kube_pod_container_status_restarts_total{{{POD_LABELS},"
                'container="session-state-service"} 2',
                f'kube_pod_info{{{POD_LABELS},host_ip="127.0.1.10",pod_ip="127.0.2.5",'
                'node="ip-127-0-1-10",created_by_kind="ReplicaSet",'
                'created_by_name="session-state-service-6f",priority_class="",'
                'host_network="false"} 1',
            ],
            id="pod",
        ),
        pytest.param(
            ClusterState(nodes=[NODE]),
            [
                f'kube_node_status_condition{{{NODE_LABELS},status="true"}} 0',
                f'kube_node_status_condition{{{NODE_LABELS},status="false"}} 0',
                f'kube_node_status_condition{{{NODE_LABELS},status="unknown"}} 1',
                'kube_node_spec_unschedulable{node="ip-127-0-1-10"} 1',
                'kube_node_labels{node="ip-127-0-1-10",'
                'label_topology_kubernetes_io_zone="us-west-2a"} 1',
            ],
            id="node",
        ),
        pytest.param(
            ClusterState(pdbs=[PDB]),
            [
                'kube_poddisruptionbudget_status_desired_healthy{namespace="harmonyflow",'
                'poddisruptionbudget="session-state-service"} 2',
                'kube_poddisruptionbudget_status_current_healthy{namespace="harmonyflow",'
                'poddisruptionbudget="session-state-service"} 2',
                'kube_poddisruptionbudget_status_pod_disruptions_allowed{namespace="harmonyflow",'
                'poddisruptionbudget="session-state-service"} 0',
            ],
            id="pdb",
        ),
        pytest.param(
            ClusterState(
                requests={("LIST", "pods", "200"): 7},
                replication_lag={"127.0.3.12:5432": 0.25},
            ),
            [
                'apiserver_request_total{verb="LIST",resource="pods",code="200"} 7',
                'pg_replication_lag_seconds{server="127.0.3.12:5432"} 0.25',
            ],
            id="apiserver-and-rds",
        ),
    ],
)
def test_series_rendered_from_objects(state: ClusterState, lines: list[str]) -> None:
    rendered = render(state).splitlines()
    missing = [line for line in lines if line not in rendered]
    assert not missing, "\n".join(rendered)


def test_unknown_lag_and_empty_families_are_left_out() -> None:
    text = render(ClusterState())
    assert text == ""
    assert "pg_replication_lag_seconds" not in render(ClusterState(deployments=[DEPLOYMENT]))


def test_label_values_are_escaped() -> None:
    node = {"metadata": {"name": "n", "labels": {"note": 'say "hi"\\\n'}}, "spec": {}}
    assert 'label_note="say \\"hi\\"\\\\\\n"' in render(ClusterState(nodes=[node]))


def full_state() -> ClusterState:
    return ClusterState(
        deployments=[DEPLOYMENT],
        hpas=[HPA],
        pods=[POD],
        nodes=[NODE],
        pdbs=[PDB],
        requests={("GET", "pods", "404"): 1, ("WATCH", "endpointslices", "200"): 3},
        replication_lag={"127.0.3.12:5432": 0.0},
    )


def test_rendering_matches_the_golden_file() -> None:
    assert render(full_state()) == GOLDEN.read_text()


def test_the_exposition_passes_promtool_check_metrics() -> None:
    done = subprocess.run(
        ["/usr/bin/promtool", "check", "metrics"],
        input=render(full_state()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # promtool lints too; only a parse error is a failure of the format.
    assert "error while linting" not in done.stdout + done.stderr, done.stdout + done.stderr


# ---- the API server's route ----------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path, watch_timeout_seconds=1.0)
    yield harness
    harness.close()


def get(api: ApiHarness, path: str, method: str = "GET") -> tuple[int, str, str]:
    connection = api.connection()
    connection.request(method, path, headers=api.auth_headers())
    response = connection.getresponse()
    result = response.status, response.getheader("Content-Type", ""), response.read().decode()
    connection.close()
    return result


def test_the_api_server_serves_state_metrics_and_counts_requests(api: ApiHarness) -> None:
    apps = client.AppsV1Api(api.api_client())
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }
    apps.create_namespaced_deployment("default", body)
    get(api, "/api/v1/namespaces/default/pods/missing")
    status, content_type, text = get(api, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'kube_deployment_spec_replicas{namespace="default",deployment="web"} 2' in text
    assert 'apiserver_request_total{verb="POST",resource="deployments",code="201"} 1' in text
    assert 'apiserver_request_total{verb="GET",resource="pods",code="404"} 1' in text
    assert "pg_replication_lag_seconds" not in text  # no RDS pair behind this API server


def test_replication_lag_comes_from_the_hook_and_is_left_out_when_it_hangs(
    api: ApiHarness,
) -> None:
    async def known() -> dict[str, float]:
        return {"127.0.3.12:5432": 1.5}

    api.server.replication_lag = known
    assert 'pg_replication_lag_seconds{server="127.0.3.12:5432"} 1.5' in get(api, "/metrics")[2]

    async def hangs() -> dict[str, float]:
        await asyncio.sleep(60)
        return {}

    api.server.replication_lag = hangs
    status, _, text = get(api, "/metrics")
    assert status == 200 and "pg_replication_lag_seconds" not in text
    assert "apiserver_request_total" in text


def test_metrics_is_read_only(api: ApiHarness) -> None:
    status, content_type, text = get(api, "/metrics", method="POST")
    assert status == 405 and content_type.startswith("application/json")
    assert '"reason":"MethodNotAllowed"' in text.replace(" ", "")
