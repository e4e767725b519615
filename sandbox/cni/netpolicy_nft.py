"""CompiledPolicies as nftables chains: NetworkPolicy enforcement at the `input` hook.

Why `input`: on loopback every packet passes output, then input, and by input a
pod's outgoing connection already carries its pod IP as source (SNAT in
postrouting). So `ip saddr <podIP>` is the pod as a client and `ip daddr <podIP>`
the pod as a server, whatever cgroup sent it.

`render_policy_chain` gives chain definitions to place inside an `inet` table (the
caller owns the table and applies it whole with `nft -f -`). The base chain is
`netpolicy`, not `policy`: nft 1.0.6's parser takes `policy` (like `snat`) for a
keyword and refuses it as a chain name.

- the base chain `<chain>` (filter, input, policy accept) judges only the first
  packet of a connection: established and related packets are accepted first, and
  so is everything else that is not new. The node's traffic (from or to
  `node_addresses`) and a pod's traffic to its own IP are accepted next. Then a
  verdict map on the source address jumps to the client's egress chain, and one on
  the destination address to the server's ingress chain: pod-to-pod traffic must
  pass both.
- `<chain>_egress_<n>`: one per distinct set of egress allowances (pods with the
  same rules share a chain; a comment line names them). Allowed traffic `return`s
  to the base chain, which goes on to the destination's ingress check; the rest is
  dropped.
- `<chain>_ingress_<n>`: the same for ingress; allowed traffic is accepted.

Rules are grouped for compactness: the peers allowed on one protocol and port set
become one anonymous set (overlaps merged), and the ports allowed to one peer set
one port set. Everything is sorted, so the same policies render the same text.

Worked example: one session-state pod 127.0.2.5 under the seed's policies with
the sandbox overlay (the cluster DNS a kube-system pod at 127.0.3.10, no linkerd
or ingress-nginx pods running) renders::

    chain netpolicy_egress_0 {
        # harmonyflow/session-state-0 127.0.2.5
        ip daddr 127.0.0.0/8 tcp dport { 5432, 5672, 6379 } return
        ip daddr 127.0.3.10 tcp dport 53 return
        ip daddr 127.0.3.10 udp dport 53 return
        drop comment "egress: no NetworkPolicy allows it"
    }
    chain netpolicy_ingress_0 {
        # harmonyflow/session-state-0 127.0.2.5
        drop comment "ingress: no NetworkPolicy allows it"
    }
    chain netpolicy {
        type filter hook input priority filter; policy accept;
        ct state established,related accept
        ct state != new accept
        ip saddr 127.0.0.1 accept comment "from the node: always allowed"
        ip daddr 127.0.0.1 accept comment "to the node: always allowed"
        ip saddr . ip daddr { 127.0.2.5 . 127.0.2.5 } accept comment "a pod to itself"
        ip saddr vmap {
                127.0.2.5 : jump netpolicy_egress_0
        }
        ip daddr vmap {
                127.0.2.5 : jump netpolicy_ingress_0
        }
    }
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sandbox.cni.netpolicy import (
    PROTOCOLS,
    AddressBlock,
    Allowance,
    CompiledPolicies,
    Direction,
    IsolatedPod,
    PortMatch,
)

INDENT = "\t"


def render_policy_chain(compiled: CompiledPolicies, chain: str = "netpolicy") -> str:
    """The policy chains for an `inet` table: the per-pod-group chains, then the base
    chain `chain` hooked at input (see the module docstring for an example)."""
    egress = _groups(compiled.egress)
    ingress = _groups(compiled.ingress)
    parts: list[str] = []
    for index, (allowed, pods) in enumerate(egress):
        parts.append(_verdict_chain(f"{chain}_egress_{index}", "egress", allowed, pods))
    for index, (allowed, pods) in enumerate(ingress):
        parts.append(_verdict_chain(f"{chain}_ingress_{index}", "ingress", allowed, pods))
    parts.append(_base_chain(compiled, chain, egress, ingress))
    return "\n".join(parts)


def allowance_rules(allowed: Iterable[Allowance], direction: Direction) -> list[str]:
    """The match part of one rule per (peer set, protocol), sorted; "" matches all.

    >>> from sandbox.cni.netpolicy import AddressBlock, Allowance, PortMatch
    >>> allowance_rules(
    ...     [
    ...         Allowance(AddressBlock("127.0.0.0/8"), PortMatch("TCP", 5432, 5432)),
    ...         Allowance(AddressBlock("127.0.0.0/8"), PortMatch("TCP", 6379, 6379)),
    ...         Allowance(AddressBlock("10.0.0.0/16", ("10.0.1.0/24",)), PortMatch("UDP")),
    ...     ],
    ...     "egress",
    ... )
    ['ip daddr 10.0.0.0/16 ip daddr != 10.0.1.0/24 meta l4proto udp', \
'ip daddr 127.0.0.0/8 tcp dport { 5432, 6379 }']
    """
    field = "ip saddr" if direction == "ingress" else "ip daddr"
    peers_by_port: dict[PortMatch, list[AddressBlock]] = defaultdict(list)
    for allowance in allowed:
        peers_by_port[allowance.port].append(allowance.peer)
    ports_by_clause: dict[tuple[str, str | None], list[PortMatch]] = defaultdict(list)
    for port, blocks in peers_by_port.items():
        for clause in _peer_clauses(field, blocks):
            ports_by_clause[(clause, port.protocol)].append(port)
    rules = set()
    for (clause, protocol), ports in ports_by_clause.items():
        rules.add(" ".join(part for part in (clause, _port_clause(protocol, ports)) if part))
    return sorted(rules)


# ---- the pieces ----


def _groups(
    pods: Sequence[IsolatedPod],
) -> list[tuple[frozenset[Allowance], list[IsolatedPod]]]:
    """Pods with identical allowances together, in the order of their first address."""
    grouped: dict[frozenset[Allowance], list[IsolatedPod]] = {}
    for pod in pods:  # already sorted by address
        grouped.setdefault(pod.allowed, []).append(pod)
    return list(grouped.items())


def _verdict_chain(
    name: str, direction: Direction, allowed: frozenset[Allowance], pods: Sequence[IsolatedPod]
) -> str:
    verdict = "accept" if direction == "ingress" else "return"
    lines = [f"chain {name} {{"]
    lines += [f"{INDENT}# {pod.ref} {pod.ip}" for pod in pods]
    for match in allowance_rules(allowed, direction):
        lines.append(f"{INDENT}{match} {verdict}".replace(f"{INDENT} ", INDENT))
    lines.append(f'{INDENT}drop comment "{direction}: no NetworkPolicy allows it"')
    lines.append("}")
    return "\n".join(lines)


def _base_chain(
    compiled: CompiledPolicies,
    chain: str,
    egress: Sequence[tuple[frozenset[Allowance], list[IsolatedPod]]],
    ingress: Sequence[tuple[frozenset[Allowance], list[IsolatedPod]]],
) -> str:
    lines = [
        f"chain {chain} {{",
        f"{INDENT}type filter hook input priority filter; policy accept;",
        f"{INDENT}ct state established,related accept",
        f"{INDENT}ct state != new accept",
    ]
    if compiled.node_addresses:
        node = _set(sorted(compiled.node_addresses, key=ipaddress.IPv4Address))
        lines.append(f'{INDENT}ip saddr {node} accept comment "from the node: always allowed"')
        lines.append(f'{INDENT}ip daddr {node} accept comment "to the node: always allowed"')
    isolated = sorted(
        {pod.ip for pod in (*compiled.ingress, *compiled.egress)}, key=ipaddress.IPv4Address
    )
    if isolated:
        itself = ", ".join(f"{ip} . {ip}" for ip in isolated)
        lines.append(f'{INDENT}ip saddr . ip daddr {{ {itself} }} accept comment "a pod to itself"')
    lines += _vmap("ip saddr", f"{chain}_egress", egress)
    lines += _vmap("ip daddr", f"{chain}_ingress", ingress)
    lines.append("}")
    return "\n".join(lines)


def _vmap(
    field: str, prefix: str, groups: Sequence[tuple[frozenset[Allowance], list[IsolatedPod]]]
) -> list[str]:
    entries = sorted(
        ((pod.ip, f"{prefix}_{index}") for index, (_, pods) in enumerate(groups) for pod in pods),
        key=lambda entry: ipaddress.IPv4Address(entry[0]),
    )
    if not entries:
        return []
    body = ",\n".join(f"{INDENT * 2}{ip} : jump {target}" for ip, target in entries)
    return [f"{INDENT}{field} vmap {{", body, f"{INDENT}}}"]


def _peer_clauses(field: str, blocks: Sequence[AddressBlock]) -> list[str]:
    """Plain blocks merged into one address set; each block with excepts on its own."""
    plain = list(
        ipaddress.collapse_addresses(
            ipaddress.IPv4Network(b.cidr, strict=False) for b in blocks if not b.excepts
        )
    )
    clauses = []
    if any(network.prefixlen == 0 for network in plain):
        clauses.append("")
    elif plain:
        clauses.append(f"{field} {_set([_address(n) for n in plain])}")
    for block in sorted({b for b in blocks if b.excepts}, key=lambda b: (b.cidr, b.excepts)):
        excepts = ipaddress.collapse_addresses(
            ipaddress.IPv4Network(e, strict=False) for e in block.excepts
        )
        shown = _address(ipaddress.IPv4Network(block.cidr, strict=False))
        clauses.append(f"{field} {shown} {field} != {_set([_address(e) for e in excepts])}")
    return clauses


def _port_clause(protocol: str | None, ports: Sequence[PortMatch]) -> str:
    if protocol is None:
        return ""
    name = protocol.lower() if protocol in PROTOCOLS else protocol
    if any(port.first is None for port in ports):
        return f"meta l4proto {name}"
    ranges = _merged((p.first or 0, p.last or p.first or 0) for p in ports)
    shown = [str(first) if first == last else f"{first}-{last}" for first, last in ranges]
    return f"{name} dport {_set(shown)}"


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or adjacent port ranges joined (nft refuses overlapping intervals)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _address(network: ipaddress.IPv4Network) -> str:
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"
