"""The pod network's nft table: what it says, that the kernel takes it, and what it does."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.cni.faults import NetemParams, PacketPath, PodEndpoint, TrafficFault
from sandbox.cni.ruleset import (
    NetworkTable,
    PodAddress,
    QueuedFault,
    chaos_rules,
    ct_mark,
    iptables_queue_rules,
    mark_for,
    render_table,
    snat_rules,
)
from sandbox.cni.services import Backend, ServicePortRoute

POD = PodEndpoint("hf", "web-1", "127.0.2.5", "unified/harmonyflow/s/podu1", 3)
OTHER = PodEndpoint("hf", "web-2", "127.0.2.6", "unified/harmonyflow/s/podu2", 3)
DB = ("127.0.3.11", "127.0.3.12")


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        pytest.param(
            PacketPath(POD, DB),
            'socket cgroupv2 level 3 "unified/harmonyflow/s/podu1" '
            "ip daddr { 127.0.3.11, 127.0.3.12 } drop",
            id="to-external-targets",
        ),
        pytest.param(
            PacketPath(POD, DB, towards_source=True),
            "ip daddr 127.0.2.5 ip saddr { 127.0.3.11, 127.0.3.12 } drop",
            id="from-external-targets",
        ),
        pytest.param(
            PacketPath(POD),
            'socket cgroupv2 level 3 "unified/harmonyflow/s/podu1" drop',
            id="to-everything",
        ),
        pytest.param(
            PacketPath(POD, towards_source=True), "ip daddr 127.0.2.5 drop", id="from-anyone"
        ),
    ],
)
def test_a_partition_drops_exactly_its_paths(path: PacketPath, rule: str) -> None:
    assert chaos_rules([TrafficFault("k", "partition", (path,))], []) == [rule]


def test_netem_faults_mark_for_their_queue_and_the_first_fault_wins() -> None:
    slow = TrafficFault("a", "netem", (PacketPath(POD, DB),), NetemParams(delay_seconds=0.1))
    lossy = TrafficFault("b", "netem", (PacketPath(OTHER),), NetemParams(loss=0.2))
    rules = chaos_rules([], [QueuedFault(lossy, 7), QueuedFault(slow, 3)])
    assert rules == [
        "meta mark & 0xffff0000 != 0x48460000 "
        'socket cgroupv2 level 3 "unified/harmonyflow/s/podu1" '
        "ip daddr { 127.0.3.11, 127.0.3.12 } meta mark set 0x48460003",
        "meta mark & 0xffff0000 != 0x48460000 "
        'socket cgroupv2 level 3 "unified/harmonyflow/s/podu2" meta mark set 0x48460007',
    ]
    assert iptables_queue_rules("HFNET-x", [QueuedFault(slow, 3)]) == [
        ["-t", "mangle", "-F", "HFNET-x"],
        [
            "-t", "mangle", "-A", "HFNET-x", "-m", "mark", "--mark", "0x48460003",
            "-j", "NFQUEUE", "--queue-num", "3", "--queue-bypass",
        ],
    ]  # fmt: skip


def test_pods_leave_from_their_pod_ip() -> None:
    pod = PodAddress("127.0.2.5", "unified/harmonyflow/s/podu1", 3)
    assert ct_mark("127.0.2.5") == 0x7F000205
    assert snat_rules([pod]) == ["meta nfproto ipv4 ct mark 0x7f000205 snat ip to 127.0.2.5"]
    assert 'ct state new socket cgroupv2 level 3 "unified/harmonyflow/s/podu1" ct mark set ' in (
        render_table(NetworkTable("t", (pod,)))
    )


@pytest.mark.parametrize("queue", [-1, 65536])
def test_queue_numbers_are_sixteen_bits(queue: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.65535"):
        mark_for(queue)


needs_root_nft = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft"
)


@pytest.fixture
def cgroup() -> Iterator[tuple[Path, str, int]]:
    mount = Path("/sys/fs/cgroup/unified")
    if not (mount / "cgroup.procs").exists():
        mount = Path("/sys/fs/cgroup")
    path = mount / "hftest_ruleset" / f"pod{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield (
            path,
            str(path.relative_to("/sys/fs/cgroup")),
            len(path.relative_to(mount).parts),
        )
    finally:
        path.rmdir()
        path.parent.rmdir()


@needs_root_nft
def test_the_kernel_takes_the_table_and_a_partition_silences_only_its_pod(
    cgroup: tuple[Path, str, int],
) -> None:
    """A pod in the cgroup is partitioned from one server; the host still reaches it."""
    directory, nft_path, level = cgroup
    pod = PodEndpoint("hf", "p", "127.0.9.61", nft_path, level)
    partition = TrafficFault("k", "partition", (PacketPath(pod, ("127.0.9.62",)),))
    table = NetworkTable(
        f"hftest_rs{os.getpid()}", (PodAddress(pod.ip, nft_path, level),), (partition,)
    )
    subprocess.run(["nft", "-f", "-"], input=render_table(table).encode(), check=True)
    server = socket.create_server(("127.0.9.62", 0))
    try:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.9.62", port), timeout=1).close()  # the node: fine
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            (directory / "cgroup.procs").write_text("0")
            try:
                socket.create_connection(("127.0.9.62", port), timeout=0.5).close()
                os.write(write, b"connected")
            except OSError as error:
                os.write(write, type(error).__name__.encode())
            os._exit(0)
        os.waitpid(child, 0)
        assert os.read(read, 100) == b"TimeoutError"
    finally:
        server.close()
        subprocess.run(["nft", "delete", "table", "inet", table.name], check=False)


def _accepted_peers(servers: dict[str, socket.socket]) -> dict[str, list[str]]:
    """Who connected to each server (the connections wait in the backlog: no thread needed)."""
    peers: dict[str, list[str]] = {}
    for address, server in servers.items():
        server.settimeout(0.2)
        while True:
            try:
                connection, peer = server.accept()
            except TimeoutError:
                break
            peers.setdefault(address, []).append(peer[0])
            connection.close()
    return peers


@needs_root_nft
def test_the_kernel_balances_a_cluster_ip_for_host_and_pod_and_rejects_one_without_endpoints(
    cgroup: tuple[Path, str, int],
) -> None:
    """kube-proxy's rules at the output hook: the node's and a pod's connections to a
    ClusterIP reach both endpoints, the pod's from its pod IP (SNAT after DNAT), the pod's
    own endpoint too (hairpin); a Service port without endpoints refuses at once."""
    directory, nft_path, level = cgroup
    pod_ip, other_ip, cluster_ip, empty_ip = "127.0.9.63", "127.0.9.64", "127.0.9.73", "127.0.9.74"
    servers = {ip: socket.create_server((ip, 0), backlog=64) for ip in (pod_ip, other_ip)}
    port = servers[pod_ip].getsockname()[1]
    servers[other_ip].close()
    servers[other_ip] = socket.create_server((other_ip, port), backlog=64)
    # someone listens on the empty Service's address: only the rejection keeps them apart
    servers[empty_ip] = socket.create_server((empty_ip, port), backlog=64)
    routes = (
        ServicePortRoute("t", "web", "http", "tcp", cluster_ip, 80,
                         (Backend(pod_ip, port), Backend(other_ip, port))),
        ServicePortRoute("t", "empty", "http", "tcp", empty_ip, port, ()),
    )  # fmt: skip
    table = NetworkTable(
        f"hftest_kp{os.getpid()}", (PodAddress(pod_ip, nft_path, level),), services=routes
    )
    subprocess.run(["nft", "-f", "-"], input=render_table(table).encode(), check=True)
    try:
        for _ in range(30):
            socket.create_connection((cluster_ip, 80), timeout=1).close()
        from_node = _accepted_peers(servers)
        assert sorted(from_node) == [pod_ip, other_ip]
        assert {peer for peers in from_node.values() for peer in peers} == {"127.0.0.1"}

        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through the pipe
            (directory / "cgroup.procs").write_text("0")
            try:
                for _ in range(30):
                    socket.create_connection((cluster_ip, 80), timeout=1).close()
                os.write(write, b"connected")
            except OSError as error:
                os.write(write, type(error).__name__.encode())
            os._exit(0)
        os.waitpid(child, 0)
        assert os.read(read, 100) == b"connected"
        from_pod = _accepted_peers(servers)
        assert sorted(from_pod) == [pod_ip, other_ip]  # its own endpoint too: hairpin
        assert {peer for peers in from_pod.values() for peer in peers} == {pod_ip}

        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((empty_ip, port), timeout=5)
        assert time.monotonic() - started < 1
        assert _accepted_peers({empty_ip: servers[empty_ip]}) == {}
    finally:
        for server in servers.values():
            server.close()
        subprocess.run(["nft", "delete", "table", "inet", table.name], check=False)
