"""Endpoints and EndpointSlice controllers, for every Service with a selector.

Legacy Endpoints (`pkg/controller/endpoint`): terminating pods are dropped, ready pods
go to `addresses`, the others to `notReadyAddresses` (all to `addresses` with
`publishNotReadyAddresses`), repacked into subsets by port set.

EndpointSlice (`pkg/controller/endpointslice`): one IPv4 slice per Service named
`<service>-<5 chars>`, terminating pods kept with `ready: false, terminating: true`
(reference 2.4). Terminal pods and pods without a podIP are left out of both.
Objects are written only when their content changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.controllers.runtime import namespaced_key
from sandbox.kube.errors import ApiError
from sandbox.kube.podutil import ZONE_LABEL, is_pod_ready, is_terminal, is_terminating
from sandbox.kube.selectors import LabelSelector, service_selector
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SLICES = "discovery.k8s.io/endpointslices"


# ---- pure decisions ----


def is_headless(service: Mapping[str, Any]) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def should_be_in_endpoints(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    """endpointutil.ShouldPodBeInEndpoints.

    >>> pod = {"status": {"podIP": "127.0.2.5"}, "metadata": {"deletionTimestamp": "T"}}
    >>> should_be_in_endpoints(pod, True), should_be_in_endpoints(pod, False)
    (True, False)
    """
    if is_terminal(pod) or not (pod.get("status") or {}).get("podIP"):
        return False
    return include_terminating or not is_terminating(pod)


def resolve_target_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """podutil.FindPort: a number as is, a name looked up in the pod's container ports.

    >>> pod = {"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}}
    >>> resolve_target_port({"port": 80, "targetPort": "http"}, pod)
    8080
    >>> resolve_target_port({"port": 80, "targetPort": "grpc"}, pod) is None
    True
    """
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[KubeObject]:
    """The service's ports as this pod serves them; unresolvable named ports are skipped."""
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = resolve_target_port(service_port, pod)
        if number is None:
            continue
        port: KubeObject = {
            "name": service_port.get("name", ""),
            "port": number,
            "protocol": service_port.get("protocol", "TCP"),
        }
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def endpoint_conditions(pod: Mapping[str, Any], publish_not_ready: bool) -> dict[str, bool]:
    """EndpointSlice conditions (reference 2.4).

    >>> endpoint_conditions({"status": {"conditions": [{"type": "Ready", "status": "True"}]},
    ...                      "metadata": {"deletionTimestamp": "T"}}, False)
    {'ready': False, 'serving': True, 'terminating': True}
    """
    serving = is_pod_ready(pod)
    terminating = is_terminating(pod)
    return {
        "ready": publish_not_ready or (serving and not terminating),
        "serving": serving,
        "terminating": terminating,
    }


def _target_ref(pod: Mapping[str, Any]) -> KubeObject:
    metadata = pod.get("metadata") or {}
    return {
        "kind": "Pod",
        "namespace": metadata.get("namespace", ""),
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
    }


def _hostname(service: Mapping[str, Any], pod: Mapping[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    service_meta, pod_meta = service.get("metadata") or {}, pod.get("metadata") or {}
    if (
        spec.get("hostname")
        and spec.get("subdomain") == service_meta.get("name")
        and pod_meta.get("namespace") == service_meta.get("namespace")
    ):
        return str(spec["hostname"])
    return None


def _port_key(port: Mapping[str, Any]) -> tuple[str, int, str, str]:
    return (
        str(port.get("name", "")),
        int(port.get("port", -1)),
        str(port.get("protocol", "")),
        str(port.get("appProtocol", "")),
    )


def _endpoint_address(service: Mapping[str, Any], pod: Mapping[str, Any]) -> KubeObject:
    address: KubeObject = {"ip": pod["status"]["podIP"]}
    hostname = _hostname(service, pod)
    if hostname:
        address["hostname"] = hostname
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        address["nodeName"] = node_name
    address["targetRef"] = _target_ref(pod)
    return address


def endpoints_subsets(
    service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> list[KubeObject]:
    """The legacy Endpoints `subsets`, repacked as endpoints.RepackSubsets does.

    Each port maps to the set of addresses serving it; ports with the same address set
    share a subset. Addresses are sorted by IP, ports by name and number. A headless
    Service without ports lists addresses without ports.

    >>> svc = {"metadata": {"name": "web", "namespace": "d"},
    ...        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    >>> ready = {"metadata": {"name": "a"}, "status": {"podIP": "127.0.2.1",
    ...          "conditions": [{"type": "Ready", "status": "True"}]}}
    >>> unready = {"metadata": {"name": "b"}, "status": {"podIP": "127.0.2.2"}}
    >>> [(s["addresses"][0]["ip"], s["notReadyAddresses"][0]["ip"], s["ports"])
    ...  for s in endpoints_subsets(svc, [ready, unready])]
    [('127.0.2.1', '127.0.2.2', [{'port': 8080, 'protocol': 'TCP'}])]
    """
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    addresses: dict[tuple[str, str], tuple[KubeObject, bool]] = {}  # (ip, uid) -> (addr, ready)
    by_port: dict[tuple[str, int, str, str], set[tuple[str, str]]] = {}
    port_objects: dict[tuple[str, int, str, str], KubeObject] = {}
    for pod in pods:
        if not should_be_in_endpoints(pod, publish):
            continue
        if spec.get("ports"):
            ports = pod_ports(service, pod)
        else:
            ports = [{"port": -1}] if is_headless(service) else []  # upstream's no-port sentinel
        if not ports:
            continue
        address = _endpoint_address(service, pod)
        key = (address["ip"], address["targetRef"]["uid"])
        addresses[key] = (address, publish or is_pod_ready(pod))
        for port in ports:
            by_port.setdefault(_port_key(port), set()).add(key)
            port_objects[_port_key(port)] = {k: v for k, v in port.items() if v != ""}
    groups: dict[frozenset[tuple[str, str]], list[KubeObject]] = {}
    for port_key, members in by_port.items():
        group_ports = groups.setdefault(frozenset(members), [])
        if port_key[1] > 0:
            group_ports.append(port_objects[port_key])
    return sorted(
        (
            _subset([addresses[m] for m in members], group_ports)
            for members, group_ports in groups.items()
        ),
        key=_subset_order,
    )


def _subset(members: Iterable[tuple[KubeObject, bool]], ports: list[KubeObject]) -> KubeObject:
    subset: KubeObject = {}
    listed = list(members)
    ready = sorted((address for address, ok in listed if ok), key=_address_order)
    not_ready = sorted((address for address, ok in listed if not ok), key=_address_order)
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    if ports:
        subset["ports"] = sorted(ports, key=_port_key)
    return subset


def _address_order(address: Mapping[str, Any]) -> tuple[tuple[int, ...], str]:
    ip = str(address.get("ip", ""))
    parts = tuple(int(p) for p in ip.split(".") if p.isdigit())
    return parts, str((address.get("targetRef") or {}).get("uid", ""))


def _subset_order(subset: Mapping[str, Any]) -> tuple[Any, ...]:
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0]
    return _address_order(first), [_port_key(p) for p in subset.get("ports") or []]


def slice_endpoints(
    service: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    zones: Mapping[str, str],
) -> tuple[list[KubeObject], list[KubeObject]]:
    """(endpoints, ports) of the Service's one EndpointSlice.

    `zones` maps node name to its topology.kubernetes.io/zone label. Ports are those the
    first endpoint's pod resolves (upstream groups pods by port set; here one slice).

    >>> svc = {"metadata": {"name": "web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}
    >>> pod = {"metadata": {"name": "a", "namespace": "d", "uid": "u",
    ...                     "deletionTimestamp": "T"},
    ...        "spec": {"nodeName": "n1"}, "status": {"podIP": "127.0.2.1"}}
    >>> endpoints, ports = slice_endpoints(svc, [pod], {"n1": "us-west-2a"})
    >>> endpoints[0]["conditions"], endpoints[0]["zone"], ports
    ({'ready': False, 'serving': False, 'terminating': True}, 'us-west-2a', \
[{'name': '', 'port': 80, 'protocol': 'TCP'}])
    """
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    endpoints: list[KubeObject] = []
    ports: list[KubeObject] | None = None
    for pod in pods:
        if not should_be_in_endpoints(pod, include_terminating=True):
            continue
        resolved = pod_ports(service, pod)
        if ports is None:
            ports = resolved
        endpoint: KubeObject = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": endpoint_conditions(pod, publish),
        }
        hostname = _hostname(service, pod)
        if hostname:
            endpoint["hostname"] = hostname
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            endpoint["nodeName"] = node_name
            if node_name in zones:
                endpoint["zone"] = zones[node_name]
        endpoint["targetRef"] = _target_ref(pod)
        endpoints.append(endpoint)
    return endpoints, sorted(ports or [], key=_port_key)


def endpoints_labels(service: Mapping[str, Any]) -> dict[str, str]:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def slice_labels(service: Mapping[str, Any]) -> dict[str, str]:
    labels = endpoints_labels(service)
    labels[SERVICE_NAME_LABEL] = (service.get("metadata") or {}).get("name", "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def service_owner_reference(service: Mapping[str, Any]) -> KubeObject:
    metadata = service.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": metadata.get("name", ""),
        "uid": metadata.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _slice_content(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    metadata = obj.get("metadata") or {}
    return (
        metadata.get("labels") or {},
        metadata.get("ownerReferences") or [],
        obj.get("addressType"),
        obj.get("endpoints") or [],
        obj.get("ports") or [],
    )


# ---- the controller ----


class EndpointsController:
    """Keeps Endpoints and the EndpointSlice of every selector Service in line with its pods."""

    name = "endpoints"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._selectors: dict[tuple[str, str], LabelSelector] = {}

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        obj = change.object
        metadata = obj.get("metadata") or {}
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        if change.resource == "services":
            self._remember(obj, deleted=change.type == DELETED)
            return [(namespace, name)]
        if change.resource == "endpoints":
            return [(namespace, name)]
        if change.resource == SLICES:
            service = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
            return [(namespace, service)] if service else []
        if change.resource == "pods":
            label_sets = [metadata.get("labels")]
            if change.old is not None:
                label_sets.append((change.old.get("metadata") or {}).get("labels"))
            return [
                key
                for key, selector in sorted(self._selectors.items())
                if key[0] == namespace and any(selector.matches(ls) for ls in label_sets)
            ]
        if change.resource == "nodes":
            old_labels = ((change.old or {}).get("metadata") or {}).get("labels") or {}
            if change.old is None or old_labels.get(ZONE_LABEL) != (
                metadata.get("labels") or {}
            ).get(ZONE_LABEL):
                return sorted(self._selectors)
        return []

    def all_keys(self) -> Iterable[Hashable]:
        keys: set[tuple[str, str]] = set()
        self._selectors.clear()
        for service in self.store.list("services"):
            self._remember(service, deleted=False)
            keys.add((service["metadata"]["namespace"], service["metadata"]["name"]))
        for endpoints in self.store.list("endpoints"):
            keys.add((endpoints["metadata"]["namespace"], endpoints["metadata"]["name"]))
        for piece in self.store.list(SLICES, labels=f"{MANAGED_BY_LABEL}={MANAGED_BY}"):
            service_name = piece["metadata"].get("labels", {}).get(SERVICE_NAME_LABEL)
            if service_name:
                keys.add((piece["metadata"]["namespace"], service_name))
        return sorted(keys)

    def _remember(self, service: Mapping[str, Any], *, deleted: bool) -> None:
        metadata = service.get("metadata") or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        selector = None if deleted else service_selector(service)
        if selector is None:
            self._selectors.pop(key, None)
        else:
            self._selectors[key] = selector

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        service = self.store.find("services", namespace, name)
        if service is None:
            self._delete_endpoints(namespace, name)
            self._sync_slices(namespace, name, None, [], [])
            return None
        selector = service_selector(service)
        if selector is None:
            return None  # endpoints of a selectorless Service are the user's
        pods = self.store.snapshot("pods", namespace=namespace, labels=selector)
        self._sync_endpoints(service, endpoints_subsets(service, pods))
        if (service.get("spec") or {}).get("type") == "ExternalName":
            self._sync_slices(namespace, name, None, [], [])
            return None
        zones = {
            node["metadata"]["name"]: node["metadata"]["labels"][ZONE_LABEL]
            for node in self.store.snapshot("nodes")
            if ZONE_LABEL in (node["metadata"].get("labels") or {})
        }
        endpoints, ports = slice_endpoints(service, pods, zones)
        self._sync_slices(namespace, name, service, endpoints, ports)
        return None

    def _delete_endpoints(self, namespace: str, name: str) -> None:
        if self.store.find("endpoints", namespace, name) is not None:
            self.store.delete("endpoints", namespace, name)

    def _sync_endpoints(self, service: KubeObject, subsets: list[KubeObject]) -> None:
        metadata = service["metadata"]
        wanted: KubeObject = {
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "labels": endpoints_labels(service),
            },
        }
        if subsets:
            wanted["subsets"] = subsets
        current = self.store.find("endpoints", metadata["namespace"], metadata["name"])
        if current is None:
            self.store.create("endpoints", wanted)
            return
        if (current["metadata"].get("labels") or {}) == wanted["metadata"]["labels"] and (
            current.get("subsets") or []
        ) == subsets:
            return
        current["metadata"]["labels"] = wanted["metadata"]["labels"]
        if subsets:
            current["subsets"] = subsets
        else:
            current.pop("subsets", None)  # an empty list is omitted, as upstream serialises it
        self.store.update("endpoints", current)

    def _sync_slices(
        self,
        namespace: str,
        service_name: str,
        service: KubeObject | None,
        endpoints: list[KubeObject],
        ports: list[KubeObject],
    ) -> None:
        selector = f"{SERVICE_NAME_LABEL}={service_name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        existing = self.store.list(SLICES, namespace=namespace, labels=selector)
        keep = existing[0] if existing and service is not None else None
        for stale in existing:
            if stale is not keep:
                self._delete_quietly(SLICES, namespace, stale["metadata"]["name"])
        if service is None:
            return
        wanted: KubeObject = {
            "metadata": {
                "labels": slice_labels(service),
                "ownerReferences": [service_owner_reference(service)],
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }
        if keep is None:
            wanted["metadata"].update(generateName=f"{service_name}-", namespace=namespace)
            self.store.create(SLICES, wanted)
            return
        if _slice_content(keep) == _slice_content(wanted):
            return
        keep["metadata"]["labels"] = wanted["metadata"]["labels"]
        keep["metadata"]["ownerReferences"] = wanted["metadata"]["ownerReferences"]
        keep.update(addressType="IPv4", endpoints=endpoints, ports=ports)
        self.store.update(SLICES, keep)

    def _delete_quietly(self, resource: str, namespace: str, name: str) -> None:
        try:
            self.store.delete(resource, namespace, name)
        except ApiError as error:
            if error.code != 404:
                raise
