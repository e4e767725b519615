"""kube-proxy's ClusterIP load balancing, as its nftables mode writes it.

A connection to a Service's ClusterIP and port is DNATed to one of the Service's
usable endpoints (`podIP:targetPort`), picked at random per new connection
(`numgen random mod N vmap`); a Service port without a usable endpoint is
rejected (ICMP port unreachable: a TCP client's connect fails at once with
ECONNREFUSED). This follows kube-proxy's nftables proxier
(pkg/proxy/nftables/proxier.go: `setupNFTables`, `syncProxyRules`,
`writeServiceToEndpointRules`), with its chain and map names:

- map `service-ips` (`ClusterIP . protocol . port : goto service-<hash>-ns/svc/proto/port`),
  read by chain `services`, which base chain `nat-output` (nat, output, -100:
  upstream's dstnat priority) jumps to;
- each `service-...` chain picks an `endpoint-...` chain, which DNATs;
- map `no-endpoint-services` (`... : goto reject-chain`), read by chain
  `endpoints-check` for new connections from base chain `filter-output` (filter,
  output, -110: upstream's dstnat-10, before DNAT).

Which endpoints (pkg/proxy/topology.go `CategorizeEndpoints`, cluster traffic
policy): the ready ones; if none is, the serving ones that are terminating (so a
rolling update's last pod still gets connections while it drains). A named
`targetPort` is resolved as kube-proxy resolves it: the EndpointSlice's port of the
same name and protocol gives the number (`endpointslicecache.go`). Only an
endpoint's first address is used, as upstream.

Every sandbox process is local, so the output hook sees every connection: from a
pod (whose connection is then SNATed to its pod IP at postrouting, `ruleset`) and
from a host process alike. The pod's hairpin (a pod reaching itself through its
Service) needs no masquerade here: source and destination are both its pod IP on
loopback. Left out: session affinity (ClientIP), internal traffic policy Local
and topology hints (one node's view is meaningless on one loopback), NodePorts,
external and load-balancer IPs, and the removal of stale UDP conntrack entries.

Addresses are the machine's, shared by every sandbox: a ClusterIP is routed only
if it is on loopback (and the sandbox claimed it, `sandbox.kube.clusterips`), an
endpoint only if it is the address the sandbox's IPAM holds for its pod (or, for
an endpoint that is no pod, any loopback address): never an address off this
machine.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.kube.podutil import ip_order

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
NAME_LENGTH_MAX = 256  # knftables.NameLengthMax
CHAIN_NAME_BASE_LENGTH_MAX = NAME_LENGTH_MAX - 16  # upstream chainNameBaseLengthMax
KubeObject = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class Backend:
    """One endpoint of a Service port: where DNAT sends a connection."""

    ip: str
    port: int


@dataclass(frozen=True)
class ServicePortRoute:
    """One Service port on its ClusterIP, and the endpoints it balances over (none: reject)."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # tcp, udp or sctp, as nft spells them
    cluster_ip: str
    port: int
    backends: tuple[Backend, ...]

    @property
    def name(self) -> str:
        """kube-proxy's ServicePortName with protocol: `ns/svc/tcp/port-name`."""
        return f"{self.namespace}/{self.service}/{self.protocol}/{self.port_name}"


def hash_and_truncate(name: str) -> str:
    """upstream hashAndTruncate: a hash of the name, then the name (cut to fit).

    >>> hash_and_truncate("ns1/svc1/tcp/p80")
    'ULMVA6XW-ns1/svc1/tcp/p80'
    """
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    named = f"{digest[:8]}-{name}"
    if len(named) > CHAIN_NAME_BASE_LENGTH_MAX:
        named = named[: CHAIN_NAME_BASE_LENGTH_MAX - 3] + "..."
    return named


def service_chain(route: ServicePortRoute) -> str:
    return f"service-{hash_and_truncate(route.name)}"


