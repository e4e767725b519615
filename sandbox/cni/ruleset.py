"""The pod network as one nftables table, rendered from plain data.

One table per sandbox (`inet hfnet_<sandbox id>`), replaced whole in one `nft -f`
transaction whenever pods, NetworkPolicies or chaos change, so the kernel never
holds half of a change:

- chains `pod_identity` (output) and `pod_snat` (nat, postrouting): a pod's outgoing
  connections leave from its pod IP: the first packet is matched by the pod's cgroup
  and its connection marked with the pod IP, which SNAT then gives it. What a CNI gives
  every pod, and what lets a packet sent *to* a pod be recognized by its destination
  address alone.
- chain `pod_chaos` (filter, output, before iptables' mangle): Chaos Mesh's faults.
  A partition drops in the kernel, as Chaos Mesh's iptables rules do; a netem
  fault marks its packets, and one iptables-nft rule per fault hands marked
  packets to its netem worker's NFQUEUE (this kernel has neither netem nor nft's
  `queue` expression; xt NFQUEUE through iptables-nft it has).
- chain `netpolicy` (filter, input) and its per-group chains: NetworkPolicy, rendered
  by `netpolicy_nft`.
- chain `zone_isolation` (filter, input, before `netpolicy`): the zones FIS's
  disrupt-connectivity cuts off, by address (`zones`).
- kube-proxy's chains and maps (`filter-output`, `nat-output`, `services`, ...):
  connections to a Service's ClusterIP DNATed to one of its endpoints, or rejected
  when it has none (`services`). DNAT is at output priority -100, after
  `pod_identity` and `pod_chaos` (which see the ClusterIP, as a pod's own network
  namespace does on a node) and before SNAT, so a pod's connection to a Service
  still leaves from its pod IP; `netpolicy` and `zone_isolation` (input) see the
  endpoint's address, as upstream's policy does.

Packets sent by a pod are matched at the output hook by the cgroup of their
socket; packets sent to it by its pod IP as destination (inbound connections, and
replies to its own connections after SNAT).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.cni.faults import PacketPath, TrafficFault
from sandbox.cni.services import ServicePortRoute, proxy_chains
from sandbox.cni.zones import IsolatedZone, isolation_rules

TABLE_PREFIX = "hfnet_"
CHAIN_PREFIX = "HFNET-"
MARK_BASE = 0x48460000  # "HF": the sandbox's netem marks, one per NFQUEUE number
MARK_MASK = 0xFFFF0000


@dataclass(frozen=True)
class PodAddress:
    """A running pod as SNAT needs it."""

    ip: str
    cgroup: str
    cgroup_level: int


@dataclass(frozen=True)
class QueuedFault:
    """A netem fault and the NFQUEUE number its worker reads."""

    fault: TrafficFault
    queue: int

    @property
    def mark(self) -> int:
        return mark_for(self.queue)


@dataclass(frozen=True)
class NetworkTable:
    name: str
    pods: tuple[PodAddress, ...] = ()
    partitions: tuple[TrafficFault, ...] = ()
    queued: tuple[QueuedFault, ...] = ()
    policy_chains: str = ""  # NetworkPolicy's chains, as `netpolicy_nft` renders them
    isolated: tuple[IsolatedZone, ...] = ()
    services: tuple[ServicePortRoute, ...] = ()


def table_name(sandbox_id: str) -> str:
    return f"{TABLE_PREFIX}{sandbox_id}"


def iptables_chain(sandbox_id: str) -> str:
    """The iptables-nft chain (mangle) that feeds this sandbox's netem workers."""
    return f"{CHAIN_PREFIX}{sandbox_id}"


def mark_for(queue: int) -> int:
    if not 0 <= queue <= 0xFFFF:
        raise ValueError(f"NFQUEUE number {queue} is outside 0..65535")
    return MARK_BASE | queue


