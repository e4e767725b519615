"""Service ClusterIPs on loopback (127.0.4.2-254), unique on the machine.

kube-apiserver gives every Service but a headless or ExternalName one an address
from `--service-cluster-ip-range` (pkg/registry/core/service/ipallocator); the
sandbox's range is 127.0.4.0/24, on loopback like every sandbox address.

The pod network's kube-proxy rules (`sandbox.cni.services`) catch connections to a
ClusterIP at the nat output hook, which every process of the machine passes, and
nothing there tells one sandbox's host processes from another's. So two sandboxes
on one machine must never hold the same ClusterIP: as the pod IPs are
(`sandbox.kube.kubelet.ipam`), each address is claimed across processes with an
exclusive `flock`, dropped by the kernel when the sandbox dies. A sandbox keeps an
address it claimed until it stops; a deleted Service's address goes back to this
sandbox's own pool, so no other sandbox takes an address while this one's rules may
still name it.
"""

from __future__ import annotations

from collections.abc import Collection

from sandbox.kube.addressclaims import AddressClaims

CLUSTER_IP_PREFIX = "127.0.4."
CLUSTER_IP_RANGE = tuple(f"{CLUSTER_IP_PREFIX}{host}" for host in range(2, 255))


class ClusterIpAllocator:
    """`allocate(used)` gives the lowest address this sandbox may use and no live Service
    of it uses; without `claims` (a bare store in unit tests) addresses are the store's
    alone, as before there was a pod network."""

    def __init__(
        self, claims: AddressClaims | None = None, pool: tuple[str, ...] = CLUSTER_IP_RANGE
    ) -> None:
        self.claims = claims
        self.pool = pool
        self._held: set[str] = set()

    def allocate(self, used: Collection[str]) -> str | None:
        """An address for a new Service (None: the range is full)."""
        for address in self.pool:
            if address not in used and self._hold(address):
                return address
        return None

    def reserve(self, address: str, used: Collection[str]) -> bool:
        """Whether a Service may have the `clusterIP` its creator asked for: not another
        Service's, and (in the range) not another sandbox's."""
        if address in used:
            return False
        return address not in self.pool or self._hold(address)

    def release_all(self) -> None:
        """The sandbox stops: every claimed address may go to anyone."""
        if self.claims is not None:
            for address in sorted(self._held):
                self.claims.release(address)
        self._held.clear()

    def _hold(self, address: str) -> bool:
        if address in self._held:
            return True
        if self.claims is not None and not self.claims.claim(address):
            return False
        self._held.add(address)
        return True
