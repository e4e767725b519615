"""The Kubernetes client the activities share with chaostoolkit-kubernetes.

`chaosk8s.create_k8s_api_client` picks the kubeconfig and `KUBERNETES_CONTEXT`
the same way for our activities as for theirs, so one experiment never talks to
two clusters. Every call passes `REQUEST_TIMEOUT`: no activity waits forever on
an unreachable API server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chaosk8s import create_k8s_api_client
from kubernetes import client, config

REQUEST_TIMEOUT = 15.0
ZONE_LABEL = "topology.kubernetes.io/zone"


def api_client(secrets: dict[str, Any] | None = None) -> client.ApiClient:
    """A client for `$KUBECONFIG` (first file) and `$KUBERNETES_CONTEXT`, read now.

    chaosk8s reads the kubeconfig path the kubernetes package fixed at import time, so a
    `KUBECONFIG` set later (pytest, a game day) would be ignored; in a pod, or with
    neither a kubeconfig nor `KUBECONFIG`, its own rules apply.
    """
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    path = Path(first or "~/.kube/config").expanduser()
    if os.environ.get("CHAOSTOOLKIT_IN_POD") != "true" and path.is_file():
        context = os.environ.get("KUBERNETES_CONTEXT") or None
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(path), context=context
        )
        return api
    fallback: client.ApiClient = create_k8s_api_client(secrets)
    return fallback


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
