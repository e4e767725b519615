"""A zone cut off from the rest: AWS FIS's `aws:network:disrupt-connectivity`, emulated.

FIS clones the network ACL of each target subnet and adds deny rules for the
action's `duration` (AWS FIS User Guide, "Network actions"). A network ACL is
stateless, so established connections lose their packets too, both ways, and
nothing answers: no reset, no ICMP. With scope `all` the subnet keeps only its
intra-subnet traffic; with `availability-zone` it loses the VPC's other zones.
The sandbox has one subnet per zone and no traffic from outside the VPC but the
node's own, so both scopes cut the same thing: every packet between a member of
the zone and anything outside it.

Members are the zone's addresses: the pod IPs of the pods on the zone's nodes
(computed at every reconcile, so a pod scheduled there during the fault is cut
off too, as on AWS) and the infrastructure's hosts in the zone (the DB instance's
host, the cache nodes, the brokers), fixed when the action starts, as a host
does not move between subnets. The node itself (127.0.0.1: the kubelet's probes,
the API server's streams) stays exempt: its kubelet is on the same instance,
inside the subnet, and the sandbox cannot tell the API server's packets from
the kubelet's. The rules are at the input hook, where every loopback packet
passes after SNAT has given a pod's packets its pod IP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ZONE_LABEL = "topology.kubernetes.io/zone"
NODE_ADDRESS = "127.0.0.1"  # every node's own traffic on loopback


@dataclass(frozen=True)
class IsolatedZone:
    """One zone cut off: its member addresses, sorted."""

    zone: str
    members: tuple[str, ...]


def zone_members(
    zone: str,
    pods: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    hosts: Iterable[str],
) -> IsolatedZone:
    """The zone's addresses: pods with a pod IP on its nodes, and its infrastructure hosts.

    >>> nodes = [{"metadata": {"name": "n-a", "labels": {ZONE_LABEL: "a"}}},
    ...          {"metadata": {"name": "n-c", "labels": {ZONE_LABEL: "c"}}}]
    >>> pods = [{"spec": {"nodeName": "n-c"}, "status": {"podIP": "127.0.2.7"}},
    ...         {"spec": {"nodeName": "n-a"}, "status": {"podIP": "127.0.2.5"}},
    ...         {"spec": {"nodeName": "n-c"}, "status": {}}]
    >>> zone_members("c", pods, nodes, ["127.0.3.12"])
    IsolatedZone(zone='c', members=('127.0.2.7', '127.0.3.12'))
    """
    in_zone = {
        (node.get("metadata") or {}).get("name")
        for node in nodes
        if ((node.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL) == zone
    }
    members = set(hosts)
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP", "")
        if ip and (pod.get("spec") or {}).get("nodeName") in in_zone:
            members.add(ip)
    members.discard(NODE_ADDRESS)
    return IsolatedZone(zone, tuple(sorted(members)))


def isolation_rules(zones: Sequence[IsolatedZone]) -> list[str]:
    """nft rules (input hook) dropping every packet between a zone and the rest.

    >>> for rule in isolation_rules([IsolatedZone("c", ("127.0.2.7", "127.0.3.12"))]):
    ...     print(rule.replace("127.0.", ""))
    ip saddr { 2.7, 3.12 } ip daddr != { 0.1, 2.7, 3.12 } drop comment "zone c cut off: out"
    ip daddr { 2.7, 3.12 } ip saddr != { 0.1, 2.7, 3.12 } drop comment "zone c cut off: in"
    """
    rules = []
    for isolated in sorted(zones, key=lambda z: z.zone):
        if not isolated.members:
            continue
        members = ", ".join(isolated.members)
        allowed = ", ".join(sorted({NODE_ADDRESS, *isolated.members}))
        rules += [
            f"ip saddr {{ {members} }} ip daddr != {{ {allowed} }} drop"
            f' comment "zone {isolated.zone} cut off: out"',
            f"ip daddr {{ {members} }} ip saddr != {{ {allowed} }} drop"
            f' comment "zone {isolated.zone} cut off: in"',
        ]
    return rules


@dataclass
class ZoneIsolation:
    """The zones cut off now, and their infrastructure hosts; what the FIS emulation
    sets and the pod network reads. Two actions may cut one zone: it stays cut until
    both have ended. Lives on the control plane's loop."""

    _cuts: dict[str, list[frozenset[str]]] = field(default_factory=dict)
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    def cut(self, zone: str, hosts: Iterable[str]) -> None:
        self._cuts.setdefault(zone, []).append(frozenset(hosts))
        self._changed()

    def restore(self, zone: str) -> None:
        cuts = self._cuts.get(zone)
        if not cuts:
            return
        cuts.pop()
        if not cuts:
            del self._cuts[zone]
        self._changed()

    def zones(self) -> dict[str, frozenset[str]]:
        """Each zone cut off, with the hosts of all the cuts on it."""
        return {zone: frozenset().union(*cuts) for zone, cuts in self._cuts.items()}

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()
