"""NetworkPolicy semantics as pure functions: which pods are isolated, and what each may do.

The upstream rules (networking.k8s.io/v1, "Network Policies" in the Kubernetes docs),
as this module applies them:

- A pod is isolated for ingress (egress) iff some NetworkPolicy in its namespace
  selects it (`spec.podSelector`, `{}`: every pod) and lists Ingress (Egress) in
  `policyTypes`. Unset `policyTypes` defaults as the API server does: Ingress
  always, Egress when the policy has egress rules.
- What an isolated pod may do is the union of the rules of every policy selecting
  it for that direction. A policy with the type but no rules allows nothing: that
  is the default deny.
- A rule allows traffic from (to) any of its peers on any of its ports. No `from`
  (`to`) means every peer, no `ports` every port of every protocol.
- Peers: `podSelector` alone selects pods in the policy's namespace;
  `namespaceSelector` alone every pod in the namespaces it selects (each namespace
  carries `kubernetes.io/metadata.name` on top of its labels); both in one peer
  select the pods matching the first in the namespaces matching the second.
  `ipBlock` is a CIDR minus its `except` blocks, matched against any address, pod
  or not (the docs leave pod IPs in ipBlocks to the implementation; iptables-based
  plugins match them, and so do we).
- Ports: `protocol` (default TCP), `port` a number or a container port name, and
  `endPort` for a range. A name resolves against the *destination* pod's container
  ports of that protocol: the isolated pod itself for ingress, each peer pod for
  egress. A name that a destination does not have allows nothing to it, and a name
  never matches a non-pod address.
- Traffic from and to the node is always allowed, whatever the policies say; here
  the node is a set of addresses (`NODE_ADDRESSES`: 127.0.0.1, where host
  processes -- kubelet probes, Prometheus, tests -- connect from; the ingress
  and the cluster DNS have addresses of their own and are pods to NetworkPolicy,
  see `sandbox.cni.infrapeers`). A pod's traffic
  to its own pod IP never leaves the pod and is not judged either. Both are the
  renderer's business; `connection_allowed` answers them too.
- Only the first packet of a connection is judged; replies of an allowed
  connection are allowed (stateful). Pod-to-pod traffic must pass both the
  client's egress and the server's ingress.

`compile_policies` turns the policies and the cluster's pods and namespaces into a
`CompiledPolicies` value: per isolated pod and direction, the set of `Allowance`s
(peer address block x protocol and port range). `connection_allowed` is the
oracle over it; `sandbox.cni.netpolicy_nft` renders it as nftables rules.

Worked example (the seed's policies, one session-state pod 127.0.2.5, the cluster
DNS as the kube-system pod 127.0.3.10, the sandbox overlay's ipBlock 127.0.0.0/8):
the pod is isolated both ways (default-deny selects every pod). Its egress
allowances are 127.0.3.10/32 on UDP 53 and TCP 53 (kube-system), 127.0.0.0/8 on
TCP 5432, 5672, 6379 (ipBlock) and, for every pod of a namespace labelled
name=linkerd, TCP 4140. Its ingress allowances are every pod of namespaces
labelled name=ingress-nginx on TCP 8080 and 8443, of name=monitoring on 8080, and
of name=linkerd on 4143. So `connection_allowed(c, "127.0.2.5", "127.0.3.1", "TCP",
5432)` is True, the same to port 22 is False, and 127.0.0.1 (the node) to
127.0.2.5:8080 is True though no rule names the node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.kube.selectors import LabelSelector, selector_from_match

Direction = Literal["ingress", "egress"]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NODE_ADDRESSES: tuple[str, ...] = ("127.0.0.1",)
EVERYWHERE = "0.0.0.0/0"
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class PolicyPod:
    """A pod as NetworkPolicy sees it. `container_ports`: name -> (port, protocol)."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str] = field(default_factory=dict)
    container_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyNamespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def selectable_labels(self) -> dict[str, str]:
        """Its labels plus `kubernetes.io/metadata.name`, which the API server sets on
        every namespace (and which namespaceSelectors rely on)."""
        return {**self.labels, NAMESPACE_NAME_LABEL: self.name}


@dataclass(frozen=True)
class AddressBlock:
    """An IPv4 CIDR minus `excepts`: an ipBlock, or a pod as `<ip>/32`."""

    cidr: str
    excepts: tuple[str, ...] = ()

    def contains(self, address: str) -> bool:
        ip = ipaddress.IPv4Address(address)
        if ip not in ipaddress.IPv4Network(self.cidr, strict=False):
            return False
        return not any(ip in ipaddress.IPv4Network(e, strict=False) for e in self.excepts)

    @property
    def everywhere(self) -> bool:
        return ipaddress.IPv4Network(self.cidr, strict=False).prefixlen == 0 and not self.excepts


