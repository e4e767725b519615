"""The netem worker on real traffic: iptables-nft's NFQUEUE feeds it loopback packets.

Each test adds its own rule to the chain HFTEST-NETEM (table mangle, jumped to from
OUTPUT for 127.0.9.41 only), which the fixture removes afterwards, and measures what
the packets went through: added latency, loss ratio, bandwidth; then that a killed
worker lets traffic flow (--queue-bypass) and that a worker dies with its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from sandbox import processes
from sandbox.cni.faults import NetemParams
from sandbox.cni.netem import parse_rate
from sandbox.cni.netem_process import NetemWorker, NetemWorkerError, start_worker, worker_command

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0, reason="binding an NFQUEUE and adding iptables rules needs root"
    ),
    pytest.mark.skipif(
        shutil.which("iptables") is None,
        reason="needs iptables (iptables-nft): sandbox/install-debian-packages.sh",
    ),
]

SERVER = "127.0.9.41"
CHAIN = "HFTEST-NETEM"
JUMP = ["OUTPUT", "-d", SERVER, "-j", CHAIN]
ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["iptables", "-w", "5", "-t", "mangle", *args],
        capture_output=True,
        text=True,
        timeout=15,
        check=check,
    )


class Rules:
    """This test's NFQUEUE rules, in a chain of their own."""

    def __init__(self) -> None:
        self.queue_base = 41000 + os.getpid() % 10000

    def queue(self, protocol: str, port: int, offset: int = 0) -> int:
        number = self.queue_base + offset
        iptables(
            "-A",
            CHAIN,
            "-d",
            SERVER,
            "-p",
            protocol,
            "--dport",
            str(port),
            "-j",
            "NFQUEUE",
            "--queue-num",
            str(number),
            "--queue-bypass",
        )
        return number


