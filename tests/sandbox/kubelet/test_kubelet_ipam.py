"""Pod IPs on loopback: 127.0.2.2-254 for real pods, 127.1.0.0/16 for virtual ones."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sandbox.kube.kubelet.ipam import REAL_POOL, AddressesExhaustedError, IpAllocator

SMALL = ("127.0.8.2", "127.0.8.3", "127.0.8.4")  # a range no sandbox uses


def test_real_and_virtual_pools(tmp_path: Path) -> None:
    ipam = IpAllocator(lock_dir=tmp_path)
    assert ipam.allocate("a").startswith("127.0.2.")  # the first free one
    assert ipam.allocate("v", virtual=True) == "127.1.0.1"
    assert (REAL_POOL[0], REAL_POOL[-1], len(REAL_POOL)) == ("127.0.2.2", "127.0.2.254", 253)


def test_same_owner_keeps_its_address(tmp_path: Path) -> None:
    ipam = IpAllocator(lock_dir=tmp_path)
    assert ipam.allocate("a") == ipam.allocate("a") == ipam.address_of("a")


def test_released_address_is_not_reused_at_once(tmp_path: Path) -> None:
    ipam = IpAllocator(real=SMALL, lock_dir=tmp_path)
    first = ipam.allocate("a")
    ipam.release("a")
    assert ipam.allocate("b") != first
    assert ipam.address_of("a") is None


@pytest.mark.parametrize(
    "virtual", [pytest.param(False, id="real"), pytest.param(True, id="virtual")]
)
def test_exhaustion_is_an_error(virtual: bool, tmp_path: Path) -> None:
    pool = SMALL[:2]
    ipam = IpAllocator(real=pool, virtual=pool, lock_dir=tmp_path)
    ipam.allocate("a", virtual)
    ipam.allocate("b", virtual)
    with pytest.raises(AddressesExhaustedError, match="no IP addresses available"):
        ipam.allocate("c", virtual)
    ipam.release("a")
    assert ipam.allocate("c", virtual) == "127.0.8.2"
    assert ipam.in_use(virtual) == 2


def test_real_addresses_are_claimed_across_allocators(tmp_path: Path) -> None:
    """Two sandboxes on one machine (or two test runs) never share a real pod address."""
    one, other = (
        IpAllocator(real=SMALL, lock_dir=tmp_path),
        IpAllocator(real=SMALL, lock_dir=tmp_path),
    )
    assert [one.allocate("a"), other.allocate("b"), other.allocate("c")] == list(SMALL)
    with pytest.raises(AddressesExhaustedError):
        one.allocate("d")
    other.release("b")
    assert one.allocate("d") == "127.0.8.3"


def test_virtual_pool_skips_network_and_broadcast_octets(tmp_path: Path) -> None:
    ipam = IpAllocator(lock_dir=tmp_path)
    addresses = [ipam.allocate(f"v{i}", virtual=True) for i in range(300)]
    assert all(not a.endswith((".0", ".255")) for a in addresses)
    assert len(set(addresses)) == 300


def test_an_address_someone_listens_on_is_skipped(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.8.3", 0))
        listener.listen()
        ipam = IpAllocator(real=SMALL, lock_dir=tmp_path)
        assert [ipam.allocate("a"), ipam.allocate("b")] == ["127.0.8.2", "127.0.8.4"]


def test_with_a_pod_network_a_released_address_waits_until_its_rules_are_gone(
    tmp_path: Path,
) -> None:
    """CNI DEL's order: the network forgets the address before IPAM gives it to anyone,
    so no other sandbox's pod can inherit this one's rules for it."""
    one, other = (
        IpAllocator(real=SMALL[:1], lock_dir=tmp_path),
        IpAllocator(real=SMALL[:1], lock_dir=tmp_path),
    )
    one.defer_release = True
    address = one.allocate("a")
    one.release("a")
    assert (one.address_of("a"), one.detached()) == (None, frozenset({address}))
    with pytest.raises(AddressesExhaustedError):
        other.allocate("b")  # still claimed
    with pytest.raises(AddressesExhaustedError):
        one.allocate("c")  # nor reused here
    one.finish_release([address])
    assert one.detached() == frozenset()
    assert other.allocate("b") == address


def test_virtual_addresses_are_released_at_once_even_with_a_pod_network(tmp_path: Path) -> None:
    ipam = IpAllocator(virtual=("127.1.0.1",), lock_dir=tmp_path)
    ipam.defer_release = True
    ipam.allocate("v", virtual=True)
    ipam.release("v")
    assert ipam.detached() == frozenset()
    assert ipam.allocate("w", virtual=True) == "127.1.0.1"
