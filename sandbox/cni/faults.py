"""What a network fault is, once its selectors are resolved: plain data.

The Chaos Mesh controller turns NetworkChaos objects into `TrafficFault`s (which
pods, which peers, which direction, what happens to the packets); the pod network
(`ruleset`, the netem workers) realizes exactly that set. Neither knows the
other's inputs: the controller knows no nftables, the ruleset no selectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["partition", "netem"]


@dataclass(frozen=True)
class PodEndpoint:
    """A selected pod as the network sees it: its pod IP and its cgroup."""

    namespace: str
    name: str
    ip: str
    cgroup: str  # cgroup v2 path relative to /sys/fs/cgroup (what nft `socket cgroupv2` takes)
    cgroup_level: int  # its depth below the cgroup2 root (nft's `level`)


@dataclass(frozen=True)
class PacketPath:
    """One direction of traffic: packets sent by `source` toward `destinations`.

    `source` is a pod: its own outgoing packets (matched by its cgroup, so whatever
    address they leave from) and nothing else. `destinations` are IPv4 addresses
    (target pods' IPs, or external targets resolved); empty means every destination.
    `towards_source` flips it: packets sent *to* the pod (destination address = the
    pod IP, which its outgoing connections also carry after SNAT) from `destinations`
    (their source addresses; empty: from anywhere).
    """

    source: PodEndpoint
    destinations: tuple[str, ...] = ()
    towards_source: bool = False


@dataclass(frozen=True)
class NetemParams:
    """What tc netem and tbf would do to each packet; zero means "not at all"."""

    delay_seconds: float = 0.0
    jitter_seconds: float = 0.0
    delay_correlation: float = 0.0  # 0..1
    loss: float = 0.0  # probability, 0..1
    loss_correlation: float = 0.0  # 0..1
    rate_bytes_per_second: float = 0.0  # 0: no bandwidth limit
    buffer_bytes: int = 0  # tbf burst
    limit_bytes: int = 0  # tbf queue limit


@dataclass(frozen=True)
class TrafficFault:
    """One chaos record's effect: `action` on every packet on `paths`."""

    key: str  # stable and unique: "<namespace>/<name>/<uid>/<record>"
    action: Action
    paths: tuple[PacketPath, ...]
    netem: NetemParams = field(default_factory=NetemParams)


@dataclass(frozen=True)
class DnsFault:
    """A DNSChaos record: queries from `client_ips` for names matching `patterns`."""

    key: str
    action: Literal["error", "random"]
    client_ips: tuple[str, ...]
    patterns: tuple[str, ...] = ()  # Chaos Mesh's patterns; empty: every name