@pytest.fixture
def rules() -> Iterator[Rules]:
    iptables("-D", *JUMP, check=False)  # a leftover of a killed run
    iptables("-F", CHAIN, check=False)
    iptables("-X", CHAIN, check=False)
    iptables("-N", CHAIN)
    try:
        iptables("-I", *JUMP)
        yield Rules()
    finally:
        iptables("-D", *JUMP, check=False)
        iptables("-F", CHAIN, check=False)
        iptables("-X", CHAIN, check=False)
    assert CHAIN not in iptables("-S").stdout


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(body(), 30))


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A TCP echo server on SERVER; yields its port."""
    listener = socket.create_server((SERVER, 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.settimeout(10)
            with contextlib.suppress(OSError):
                while data := connection.recv(65536):
                    connection.sendall(data)

    def accept() -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = listener.accept()
                threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


def round_trips(port: int, count: int) -> list[float]:
    with socket.create_connection((SERVER, port), timeout=5) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            client.sendall(b"x")
            assert client.recv(16) == b"x"
            times.append(time.perf_counter() - started)
        return times


async def worker(queue: int, params: NetemParams, tmp_path: Path, seed: int = 1) -> NetemWorker:
    return await start_worker(
        queue, params, pids_dir=tmp_path / "pids", log_path=tmp_path / "netem.log", seed=seed
    )


def test_delay_adds_the_configured_latency(rules: Rules, tmp_path: Path) -> None:
    delay = 0.040
    with echo_server() as port:
        queue = rules.queue("tcp", port)
        baseline = statistics.median(round_trips(port, 50))

        async def body() -> float:
            started = await worker(queue, NetemParams(delay_seconds=delay), tmp_path)
            try:
                assert (tmp_path / "pids" / str(started.pid)).exists()
                return statistics.median(await asyncio.to_thread(round_trips, port, 50))
            finally:
                assert await started.stop() == 0
                assert not (tmp_path / "pids" / str(started.pid)).exists()

        delayed = run(body)
    assert delayed - baseline == pytest.approx(delay, rel=0.10)


def test_loss_drops_the_configured_share_of_datagrams(rules: Rules, tmp_path: Path) -> None:
    sent = 1500
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.bind((SERVER, 0))
        receiver.settimeout(0.5)
        queue = rules.queue("udp", receiver.getsockname()[1])

        def exchange() -> int:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for index in range(sent):
                    sender.sendto(index.to_bytes(4, "big"), receiver.getsockname())
                    if index % 50 == 49:
                        time.sleep(0.005)  # a few thousand a second, within the queue
            received = 0
            with contextlib.suppress(TimeoutError):
                while receiver.recv(64):
                    received += 1
            return received

        async def body() -> int:
            started = await worker(queue, NetemParams(loss=0.20), tmp_path, seed=17)
            try:
                return await asyncio.to_thread(exchange)
            finally:
                await started.stop()

        received = run(body)
    assert 1 - received / sent == pytest.approx(0.20, abs=0.05)


def test_rate_limits_a_transfer_to_the_configured_bandwidth(rules: Rules, tmp_path: Path) -> None:
    rate = parse_rate("1mbps")  # tc: a megabyte per second
    total = 2_000_000
    params = NetemParams(rate_bytes_per_second=rate, buffer_bytes=16_000, limit_bytes=4_000_000)
    with socket.create_server((SERVER, 0)) as listener:
        listener.settimeout(5)
        queue = rules.queue("tcp", listener.getsockname()[1])

        def transfer() -> float:
            with socket.create_connection(listener.getsockname(), timeout=10) as client:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
                connection, _ = listener.accept()
                with connection:
                    connection.settimeout(10)
                    started = time.perf_counter()
                    sender = threading.Thread(target=client.sendall, args=(bytes(total),))
                    sender.start()
                    received = 0
                    while received < total:
                        chunk = connection.recv(1 << 20)
                        assert chunk, "the connection closed early"
                        received += len(chunk)
                    elapsed = time.perf_counter() - started
                    sender.join(10)
                    return total / elapsed

        async def body() -> float:
            started = await worker(queue, params, tmp_path)
            try:
                return await asyncio.to_thread(transfer)
            finally:
                await started.stop()

        observed = run(body)
    # Never above the rate (a bucket that leaks more is the bug this catches); below it
    # only by what a worker starved of CPU loses (CI's two cores run two pytest parts
    # and their sandboxes: 0.6 of the rate was seen there). The rate's exactness is the
    # model's, tested on its own clock (test_cni_netem.py); a wrong unit (bits for
    # bytes: 1/8) still fails here.
    assert rate * 0.5 <= observed <= rate * 1.15, f"{observed:.0f} B/s for {rate:.0f} B/s"


def test_killed_worker_lets_traffic_flow_again_and_a_held_queue_cannot_be_bound(
    rules: Rules, tmp_path: Path
) -> None:
    with echo_server() as port:
        queue = rules.queue("tcp", port)

        async def body() -> float:
            started = await worker(queue, NetemParams(delay_seconds=0.2), tmp_path)
            try:
                with pytest.raises(
                    NetemWorkerError, match=f"queue {queue} is bound by another process"
                ):
                    await worker(queue, NetemParams(), tmp_path / "second")
                assert min(await asyncio.to_thread(round_trips, port, 3)) > 0.2
                os.kill(started.pid, signal.SIGKILL)
                assert await started.stop() == -signal.SIGKILL
            finally:
                await started.stop()
            return max(await asyncio.to_thread(round_trips, port, 5))

        assert run(body) < 0.05


def test_worker_exits_when_its_parent_dies(rules: Rules) -> None:
    queue = rules.queue("tcp", 9, offset=1)
    spawn = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(sys.argv[1:])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    command = [arg for arg in worker_command(queue, NetemParams(delay_seconds=0.01))]
    command = command[: command.index("--parent")]  # the worker watches its parent itself
    parent = subprocess.Popen(
        [sys.executable, "-c", spawn, *command],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert '"ready": true' in parent.stdout.readline()
        started = processes.start_time(child)
        parent.kill()
        parent.wait(5)
        assert processes.wait_gone(child, started, timeout=5), "the worker outlived its parent"
    finally:
        processes.kill_group(parent.pid)
        parent.kill()
        parent.wait(5)