def match_path(path: PacketPath) -> str:
    """The nft match of one direction of traffic.

    >>> from sandbox.cni.faults import PodEndpoint
    >>> pod = PodEndpoint("hf", "p", "127.0.2.5", "unified/harmonyflow/s/podu", 3)
    >>> match_path(PacketPath(pod, ("127.0.3.11", "127.0.3.12")))
    'socket cgroupv2 level 3 "unified/harmonyflow/s/podu" ip daddr { 127.0.3.11, 127.0.3.12 }'
    >>> match_path(PacketPath(pod, ("127.0.3.11",), towards_source=True))
    'ip daddr 127.0.2.5 ip saddr { 127.0.3.11 }'
    >>> match_path(PacketPath(pod))
    'socket cgroupv2 level 3 "unified/harmonyflow/s/podu"'
    """
    peers = f"{{ {', '.join(sorted(set(path.destinations)))} }}" if path.destinations else ""
    if path.towards_source:
        match = f"ip daddr {path.source.ip}"
        return f"{match} ip saddr {peers}" if peers else match
    match = f'socket cgroupv2 level {path.source.cgroup_level} "{path.source.cgroup}"'
    return f"{match} ip daddr {peers}" if peers else match


def chaos_rules(partitions: Sequence[TrafficFault], queued: Sequence[QueuedFault]) -> list[str]:
    """Partitions drop; netem faults mark for their queue. A packet matched by two netem
    faults goes to the first (in key order), as one tc qdisc holds a packet once."""
    rules: list[str] = []
    for fault in sorted(partitions, key=lambda f: f.key):
        rules += [f"{match_path(path)} drop" for path in fault.paths]
    for item in sorted(queued, key=lambda q: q.fault.key):
        rules += [
            f"meta mark & {MARK_MASK:#010x} != {MARK_BASE:#010x} {match_path(path)} "
            f"meta mark set {item.mark:#010x}"
            for path in item.fault.paths
        ]
    return rules


def ct_mark(ip: str) -> int:
    """A pod's connections carry its pod IP as their conntrack mark, from output to SNAT.

    >>> hex(ct_mark("127.0.2.5"))
    '0x7f000205'
    """
    return int(ipaddress.IPv4Address(ip))


def identity_rules(pods: Sequence[PodAddress]) -> list[str]:
    """At output: a new connection from a pod's socket is marked with the pod's IP. (nft's
    `socket` expression is not allowed at postrouting, where SNAT happens.)"""
    return [
        f'ct state new socket cgroupv2 level {pod.cgroup_level} "{pod.cgroup}" '
        f"ct mark set {ct_mark(pod.ip):#010x}"
        for pod in sorted(pods, key=lambda p: p.cgroup)
    ]


def snat_rules(pods: Sequence[PodAddress]) -> list[str]:
    return [
        f"meta nfproto ipv4 ct mark {ct_mark(pod.ip):#010x} snat ip to {pod.ip}"
        for pod in sorted(pods, key=lambda p: p.cgroup)
    ]


def render_table(table: NetworkTable) -> str:
    """The `nft -f` script that replaces the table whole (`add` first makes `delete` safe)."""
    lines = [
        f"add table inet {table.name}",
        f"delete table inet {table.name}",
        f"table inet {table.name} {{",
        "  chain pod_snat {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *(f"    {rule}" for rule in snat_rules(table.pods)),
        "  }",
        "  chain pod_identity {",
        "    type filter hook output priority -190; policy accept;",
        *(f"    {rule}" for rule in identity_rules(table.pods)),
        "  }",
        "  chain pod_chaos {",
        "    type filter hook output priority -180; policy accept;",
        *(f"    {rule}" for rule in chaos_rules(table.partitions, table.queued)),
        "  }",
        "  chain zone_isolation {",
        "    type filter hook input priority -5; policy accept;",
        *(f"    {rule}" for rule in isolation_rules(table.isolated)),
        "  }",
        *(f"  {line}" if line else line for line in table.policy_chains.splitlines()),
        *(f"  {line}" for line in proxy_chains(table.services)),
        "}",
        "",
    ]
    return "\n".join(lines)


def iptables_queue_rules(chain: str, queued: Sequence[QueuedFault]) -> list[list[str]]:
    """The `iptables -t mangle` argument lists that (re)fill `chain`: flush, then one
    NFQUEUE rule per netem fault. `--queue-bypass` lets packets through while no worker
    listens (fail open: a dead worker must not become a partition nobody asked for)."""
    commands = [["-t", "mangle", "-F", chain]]
    for item in sorted(queued, key=lambda q: q.queue):
        commands.append(
            [
                "-t",
                "mangle",
                "-A",
                chain,
                "-m",
                "mark",
                "--mark",
                f"{item.mark:#010x}",
                "-j",
                "NFQUEUE",
                "--queue-num",
                str(item.queue),
                "--queue-bypass",
            ]
        )
    return commands