@dataclass(frozen=True)
class PortMatch:
    """A protocol and a port range; `protocol` None: every protocol and port (a rule
    without ports), `first` None: every port of `protocol`."""

    protocol: str | None = None
    first: int | None = None
    last: int | None = None

    def matches(self, protocol: str, port: int) -> bool:
        if self.protocol is None:
            return True
        if protocol != self.protocol:
            return False
        if self.first is None:
            return True
        return self.first <= port <= (self.last if self.last is not None else self.first)

    @property
    def sort_key(self) -> tuple[str, int, int]:
        return (self.protocol or "", self.first or 0, self.last or self.first or 0)


ANY_PORT = PortMatch()


@dataclass(frozen=True)
class Allowance:
    """The peer (source for ingress, destination for egress) and port one rule allows."""

    peer: AddressBlock
    port: PortMatch

    def matches(self, peer_address: str, protocol: str, port: int) -> bool:
        return self.peer.contains(peer_address) and self.port.matches(protocol, port)


@dataclass(frozen=True)
class IsolatedPod:
    """A pod isolated for one direction, and everything allowed to (from) it; empty
    `allowed`: nothing is."""

    namespace: str
    name: str
    ip: str
    allowed: frozenset[Allowance]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class CompiledPolicies:
    """Per direction, every isolated pod (sorted by address) with its allowances."""

    ingress: tuple[IsolatedPod, ...] = ()
    egress: tuple[IsolatedPod, ...] = ()
    node_addresses: tuple[str, ...] = NODE_ADDRESSES

    def isolated(self, direction: Direction) -> tuple[IsolatedPod, ...]:
        return self.ingress if direction == "ingress" else self.egress


def compile_policies(
    policies: Sequence[Mapping[str, Any]],
    pods: Sequence[PolicyPod],
    namespaces: Sequence[PolicyNamespace],
    node_addresses: tuple[str, ...] = NODE_ADDRESSES,
) -> CompiledPolicies:
    """Who is isolated and what is allowed, from NetworkPolicy objects (API JSON).

    Pods without an address are left out (nothing to enforce yet); namespaces not
    in `namespaces` carry only their `kubernetes.io/metadata.name` label, and of a
    name listed twice the last counts.
    """
    addressed = [pod for pod in pods if pod.ip]
    cluster = _Cluster(addressed, {ns.name: ns for ns in namespaces})
    compiled: dict[Direction, tuple[IsolatedPod, ...]] = {}
    for direction in ("ingress", "egress"):
        per_pod: dict[tuple[str, str], set[Allowance]] = {}
        for policy in policies:
            if direction not in _policy_types(policy):
                continue
            for pod in cluster.selected_by(policy):
                allowed = per_pod.setdefault((pod.namespace, pod.name), set())
                allowed |= _policy_allowances(policy, direction, pod, cluster)
        by_key = {(pod.namespace, pod.name): pod for pod in addressed}
        compiled[direction] = tuple(
            sorted(
                (
                    IsolatedPod(ns, name, by_key[(ns, name)].ip, frozenset(allowed))
                    for (ns, name), allowed in per_pod.items()
                ),
                key=lambda p: (ipaddress.IPv4Address(p.ip), p.namespace, p.name),
            )
        )
    return CompiledPolicies(compiled["ingress"], compiled["egress"], node_addresses)


def connection_allowed(
    compiled: CompiledPolicies, source: str, destination: str, protocol: str, port: int
) -> bool:
    """Whether a new connection from `source` to `destination:port` is allowed.

    The node's traffic and a pod's traffic to itself always are; otherwise the
    source's egress (if it is an isolated pod) and the destination's ingress (if it
    is one) must both allow it.
    """
    if source in compiled.node_addresses or destination in compiled.node_addresses:
        return True
    if source == destination:
        return True
    for pod in compiled.egress:
        if pod.ip == source and not any(
            a.matches(destination, protocol, port) for a in pod.allowed
        ):
            return False
    for pod in compiled.ingress:
        if pod.ip == destination and not any(
            a.matches(source, protocol, port) for a in pod.allowed
        ):
            return False
    return True


def allowances_for(
    compiled: CompiledPolicies, direction: Direction, ip: str
) -> Iterable[Allowance]:
    """The allowances of the pod at `ip` in one direction (empty if it is not isolated)."""
    for pod in compiled.isolated(direction):
        if pod.ip == ip:
            return pod.allowed
    return ()


# ---- the pieces ----


