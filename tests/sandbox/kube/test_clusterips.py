"""Service ClusterIPs: allocated from 127.0.4.0/24, never one another sandbox holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.kube.addressclaims import AddressClaims
from sandbox.kube.clusterips import ClusterIpAllocator
from sandbox.kube.errors import ApiError
from sandbox.kube.store import Store

POOL = ("127.0.9.131", "127.0.9.132", "127.0.9.133")


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80}], **spec},
    }


def new_store() -> Store:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "default"}})
    return store


def test_the_lowest_address_no_live_service_uses_is_given() -> None:
    allocator = ClusterIpAllocator(pool=POOL)
    assert allocator.allocate(used=set()) == POOL[0]
    assert allocator.allocate(used={POOL[0]}) == POOL[1]
    assert allocator.allocate(used=set(POOL)) is None


def test_an_address_another_sandbox_holds_is_skipped_until_it_stops(tmp_path: Path) -> None:
    first = ClusterIpAllocator(AddressClaims(tmp_path), POOL)
    second = ClusterIpAllocator(AddressClaims(tmp_path), POOL)
    assert first.allocate(used=set()) == POOL[0]
    assert second.allocate(used=set()) == POOL[1]
    # a deleted Service's address stays the first sandbox's: it comes back to it alone
    assert first.allocate(used=set()) == POOL[0]
    assert not second.reserve(POOL[0], used=set())
    first.release_all()
    assert second.reserve(POOL[0], used=set())


def test_a_requested_address_outside_the_range_is_the_creators_business() -> None:
    allocator = ClusterIpAllocator(pool=POOL)
    assert allocator.reserve("10.100.0.10", used=set())
    assert not allocator.reserve("10.100.0.10", used={"10.100.0.10"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, ["127.0.4.2"], id="allocated"),
        pytest.param({"clusterIP": "None"}, ["None"], id="headless"),
        pytest.param({"clusterIP": "127.0.4.77"}, ["127.0.4.77"], id="requested"),
        pytest.param({"type": "ExternalName", "externalName": "db.example"}, None, id="external"),
    ],
)
def test_the_service_registry_gives_each_kind_of_service_its_cluster_ips(
    spec: dict[str, Any], expected: list[str] | None
) -> None:
    created = new_store().create("services", service("s", **spec))
    assert created["spec"].get("clusterIPs") == expected
    assert created["spec"].get("clusterIP") == (expected[0] if expected else None)


def test_a_requested_address_another_service_has_is_refused() -> None:
    store = new_store()
    taken = store.create("services", service("a"))["spec"]["clusterIP"]
    with pytest.raises(ApiError, match="provided IP is already allocated") as refused:
        store.create("services", service("b", clusterIP=taken))
    assert refused.value.code == 422


def test_a_full_range_is_an_internal_error() -> None:
    store = new_store()
    store.cluster_ips = ClusterIpAllocator(pool=POOL[:1])
    store.create("services", service("a"))
    with pytest.raises(ApiError, match="range is full") as full:
        store.create("services", service("b"))
    assert full.value.code == 500
