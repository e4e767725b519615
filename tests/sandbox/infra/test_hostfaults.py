"""A failed host on the wire: the nft table, the address guard, and silence vs reset for real.

The live tests use their own table and a 127.79.N.0/24 address, never the sandbox's.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess

import pytest

from sandbox.infra.hostfaults import (
    SET,
    HostFaultError,
    HostFaults,
    loopback_address,
    render_table,
    reset_command,
    restore_command,
    silence_command,
)

needs_tools = pytest.mark.skipif(
    not HostFaults.available() or os.geteuid() != 0, reason="needs nft, ss and root"
)
TABLE = f"hf_test_faults_{os.getpid()}"
HOST = f"127.79.{os.getpid() % 250 + 1}.7"


def test_the_table_drops_both_directions_of_the_silenced_set_and_replaces_a_stale_one() -> None:
    script = render_table("t").splitlines()
    assert script[:2] == ["add table inet t", "delete table inet t"]
    assert f"    ip daddr @{SET} drop" in script
    assert f"    ip saddr @{SET} drop" in script
    assert "    type filter hook output priority filter; policy accept;" in script


@pytest.mark.parametrize(
    ("host", "accepted"),
    [
        ("127.0.3.11", True),
        ("127.255.0.1", True),
        ("10.0.3.11", False),  # the seed's VPC: never
        ("52.1.2.3", False),
        ("::1", False),
        ("harmonyflow-db", False),
    ],
)
def test_only_loopback_addresses_can_be_faulted(host: str, accepted: bool) -> None:
    if accepted:
        assert loopback_address(host) == host
        assert silence_command(host, "t").argv[-1] == f"{{ {host} }}"
        assert restore_command(host, "t").argv[:3] == ("nft", "delete", "element")
        assert reset_command(host, 5432).argv[-1] == f"{host}:5432"
    else:
        with pytest.raises(HostFaultError):
            loopback_address(host)
        with pytest.raises(HostFaultError):
            silence_command(host)


def tables() -> str:
    listing = subprocess.run(["nft", "list", "tables"], check=True, capture_output=True, text=True)
    return listing.stdout


@needs_tools
def test_a_silenced_address_hangs_connections_and_a_restored_one_answers_again() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        faults = HostFaults(table=TABLE)
        try:
            held = socket.create_connection((HOST, port), timeout=2.0)
            held.settimeout(1.0)
            await faults.silence(HOST)
            assert faults.silenced == {HOST}
            held.send(b"ping")  # goes unanswered, no RST comes back
            with pytest.raises(TimeoutError):
                await asyncio.to_thread(held.recv, 10)
            with pytest.raises(TimeoutError):  # a new connection times out, is not refused
                await asyncio.to_thread(socket.create_connection, (HOST, port), 1.0)
            await faults.restore(HOST)
            fresh = await asyncio.to_thread(socket.create_connection, (HOST, port), 2.0)
            fresh.close()
            held.close()
        finally:
            await faults.stop()
            server.close()
        assert TABLE not in tables()

    asyncio.run(main())


@needs_tools
def test_reset_connections_sends_each_client_a_rst() -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def keep(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(keep, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            held = socket.create_connection((HOST, port), timeout=2.0)
            held.settimeout(2.0)
            while not accepted:
                await asyncio.sleep(0.01)
            await HostFaults(table=TABLE).reset_connections(HOST, port)
            with pytest.raises(ConnectionResetError):
                await asyncio.to_thread(held.recv, 10)
            held.close()
        finally:
            server.close()

    asyncio.run(main())
