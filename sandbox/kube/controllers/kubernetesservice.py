"""The `kubernetes` Service in `default`, and its endpoints: where pods find the API server.

What kube-apiserver keeps for itself (pkg/controlplane/controller/kubernetesservice
`CreateOrUpdateMasterServiceIfNeeded`, and the endpoint reconciler,
pkg/controlplane/reconcilers with `EndpointsAdapter`):

- Service `default/kubernetes`, labels `component=apiserver`, `provider=kubernetes`,
  type ClusterIP, no selector, port `https` 443/TCP to the API server's secure
  port, sessionAffinity None. Upstream gives it the service range's first address;
  the sandbox's ClusterIPs are claimed machine-wide (`sandbox.kube.clusterips`), so
  it gets the first one this sandbox could claim, chosen before the API server's
  certificate is made (its SANs name it). An existing Service keeps its ClusterIP;
  its ports and type are put back when changed (`getMasterServiceUpdateIfNeeded`).
- Endpoints `default/kubernetes`, label `endpointslice.kubernetes.io/skip-mirror:
  "true"`, one subset: the API server's address, port `https`.
- EndpointSlice `default/kubernetes` (the adapter's `endpointSliceFromEndpoints`):
  label `kubernetes.io/service-name: kubernetes`, IPv4, the address ready, no
  targetRef (no pod is behind it). kube-proxy DNATs the ClusterIP to it
  (`sandbox.cni.services` routes an endpoint that is no pod to any loopback address).

Deleted or changed, each is put back at once (upstream within its 10 s interval).

    >>> service, endpoints, piece = desired("127.0.4.2", "127.0.0.1", 36443)
    >>> service["spec"]["ports"]
    [{'name': 'https', 'protocol': 'TCP', 'port': 443, 'targetPort': 36443}]
    >>> endpoints["subsets"][0]["addresses"], piece["endpoints"][0]["addresses"]
    ([{'ip': '127.0.0.1'}], ['127.0.0.1'])
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
NAMESPACE = "default"
NAME = "kubernetes"
SERVICE_PORT = 443
PORT_NAME = "https"
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ENDPOINTSLICES = "discovery.k8s.io/endpointslices"
RESOURCES = ("services", "endpoints", ENDPOINTSLICES)


def desired(cluster_ip: str, address: str, port: int) -> tuple[KubeObject, KubeObject, KubeObject]:
    """The Service, Endpoints and EndpointSlice for an API server at `address:port`."""
    metadata = {"name": NAME, "namespace": NAMESPACE}
    service = {
        "metadata": {**metadata, "labels": dict(SERVICE_LABELS)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [
                {"name": PORT_NAME, "protocol": "TCP", "port": SERVICE_PORT, "targetPort": port}
            ],
            "sessionAffinity": "None",
        },
    }
    endpoint_port = {"name": PORT_NAME, "port": port, "protocol": "TCP"}
    endpoints = {
        "metadata": {**metadata, "labels": {SKIP_MIRROR: "true"}},
        "subsets": [{"addresses": [{"ip": address}], "ports": [endpoint_port]}],
    }
    piece = {
        "metadata": {**metadata, "labels": {SERVICE_NAME_LABEL: NAME}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [endpoint_port],
    }
    return service, endpoints, piece


def repair(
    resource: str, current: Mapping[str, Any], wanted: Mapping[str, Any]
) -> KubeObject | None:
    """The object to write back when `current` lost what the API server keeps, else None.

    A Service keeps its ClusterIP (and whatever else it has); its ports and type are
    the API server's. Endpoints and the EndpointSlice are the API server's alone.
    """
    obj = {key: value for key, value in current.items() if key != "status"}
    labels = dict((current.get("metadata") or {}).get("labels") or {})
    wanted_labels = wanted["metadata"]["labels"]
    changed = any(labels.get(key) != value for key, value in wanted_labels.items())
    obj["metadata"] = {**current["metadata"], "labels": {**labels, **wanted_labels}}
    if resource == "services":
        spec = dict(current.get("spec") or {})
        for key in ("ports", "type"):
            if spec.get(key) != wanted["spec"][key]:
                spec[key], changed = wanted["spec"][key], True
        obj["spec"] = spec
    else:
        for key, value in wanted.items():
            if key != "metadata" and current.get(key) != value:
                obj[key], changed = value, True
    return obj if changed else None


@dataclass(frozen=True)
class ApiServerAddress:
    cluster_ip: str
    address: str  # where the API server's HTTPS listener is
    port: int


class KubernetesServiceController:
    """Keeps `default/kubernetes` (Service, Endpoints, EndpointSlice) as the API server says."""

    name = "kubernetes-service"

    def __init__(self, store: Store, api: ApiServerAddress) -> None:
        self.store = store
        self.api = api

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        metadata = change.object.get("metadata") or {}
        ours = (metadata.get("namespace"), metadata.get("name")) == (NAMESPACE, NAME)
        return [change.resource] if change.resource in RESOURCES and ours else []

    def all_keys(self) -> Iterable[Hashable]:
        return RESOURCES

    def reconcile(self, key: Hashable) -> float | None:
        resource = str(key)
        objects = desired(self.api.cluster_ip, self.api.address, self.api.port)
        wanted = dict(zip(RESOURCES, objects, strict=True))
        current = self.store.find(resource, NAMESPACE, NAME)
        if current is None:
            self.store.create(resource, wanted[resource])
            return None
        fixed = repair(resource, current, wanted[resource])
        if fixed is not None:
            self.store.update(resource, fixed)
        return None
