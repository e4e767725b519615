"""The Kubernetes client the activities share with chaostoolkit-kubernetes.

`chaosk8s.create_k8s_api_client` picks the kubeconfig and `KUBERNETES_CONTEXT`
the same way for our activities as for theirs, so one experiment never talks to
two clusters. Every call passes `REQUEST_TIMEOUT`: no activity waits forever on
an unreachable API server.
"""

from __future__ import annotations

from typing import Any

from chaosk8s import create_k8s_api_client
from kubernetes import client

REQUEST_TIMEOUT = 15.0
ZONE_LABEL = "topology.kubernetes.io/zone"


def api_client(secrets: dict[str, Any] | None = None) -> client.ApiClient:
    api: client.ApiClient = create_k8s_api_client(secrets)
    return api


def core(secrets: dict[str, Any] | None = None) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(secrets))


def apps(secrets: dict[str, Any] | None = None) -> client.AppsV1Api:
    return client.AppsV1Api(api_client(secrets))


def nodes_in_zone(api: client.CoreV1Api, zone: str) -> list[Any]:
    nodes = api.list_node(label_selector=f"{ZONE_LABEL}={zone}", _request_timeout=REQUEST_TIMEOUT)
    return items(nodes)


def autoscaling(secrets: dict[str, Any] | None = None) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(api_client(secrets))


def discovery(secrets: dict[str, Any] | None = None) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(api_client(secrets))


def items(answer: Any) -> list[Any]:
    """A list answer's objects, untyped: the client's models make every field optional."""
    return list(answer.items or [])
