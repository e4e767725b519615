"""The kubernetes_sd bridge: EndpointSlices, Services and Pods -> the labels Prometheus's
endpointslice role gives its targets, so that staging's relabel_configs apply unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sandbox.infra.kubesd import KubeSdBridge, sanitize, target_groups
from sandbox.infra.monitoring import prometheus_config
from sandbox.infra.supervisor import Endpoint

SERVICE = {
    "metadata": {
        "name": "session-state-service",
        "namespace": "harmonyflow",
        "labels": {"app": "session-state-service"},
    }
}
HEADLESS = {
    "metadata": {
        "name": "session-state-service-headless",
        "namespace": "harmonyflow",
        "labels": {"app": "session-state-service"},
    }
}
POD = {
    "metadata": {
        "name": "session-state-service-abc",
        "namespace": "harmonyflow",
        "uid": "u-1",
        "labels": {"app": "session-state-service"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "rs-1", "controller": True}],
    },
    "spec": {
        "nodeName": "ip-127-0-1-10",
        "containers": [
            {
                "name": "session-state-service",
                "image": "ghcr.io/harmonyflow/session-state:1.0.0",
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "ws", "containerPort": 8443, "protocol": "TCP"},
                ],
            }
        ],
    },
    "status": {
        "podIP": "127.0.2.5",
        "hostIP": "127.0.1.10",
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def endpoint_slice(service: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{service}-x1",
            "namespace": "harmonyflow",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "ws", "port": 8443, "protocol": "TCP"},
        ],
        "endpoints": [
            {
                "addresses": ["127.0.2.5"],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": "ip-127-0-1-10",
                "zone": "us-west-2a",
                "targetRef": {
                    "kind": "Pod",
                    "name": "session-state-service-abc",
                    "namespace": "harmonyflow",
                },
            }
        ],
    }


M = "__meta_kubernetes_"


@pytest.mark.parametrize(
    ("label", "value"),
    [
        (f"{M}namespace", "harmonyflow"),
        (f"{M}endpointslice_name", "session-state-service-x1"),
        (f"{M}endpointslice_address_type", "IPv4"),
        (f"{M}endpointslice_label_kubernetes_io_service_name", "session-state-service"),
        (f"{M}service_name", "session-state-service"),
        (f"{M}service_label_app", "session-state-service"),
        (f"{M}service_labelpresent_app", "true"),
        (f"{M}endpointslice_port", "8080"),
        (f"{M}endpointslice_port_name", "http"),
        (f"{M}endpointslice_port_protocol", "TCP"),
        (f"{M}endpointslice_endpoint_conditions_ready", "true"),
        (f"{M}endpointslice_endpoint_zone", "us-west-2a"),
        (f"{M}pod_name", "session-state-service-abc"),
        (f"{M}pod_node_name", "ip-127-0-1-10"),
        (f"{M}pod_ready", "true"),
        (f"{M}pod_phase", "Running"),
        (f"{M}pod_controller_kind", "ReplicaSet"),
        (f"{M}pod_label_app", "session-state-service"),
        (f"{M}pod_container_name", "session-state-service"),
        (f"{M}pod_container_port_name", "http"),
        (f"{M}pod_container_port_number", "8080"),
    ],
)
def test_a_target_carries_the_endpointslice_roles_labels(label: str, value: str) -> None:
    groups = target_groups([endpoint_slice("session-state-service")], [SERVICE], [POD])
    [http] = [g for g in groups if g["targets"] == ["127.0.2.5:8080"]]
    assert http["labels"][label] == value


def test_one_target_per_address_and_port_and_not_ready_endpoints_too() -> None:
    groups = target_groups([endpoint_slice("session-state-service", ready=False)], [SERVICE], [POD])
    assert sorted(t for g in groups for t in g["targets"]) == ["127.0.2.5:8080", "127.0.2.5:8443"]
    assert {g["labels"][f"{M}endpointslice_endpoint_conditions_ready"] for g in groups} == {"false"}


def test_an_endpoint_whose_pod_is_gone_keeps_its_target_ref() -> None:
    [group, _] = target_groups([endpoint_slice("session-state-service")], [SERVICE], [])
    assert group["labels"][f"{M}endpointslice_address_target_kind"] == "Pod"
    assert f"{M}pod_name" not in group["labels"]


def test_sanitize_follows_prometheus() -> None:
    assert sanitize("topology.kubernetes.io/zone") == "topology_kubernetes_io_zone"


def test_the_bridge_rewrites_the_file_only_when_targets_change(tmp_path: Path) -> None:
    path = tmp_path / "sd" / "targets.json"
    bridge = KubeSdBridge("http://127.0.0.1:1", path)
    groups = target_groups([endpoint_slice("session-state-service")], [SERVICE], [POD])
    bridge.write(groups)
    first = path.stat().st_mtime_ns
    bridge.write(groups)
    assert path.stat().st_mtime_ns == first
    assert json.loads(path.read_text()) == groups


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """The subset of Prometheus relabelling the job uses: keep, drop, replace (full match)."""
    labels = dict(labels)
    for rule in rules:
        value = ";".join(labels.get(name, "") for name in rule["source_labels"])
        regex = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and not regex:
            return None
        if action == "drop" and regex:
            return None
        if action == "replace" and regex:
            labels[rule["target_label"]] = value
    return labels


def test_the_scrape_job_keeps_one_http_target_per_pod_with_its_labels(tmp_path: Path) -> None:
    config = prometheus_config(
        "http://127.0.0.1:6443", tmp_path / "sd.json", tmp_path, Endpoint("127.0.0.1", 9093)
    )
    rules = config["scrape_configs"][0]["relabel_configs"]
    groups = target_groups(
        [endpoint_slice("session-state-service"), endpoint_slice("session-state-service-headless")],
        [SERVICE, HEADLESS],
        [POD],
    )
    kept = [(g["targets"], relabel(g["labels"], rules)) for g in groups]
    kept = [(t, labels) for t, labels in kept if labels is not None]
    assert len(kept) == 1
    targets, labels = kept[0]
    assert targets == ["127.0.2.5:8080"]
    assert {k: labels[k] for k in ("namespace", "pod", "node", "zone")} == {
        "namespace": "harmonyflow",
        "pod": "session-state-service-abc",
        "node": "ip-127-0-1-10",
        "zone": "us-west-2a",
    }