def endpoint_chain(route: ServicePortRoute, backend: Backend) -> str:
    """upstream servicePortEndpointChainNameBase, prefixed.

    >>> route = ServicePortRoute("ns1", "svc1", "p80", "tcp", "172.30.0.41", 80, ())
    >>> endpoint_chain(route, Backend("10.180.0.1", 80))
    'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80'
    """
    return f"endpoint-{hash_and_truncate(f'{route.name}__{backend.ip}/{backend.port}')}"


# ---- which endpoints ----


def _loopback(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.version == 4 and parsed.is_loopback


def _usable_address(endpoint: KubeObject, pod_addresses: Mapping[str, str]) -> str | None:
    """The endpoint's first address, if the sandbox may send traffic there: a pod's only
    while IPAM holds it for that pod; anything else only on loopback."""
    addresses = endpoint.get("addresses") or []
    if not addresses or not _loopback(str(addresses[0])):
        return None
    address = str(addresses[0])
    target = endpoint.get("targetRef") or {}
    if target.get("kind") == "Pod" and pod_addresses.get(target.get("uid", "")) != address:
        return None
    return address


def _conditions(endpoint: KubeObject) -> tuple[bool, bool, bool]:
    """(ready, serving, terminating) as kube-proxy reads them (endpointslicecache.go):
    a nil ready is ready, a nil serving is ready's value, a nil terminating is false."""
    conditions = endpoint.get("conditions") or {}
    ready = conditions.get("ready") is not False
    serving = ready if conditions.get("serving") is None else bool(conditions["serving"])
    return ready, serving, bool(conditions.get("terminating"))


def port_backends(
    slices: Sequence[KubeObject],
    port_name: str,
    protocol: str,
    pod_addresses: Mapping[str, str],
) -> tuple[Backend, ...]:
    """The endpoints one Service port balances over: ready ones, or else serving-terminating.

    >>> piece = {"ports": [{"name": "web", "port": 8089, "protocol": "TCP"}], "endpoints": [
    ...     {"addresses": ["127.0.2.5"], "conditions": {"ready": True}},
    ...     {"addresses": ["127.0.2.6"], "conditions": {"ready": False}}]}
    >>> port_backends([piece], "web", "TCP", {})
    (Backend(ip='127.0.2.5', port=8089),)
    """
    ready: set[Backend] = set()
    draining: set[Backend] = set()
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        numbers = [
            p.get("port")
            for p in piece.get("ports") or []
            if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol
        ]
        if not numbers or numbers[0] is None:
            continue
        for endpoint in piece.get("endpoints") or []:
            address = _usable_address(endpoint, pod_addresses)
            if address is None:
                continue
            is_ready, serving, terminating = _conditions(endpoint)
            backend = Backend(address, int(numbers[0]))
            if is_ready:
                ready.add(backend)
            elif serving and terminating:
                draining.add(backend)
    chosen = ready or draining
    return tuple(sorted(chosen, key=lambda b: (ip_order(b.ip), b.port)))


def service_routes(
    services: Sequence[KubeObject],
    slices: Sequence[KubeObject],
    pod_addresses: Mapping[str, str],
) -> tuple[ServicePortRoute, ...]:
    """Every port of every Service with a loopback ClusterIP, with its backends.

    `pod_addresses` maps a pod's uid to the address the sandbox's IPAM holds for it.
    Headless and ExternalName Services have no ClusterIP and are not proxied.

    >>> svc = {"metadata": {"name": "locust-master", "namespace": "load"},
    ...        "spec": {"clusterIP": "127.0.4.2", "ports": [
    ...            {"name": "master", "port": 5557, "targetPort": "master"}]}}
    >>> piece = {"metadata": {"namespace": "load",
    ...                       "labels": {SERVICE_NAME_LABEL: "locust-master"}},
    ...          "ports": [{"name": "master", "port": 5557, "protocol": "TCP"}],
    ...          "endpoints": [{"addresses": ["127.0.2.9"], "conditions": {"ready": True},
    ...                         "targetRef": {"kind": "Pod", "uid": "u9"}}]}
    >>> [(r.name, r.cluster_ip, r.port, r.backends) for r in
    ...  service_routes([svc], [piece], {"u9": "127.0.2.9"})]
    [('load/locust-master/tcp/master', '127.0.4.2', 5557, (Backend(ip='127.0.2.9', port=5557),))]
    """
    by_service: dict[tuple[str, str], list[KubeObject]] = {}
    for piece in slices:
        metadata = piece.get("metadata") or {}
        owner = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((metadata.get("namespace", ""), owner), []).append(piece)
    routes: list[ServicePortRoute] = []
    for service in services:
        metadata, spec = service.get("metadata") or {}, service.get("spec") or {}
        cluster_ip = str(spec.get("clusterIP") or "")
        if spec.get("type") == "ExternalName" or not _loopback(cluster_ip):
            continue
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        own = by_service.get((namespace, name), [])
        for port in spec.get("ports") or []:
            protocol = str(port.get("protocol") or "TCP")
            port_name = str(port.get("name") or "")
            number = port.get("port")
            if protocol not in PROTOCOLS or not isinstance(number, int) or not 0 < number < 65536:
                continue  # validation's business; one bad port must not break the table
            routes.append(
                ServicePortRoute(
                    namespace,
                    name,
                    port_name,
                    protocol.lower(),
                    cluster_ip,
                    number,
                    port_backends(own, port_name, protocol, pod_addresses),
                )
            )
    # a ClusterIP, protocol and port route one way (an nft map's keys are unique)
    unique: dict[tuple[str, str, int], ServicePortRoute] = {}
    for route in sorted(routes, key=lambda r: (r.name, r.cluster_ip, r.port)):
        unique.setdefault((route.cluster_ip, route.protocol, route.port), route)
    return tuple(unique.values())


# ---- the nft text ----


def _key(route: ServicePortRoute) -> str:
    return f"{route.cluster_ip} . {route.protocol} . {route.port}"


def _verdict_map(name: str, elements: Sequence[str]) -> list[str]:
    lines = [f"map {name} {{", "  type ipv4_addr . inet_proto . inet_service : verdict"]
    if elements:
        lines.append(f"  elements = {{ {', '.join(elements)} }}")
    return [*lines, "}"]


def proxy_chains(routes: Sequence[ServicePortRoute]) -> list[str]:
    """The maps and chains (lines, unindented) for an `inet` table; empty maps without routes.

    >>> route = ServicePortRoute("hf", "web", "http", "tcp", "127.0.4.2", 80,
    ...                          (Backend("127.0.2.5", 8080),))
    >>> for line in proxy_chains([route]):
    ...     if "dnat" in line or "numgen" in line:
    ...         print(line.strip())
    numgen random mod 1 vmap { 0 : goto endpoint-3L2T7TNE-hf/web/tcp/http__127.0.2.5/8080 }
    meta l4proto tcp dnat ip to 127.0.2.5:8080
    """
    served = [r for r in routes if r.backends]
    lines = [
        *_verdict_map("service-ips", [f"{_key(r)} : goto {service_chain(r)}" for r in served]),
        *_verdict_map(
            "no-endpoint-services",
            [f"{_key(r)} : goto reject-chain" for r in routes if not r.backends],
        ),
        "chain filter-output {",
        "  type filter hook output priority -110; policy accept;",
        "  ct state new jump endpoints-check",
        "}",
        "chain endpoints-check {",
        "  ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        "}",
        "chain reject-chain {",
        "  reject",
        "}",
        "chain nat-output {",
        "  type nat hook output priority -100; policy accept;",
        "  jump services",
        "}",
        "chain services {",
        "  ip daddr . meta l4proto . th dport vmap @service-ips",
        "}",
    ]
    for route in served:
        picks = ", ".join(
            f"{index} : goto {endpoint_chain(route, backend)}"
            for index, backend in enumerate(route.backends)
        )
        lines += [
            f"chain {service_chain(route)} {{",
            f"  numgen random mod {len(route.backends)} vmap {{ {picks} }}",
            "}",
        ]
        for backend in route.backends:
            lines += [
                f"chain {endpoint_chain(route, backend)} {{",
                f"  meta l4proto {route.protocol} dnat ip to {backend.ip}:{backend.port}",
                "}",
            ]
    return lines