@dataclass(frozen=True)
class _Cluster:
    pods: Sequence[PolicyPod]
    namespaces: Mapping[str, PolicyNamespace]

    def namespace_labels(self, name: str) -> dict[str, str]:
        return self.namespaces.get(name, PolicyNamespace(name)).selectable_labels

    def selected_by(self, policy: Mapping[str, Any]) -> list[PolicyPod]:
        selector = _selector((policy.get("spec") or {}).get("podSelector"))
        namespace = _namespace_of(policy)
        return [p for p in self.pods if p.namespace == namespace and selector.matches(p.labels)]

    def peer_pods(self, peer: Mapping[str, Any], policy_namespace: str) -> list[PolicyPod]:
        pod_selector = _selector(peer.get("podSelector"))
        if "namespaceSelector" in peer and peer["namespaceSelector"] is not None:
            namespace_selector = _selector(peer["namespaceSelector"])
            return [
                p
                for p in self.pods
                if namespace_selector.matches(self.namespace_labels(p.namespace))
                and pod_selector.matches(p.labels)
            ]
        return [
            p
            for p in self.pods
            if p.namespace == policy_namespace and pod_selector.matches(p.labels)
        ]


def _policy_types(policy: Mapping[str, Any]) -> set[Direction]:
    """`spec.policyTypes`, defaulted as upstream's SetDefaults_NetworkPolicy."""
    spec = policy.get("spec") or {}
    listed = spec.get("policyTypes") or []
    if not listed:
        listed = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    types: set[Direction] = set()
    if "Ingress" in listed:
        types.add("ingress")
    if "Egress" in listed:
        types.add("egress")
    return types


def _policy_allowances(
    policy: Mapping[str, Any], direction: Direction, pod: PolicyPod, cluster: _Cluster
) -> set[Allowance]:
    spec = policy.get("spec") or {}
    peers_key = "from" if direction == "ingress" else "to"
    allowed: set[Allowance] = set()
    for rule in [r or {} for r in spec.get(direction) or []]:
        ports = rule.get("ports") or []
        peers = _rule_peers(
            rule.get(peers_key),
            _namespace_of(policy),
            cluster,
            every_pod=direction == "egress" and _names_a_port(ports),
        )
        for block, destination in peers:
            target = pod if direction == "ingress" else destination
            for match in _port_matches(ports, target):
                allowed.add(Allowance(block, match))
    return allowed


def _rule_peers(
    peers: Sequence[Mapping[str, Any]] | None,
    policy_namespace: str,
    cluster: _Cluster,
    every_pod: bool,
) -> Iterator[tuple[AddressBlock, PolicyPod | None]]:
    """Each peer as an address block, with the pod behind it (None: not a pod, so no
    named port resolves against it). No peers: every address -- and, when the rule
    names a port (`every_pod`), every pod too, so that the name resolves against
    each pod it may reach."""
    if not peers:
        yield AddressBlock(EVERYWHERE), None
        if every_pod:
            for pod in cluster.pods:
                yield _pod_block(pod), pod
        return
    for peer in peers:
        block = peer.get("ipBlock")
        if block is not None:
            excepts = tuple(sorted(_network(e) for e in block.get("except") or []))
            yield AddressBlock(_network(block["cidr"]), excepts), None
        elif "podSelector" in peer or "namespaceSelector" in peer:
            for pod in cluster.peer_pods(peer, policy_namespace):
                yield _pod_block(pod), pod


def _port_matches(
    ports: Sequence[Mapping[str, Any]], destination: PolicyPod | None
) -> list[PortMatch]:
    """The rule's ports toward one destination; no ports: every port."""
    if not ports:
        return [ANY_PORT]
    matches = []
    for entry in ports:
        protocol = str(entry.get("protocol") or "TCP")
        port = entry.get("port")
        if port is None:
            matches.append(PortMatch(protocol))
        elif isinstance(port, int) or str(port).isdigit():
            first = int(port)
            end = entry.get("endPort")
            matches.append(PortMatch(protocol, first, int(end) if end is not None else first))
        elif destination is not None:
            named = destination.container_ports.get(str(port))
            if named is not None and named[1] == protocol:
                matches.append(PortMatch(protocol, named[0], named[0]))
    return matches


def _names_a_port(ports: Sequence[Mapping[str, Any]]) -> bool:
    return any(isinstance(p.get("port"), str) and not p["port"].isdigit() for p in ports)


def _selector(raw: Mapping[str, Any] | None) -> LabelSelector:
    """A NetworkPolicy selector: absent or `{}` selects everything."""
    selector = selector_from_match(raw or {})
    assert selector is not None
    return selector


def _namespace_of(policy: Mapping[str, Any]) -> str:
    return str((policy.get("metadata") or {}).get("namespace") or "default")


def _pod_block(pod: PolicyPod) -> AddressBlock:
    return AddressBlock(f"{pod.ip}/32")


def _network(cidr: str) -> str:
    return str(ipaddress.IPv4Network(cidr, strict=False))
