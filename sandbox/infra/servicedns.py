"""Services' names in the cluster DNS, as CoreDNS's kubernetes plugin serves them.

A pod finds a Service by name (`locust-master`, through its resolv.conf's search
list, or `locust-master.harmonyflow-load.svc.cluster.local`) because CoreDNS
answers for every Service and its EndpointSlices (coredns plugin/kubernetes,
`findServices` in kubernetes.go, `EndpointSliceToEndpoints` in object/endpoint.go):

- `<service>.<namespace>.svc.<domain>`: A records of the ClusterIP for a Service
  with one (and at least one port); of every ready endpoint's address for a
  headless one (`clusterIP: None`), none at all (NXDOMAIN) while no endpoint is
  ready; a CNAME to `externalName` for an ExternalName Service whose externalName
  is a name (an IP there gets no record, as upstream).
- `<endpoint>.<service>.<namespace>.svc.<domain>`: one A record per ready endpoint,
  named by its `hostname`, or else by its address with dashes (`127-0-2-5`)
  (`endpointHostname`). CoreDNS answers these for every Service with a selector.

An endpoint is ready unless its slice says `ready: false` (a nil condition is ready).
Records carry the plugin's default TTL (5 s). Not served: SRV records for named
ports, pod records (`<ip>.<ns>.pod.<domain>`), PTR records, IPv6.

`service_records` decides, `record_plan` compares with what is published; the
controller only reads the store and writes the table. It manages only the names
it published: a name some backing service registered is never overwritten.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox.kube.controllers.endpoints import SERVICE_NAME_LABEL, SLICES
from sandbox.kube.controllers.runtime import namespaced_key
from sandbox.kube.podutil import ip_order
from sandbox.kube.store import Change, Store

log = logging.getLogger(__name__)

KubeObject = Mapping[str, Any]
ServiceKey = tuple[str, str]  # (namespace, name)


class ServiceNames(Protocol):
    """The part of the cluster DNS (`ClusterDns`) the controller writes."""

    def set(self, name: str, addresses: Iterable[str], ttl: int = ...) -> None: ...

    def set_alias(self, name: str, target: str, ttl: int = ...) -> None: ...

    def remove(self, name: str) -> bool: ...

    def lookup(self, name: str) -> object | None: ...


@dataclass(frozen=True)
class ServiceRecord:
    """What one name answers: A records, or (with `alias`) a CNAME."""

    addresses: tuple[str, ...] = ()
    alias: str = ""


@dataclass(frozen=True)
class RecordPlan:
    """Names to (re)write, and names to forget."""

    write: Mapping[str, ServiceRecord]
    remove: tuple[str, ...]


def service_domain(namespace: str, name: str, cluster_domain: str) -> str:
    """The Service's own name in the cluster DNS.

    >>> service_domain("harmonyflow-load", "locust-master", "cluster.local")
    'locust-master.harmonyflow-load.svc.cluster.local'
    """
    return f"{name}.{namespace}.svc.{cluster_domain.strip('.')}".lower()


def endpoint_label(hostname: str | None, address: str) -> str:
    """coredns endpointHostname: the endpoint's hostname, or its address with dashes.

    >>> endpoint_label("web-0", "127.0.2.5"), endpoint_label(None, "127.0.2.5")
    ('web-0', '127-0-2-5')
    """
    return hostname or address.replace(".", "-")


def ready_endpoints(slices: Sequence[KubeObject]) -> list[tuple[str, str]]:
    """(name label, address) of every ready IPv4 endpoint of the Service's slices, sorted."""
    found: set[tuple[str, str]] = set()
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                found.add((endpoint_label(endpoint.get("hostname"), address), address))
    return sorted(found)


