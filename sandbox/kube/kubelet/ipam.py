"""Pod IP addresses on loopback, shared by every kubelet of the sandbox.

Real pods get 127.0.2.2-127.0.2.254 (a pod binds its own address, the
sandbox's stand-in for a network namespace); virtual pods get addresses from
127.1.0.0/16. Like the host-local CNI plugin, allocation goes round from the
last address handed out, so a released address is not reused at once.

Real pods bind their address, and several sandboxes (or test runs) may share
one machine, so a real address is also claimed across processes: an
exclusive `flock` on `<lock_dir>/<address>`, held while allocated and dropped
by the kernel if the process dies. An address some other process already
listens on (a stray from a killed run) is skipped too.

Like CNI DEL, which removes the pod's network (its policy, its routes) before the
address goes back to IPAM, a released real address is first only *detached*: no
pod owns it, but it stays claimed until the pod network has applied a state without
it (`finish_release`). Otherwise another sandbox could claim it while this one's
nft rules for it (a NetworkPolicy's deny, a chaos fault) still stand, and its pod
would inherit them. Without a pod network (`defer_release` off) release is at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.kube.addressclaims import DEFAULT_LOCK_DIR, AddressClaims

REAL_POOL = tuple(f"127.0.2.{host}" for host in range(2, 255))
VIRTUAL_POOL_NETWORK = ipaddress.IPv4Network("127.1.0.0/16")


class AddressesExhaustedError(Exception):
    """No free address: the kubelet reports FailedCreatePodSandBox on the pod."""


def _virtual_pool() -> tuple[str, ...]:
    return tuple(str(a) for a in VIRTUAL_POOL_NETWORK.hosts() if a.packed[3] not in (0, 255))


@dataclass
class Pool:
    addresses: tuple[str, ...]
    claims: AddressClaims | None = None  # None: nothing binds these (virtual pods)
    used: dict[str, str] = field(default_factory=dict)  # address -> owner (pod uid)
    by_owner: dict[str, str] = field(default_factory=dict)
    cursor: int = 0

    def allocate(self, owner: str) -> str:
        if owner in self.by_owner:
            return self.by_owner[owner]
        for step in range(len(self.addresses)):
            index = (self.cursor + step) % len(self.addresses)
            address = self.addresses[index]
            if address not in self.used and (self.claims is None or self.claims.claim(address)):
                self.used[address], self.by_owner[owner] = owner, address
                self.cursor = index + 1
                return address
        raise AddressesExhaustedError(
            f"failed to allocate for range 0: no IP addresses available in range set: "
            f"{self.addresses[0]}-{self.addresses[-1]}"
        )

    def release(self, owner: str) -> None:
        address = self.detach(owner)
        if address is not None:
            self.free(address)

    def detach(self, owner: str) -> str | None:
        """The owner gives its address up; it stays used (and claimed) until `free`."""
        return self.by_owner.pop(owner, None)

    def free(self, address: str) -> None:
        if self.used.pop(address, None) is not None and self.claims is not None:
            self.claims.release(address)


class IpAllocator:
    def __init__(
        self,
        real: tuple[str, ...] = REAL_POOL,
        virtual: tuple[str, ...] | None = None,
        lock_dir: Path = DEFAULT_LOCK_DIR,
    ) -> None:
        self._real = Pool(real, AddressClaims(lock_dir))
        self._virtual = Pool(virtual if virtual is not None else _virtual_pool())
        self._owners: dict[str, Pool] = {}
        self._detached: dict[str, Pool] = {}  # released by their pod, still in the network's rules
        self.defer_release = False  # set by the sandbox when a pod network holds rules by address

    def allocate(self, owner: str, virtual: bool = False) -> str:
        """The owner's address (the same one again if it already holds one)."""
        pool = self._virtual if virtual else self._real
        address = pool.allocate(owner)
        self._owners[owner] = pool
        return address

    def release(self, owner: str) -> None:
        pool = self._owners.pop(owner, None)
        if pool is None:
            return
        if not self.defer_release or pool.claims is None:
            pool.release(owner)
        elif (address := pool.detach(owner)) is not None:
            self._detached[address] = pool

    def detached(self) -> frozenset[str]:
        """Real addresses released by their pods and not yet out of the pod network."""
        return frozenset(self._detached)

    def finish_release(self, addresses: Iterable[str]) -> None:
        """The pod network no longer names these: they may go to anyone now."""
        for address in addresses:
            pool = self._detached.pop(address, None)
            if pool is not None:
                pool.free(address)

    def address_of(self, owner: str) -> str | None:
        pool = self._owners.get(owner)
        return pool.by_owner.get(owner) if pool is not None else None

    def in_use(self, virtual: bool = False) -> int:
        return len((self._virtual if virtual else self._real).used)
