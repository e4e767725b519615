"""What a certificate says about where it was earned: the target as the Kubernetes API
shows it (image, replicas, nodes, HPA, server version) and the tools' versions.

Read through the kubeconfig only (one code path for the sandbox and staging), every
call bounded by `_request_timeout`. A target without a kubeconfig, or an API that
refuses, is written down as such rather than failing the certification: the load
and the SLOs are what is certified; the environment is its label.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

TIMEOUT = 10
ZONE = "topology.kubernetes.io/zone"
API_ERRORS = (ApiException, HTTPError, OSError, ConfigException, ValueError)


def tool_versions() -> dict[str, str]:
    """Versions of what produced the figures (package metadata: no `import locust` here)."""
    versions = {"python": platform.python_version()}
    for package in ("harmonyflow-resilience", "locust", "websocket-client", "kubernetes"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def describe_cluster(
    kubeconfig: Path | None, context: str | None, namespace: str, deployment: str
) -> dict[str, Any]:
    """The deployment under test as the API shows it, or `{"unavailable": why}`."""
    if kubeconfig is None:
        return {"unavailable": "no kubeconfig (pass --kubeconfig, or set KUBECONFIG)"}
    try:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), context=context
        )
    except API_ERRORS as error:
        return {"unavailable": f"kubeconfig {kubeconfig}: {_reason(error)}"}
    described: dict[str, Any] = {"kubeconfig": str(kubeconfig), "context": context or "(current)"}
    for key, read in (
        ("server_version", lambda: _server_version(api)),
        ("deployment", lambda: _deployment(api, namespace, deployment)),
        ("pods", lambda: _pods(api, namespace, deployment)),
        ("nodes", lambda: _nodes(api)),
        ("hpa", lambda: _hpa(api, namespace, deployment)),
    ):
        try:
            described[key] = read()
        except API_ERRORS as error:
            described[key] = {"unavailable": _reason(error)}
    return described


def _server_version(api: client.ApiClient) -> str:
    info = client.VersionApi(api).get_code(_request_timeout=TIMEOUT)
    return str(info.git_version)


def _deployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.AppsV1Api(api).read_namespaced_deployment(
        name, namespace, _request_timeout=TIMEOUT
    )
    spec, status = found.spec, found.status
    containers = spec.template.spec.containers if spec and spec.template.spec else []
    return {
        "namespace": namespace,
        "name": name,
        "images": [c.image for c in containers],
        "replicas": spec.replicas if spec else None,
        "ready_replicas": (status.ready_replicas or 0) if status else 0,
        "available_replicas": (status.available_replicas or 0) if status else 0,
        "updated_replicas": (status.updated_replicas or 0) if status else 0,
        "generation": found.metadata.generation if found.metadata else None,
    }


def _pods(api: client.ApiClient, namespace: str, deployment: str) -> dict[str, Any]:
    selector = _selector(api, namespace, deployment)
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=selector, _request_timeout=TIMEOUT
    )
    images: Counter[str] = Counter()
    nodes: Counter[str] = Counter()
    for pod in pods.items:
        for container in pod.spec.containers if pod.spec else []:
            images[container.image or "?"] += 1
        nodes[(pod.spec.node_name if pod.spec else None) or "(unscheduled)"] += 1
    return {"count": len(pods.items), "images": dict(images), "per_node": dict(nodes)}


def _selector(api: client.ApiClient, namespace: str, deployment: str) -> str:
    found = client.AppsV1Api(api).read_namespaced_deployment(
        deployment, namespace, _request_timeout=TIMEOUT
    )
    labels = (found.spec.selector.match_labels if found.spec else None) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _nodes(api: client.ApiClient) -> dict[str, Any]:
    nodes = client.CoreV1Api(api).list_node(_request_timeout=TIMEOUT).items
    zones: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for node in nodes:
        labels = (node.metadata.labels if node.metadata else None) or {}
        zones[labels.get(ZONE, "?")] += 1
        kinds[labels.get("node.kubernetes.io/instance-type", "?")] += 1
    return {"count": len(nodes), "zones": dict(zones), "instance_types": dict(kinds)}


def _hpa(api: client.ApiClient, namespace: str, deployment: str) -> dict[str, Any]:
    listed = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(
        namespace, _request_timeout=TIMEOUT
    )
    for hpa in listed.items:
        target = hpa.spec.scale_target_ref if hpa.spec else None
        if target is not None and target.kind == "Deployment" and target.name == deployment:
            return {
                "name": hpa.metadata.name if hpa.metadata else None,
                "min_replicas": hpa.spec.min_replicas,
                "max_replicas": hpa.spec.max_replicas,
                "current_replicas": hpa.status.current_replicas if hpa.status else None,
            }
    return {"unavailable": f"no HPA targets deployment {deployment}"}


def _reason(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"API answered {error.status} {error.reason}"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{type(error).__name__}: {text[:160]}"