def service_records(
    service: KubeObject, slices: Sequence[KubeObject], cluster_domain: str
) -> dict[str, ServiceRecord]:
    """The names one Service and its EndpointSlices give, and their records.

    >>> svc = {"metadata": {"name": "web", "namespace": "hf"},
    ...        "spec": {"clusterIP": "127.0.4.2", "ports": [{"port": 80}]}}
    >>> piece = {"endpoints": [{"addresses": ["127.0.2.5"], "conditions": {"ready": True}},
    ...                        {"addresses": ["127.0.2.6"], "conditions": {"ready": False}}]}
    >>> for name, record in service_records(svc, [piece], "cluster.local").items():
    ...     print(name, record.addresses)
    web.hf.svc.cluster.local ('127.0.4.2',)
    127-0-2-5.web.hf.svc.cluster.local ('127.0.2.5',)
    """
    metadata, spec = service.get("metadata") or {}, service.get("spec") or {}
    base = service_domain(metadata.get("namespace", ""), metadata.get("name", ""), cluster_domain)
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "")
        return {base: ServiceRecord(alias=target)} if target and not _is_ip(target) else {}
    endpoints = ready_endpoints(slices)
    records: dict[str, ServiceRecord] = {}
    if spec.get("clusterIP") == "None":
        if endpoints:
            records[base] = ServiceRecord(tuple(sorted({a for _, a in endpoints}, key=ip_order)))
    else:
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and _is_ip(ip)]
        if ips and spec.get("ports"):
            records[base] = ServiceRecord(tuple(ips))
    by_label: dict[str, set[str]] = {}
    for label, address in endpoints:
        by_label.setdefault(label, set()).add(address)
    for label, addresses in sorted(by_label.items()):
        records[f"{label}.{base}"] = ServiceRecord(tuple(sorted(addresses, key=ip_order)))
    return records


def record_plan(
    published: Mapping[str, ServiceRecord],
    desired: Mapping[str, ServiceRecord],
    taken: Callable[[str], bool],
) -> RecordPlan:
    """What to write and remove to go from `published` to `desired`; a name `taken` by
    someone else (a backing service's) is left alone.

    >>> old = {"a": ServiceRecord(("127.0.4.2",)), "b": ServiceRecord(("127.0.2.5",))}
    >>> new = {"a": ServiceRecord(("127.0.4.2",)), "c": ServiceRecord(alias="x.org"),
    ...        "d": ServiceRecord(("127.0.4.3",))}
    >>> record_plan(old, new, taken=lambda name: name == "d")
    RecordPlan(write={'c': ServiceRecord(addresses=(), alias='x.org')}, remove=('b',))
    """
    write = {
        name: record
        for name, record in sorted(desired.items())
        if published.get(name) != record and (name in published or not taken(name))
    }
    remove = tuple(sorted(name for name in published if name not in desired))
    return RecordPlan(write, remove)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ServiceDnsController:
    """Services and EndpointSlices -> the cluster DNS's `*.svc.<domain>` names (one key per
    Service; a Service's names never collide with another's: a Service name has no dot)."""

    name = "service-dns"

    def __init__(self, store: Store, dns: ServiceNames, cluster_domain: str) -> None:
        self.store = store
        self.dns = dns
        self.cluster_domain = cluster_domain
        self._published: dict[ServiceKey, dict[str, ServiceRecord]] = {}

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        metadata = change.object.get("metadata") or {}
        namespace = metadata.get("namespace", "")
        if change.resource == "services":
            return [(namespace, metadata.get("name", ""))]
        if change.resource == SLICES:
            names = {(metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)}
            if change.old is not None:  # a slice relabelled away from its Service
                names.add(
                    ((change.old.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
                )
            return [(namespace, name) for name in sorted(n for n in names if n)]
        return []

    def all_keys(self) -> Iterable[Hashable]:
        keys = {
            (s["metadata"].get("namespace", ""), s["metadata"]["name"])
            for s in self.store.list("services")
        }
        return sorted(keys | set(self._published))

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        service = self.store.find("services", namespace, name)
        desired: dict[str, ServiceRecord] = {}
        if service is not None:
            slices = self.store.snapshot(
                SLICES, namespace=namespace, labels=f"{SERVICE_NAME_LABEL}={name}"
            )
            desired = service_records(service, slices, self.cluster_domain)
        published = self._published.get((namespace, name), {})
        plan = record_plan(published, desired, self._taken)
        for record_name in plan.remove:
            self.dns.remove(record_name)
        for record_name, record in plan.write.items():
            if record.alias:
                self.dns.set_alias(record_name, record.alias)
            else:
                self.dns.set(record_name, record.addresses)
        kept = {n: r for n, r in desired.items() if n in published or n in plan.write}
        skipped = sorted(set(desired) - set(kept))
        if skipped:
            log.warning("%s: %s already answer for someone else; left alone", self.name, skipped)
        if kept:
            self._published[(namespace, name)] = kept
        else:
            self._published.pop((namespace, name), None)
        return None

    def _taken(self, record_name: str) -> bool:
        return self.dns.lookup(record_name) is not None
