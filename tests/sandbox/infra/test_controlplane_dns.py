"""The sandbox runs the cluster DNS beside the Kubernetes side, even without backing
services, and stops it; a taken address fails the start before anything else runs.

On a test address (127.0.9.53) and no nodes, so that it never meets a running sandbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import dns.message
import dns.query
import pytest

from sandbox.daemon import Sandbox, SandboxOptions
from sandbox.infra.supervisor import AddressInUseError
from sandbox.kube.controlplane import ControlPlaneOptions
from sandbox.kube.settings import ControlPlaneSettings

TEST_DNS = "127.0.9.53"
DB = "harmonyflow-db.c9akciq32.us-west-2.rds.amazonaws.com"


def options(tmp_path: Path) -> SandboxOptions:
    settings = dataclasses.replace(ControlPlaneSettings(), cluster_dns=(TEST_DNS,))
    return SandboxOptions(ControlPlaneOptions(state_dir=tmp_path, settings=settings, nodes=()))


def test_the_plane_serves_names_registered_in_plane_dns_and_stops_it(tmp_path: Path) -> None:
    async def main() -> None:
        plane = Sandbox(options(tmp_path))
        try:
            await plane.start()
            assert plane.dns.endpoint.host == TEST_DNS and plane.dns.endpoint.port == 53
            plane.dns.set(DB, ["127.0.3.10"])
            query = dns.message.make_query(DB, "A")
            reply = await asyncio.to_thread(dns.query.udp, query, TEST_DNS, timeout=2)
            assert [r.address for r in reply.answer[0]] == ["127.0.3.10"]
        finally:
            await plane.stop()
        assert not plane.dns.serving
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((TEST_DNS, 53), timeout=2).close()

    asyncio.run(main())


def test_a_taken_dns_address_fails_the_start_with_nothing_running(tmp_path: Path) -> None:
    async def main() -> None:
        plane = Sandbox(options(tmp_path))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind((TEST_DNS, 53))
            try:
                with pytest.raises(AddressInUseError, match="already in use"):
                    await plane.start()
                assert not plane.dns.serving
                assert plane.plane.api.url == ""  # the API server never listened
                assert plane.plane.kubelets == {} and plane.plane._tasks == []
            finally:
                await plane.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("flag", "expected"),
    [(None, ControlPlaneSettings().cluster_dns), (("127.0.9.7",), ("127.0.9.7",))],
)
def test_serve_cluster_dns_flag_reaches_the_settings(
    tmp_path: Path, flag: tuple[str, ...] | None, expected: tuple[str, ...]
) -> None:
    """`python -m sandbox serve --cluster-dns A` (the kubelet's flag): a second control plane
    beside a running sandbox names its own DNS address."""
    chosen = SandboxOptions.from_flags(state_dir=tmp_path, cluster_dns=flag)
    assert chosen.cluster.settings.cluster_dns == expected
