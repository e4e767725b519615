"""The "RDS" Multi-AZ pair for real: PostgreSQL 15 primary + synchronous standby, its
name flipped by a failover, the failed host silenced by nftables.

Each test runs on its own free 127.77.N.0/24 (not the sandbox's 127.0.3.x) and its own
nft table, so that it neither meets a running sandbox nor another test run. The name
is published to a record the clients here read before each connect, as a resolver
with no cache would answer them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest

from sandbox import processes
from sandbox.infra.hostfaults import HostFaults
from sandbox.infra.postgres import (
    PG_BIN,
    RdsInstance,
    is_postgres_user_available,
    read_db_password,
)
from sandbox.infra.rds_status import ConnectionFate, InvalidDBInstanceState, RdsTimings
from sandbox.infra.supervisor import (
    AddressInUseError,
    CommandError,
    InfraError,
)
from tests.sandbox.infra.builders import Records, free_subnet, make_instance, nft_table

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "postgres").exists()
    or not is_postgres_user_available()
    or not HostFaults.available(),
    reason="needs PostgreSQL 15 in /usr/lib/postgresql/15/bin, a postgres user, nft, and root",
)

PASSWORD = read_db_password()
ROWS = 50
FAILOVER_EVENTS = [
    "Multi-AZ instance failover started.",
    "Multi-AZ instance failover completed.",
    "DB instance restarted",  # the failed host, back as the standby
]
CLIENT_TIMEOUT = 1.0  # the writers' connect and query bound


def nft_tables() -> str:
    listing = subprocess.run(["nft", "list", "tables"], check=True, capture_output=True, text=True)
    return listing.stdout


def address(db: RdsInstance) -> str:
    records = db._dns
    assert isinstance(records, Records)
    return records.addresses[0]


@pytest.fixture(autouse=True)
def no_process_survives() -> Iterator[None]:
    yield
    survivors = [
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]
    assert not survivors, f"processes outlived the test: {survivors}"


async def connect(db: RdsInstance, timeout: float = 5.0) -> asyncpg.Connection:
    """As the pods do: to the address the endpoint's name has now, as harmonyflow."""
    return await asyncpg.connect(
        host=address(db),
        port=db.port,
        user="harmonyflow",
        password=PASSWORD,
        database="harmonyflow",
        timeout=timeout,
        command_timeout=timeout,
    )


async def all_ids(db: RdsInstance) -> set[int]:
    connection = await connect(db)
    try:
        return {row["id"] for row in await connection.fetch("SELECT id FROM orders")}
    finally:
        await connection.close()


class Writer:
    """Inserts one row per transaction through the endpoint, reconnecting after errors."""

    def __init__(self, db: RdsInstance, first_id: int) -> None:
        self.db, self.next_id = db, first_id
        self.acknowledged: list[int] = []
        self.acknowledged_at: list[float] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        connection: asyncpg.Connection | None = None
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = await connect(self.db, CLIENT_TIMEOUT)
                self.next_id += 1
                await connection.execute("INSERT INTO orders (id) VALUES ($1)", self.next_id)
                self.acknowledged.append(self.next_id)
                self.acknowledged_at.append(time.monotonic())
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.errors.append(type(error).__name__)
                if connection is not None:
                    connection.terminate()
                connection = None
                await asyncio.sleep(0.05)
        if connection is not None:
            await connection.close()

    async def until_more(self, count: int) -> None:
        """Wait until `count` more writes are acknowledged (bounded)."""
        target = len(self.acknowledged) + count
        for _ in range(400):
            if len(self.acknowledged) >= target:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"writes stalled; errors: {self.errors[-5:]}")


async def failover_under_writes(db: RdsInstance, writers: list[Writer]) -> list[str]:
    """Fail over while the writers write; returns the statuses seen meanwhile."""
    statuses: list[str] = []

    async def watch() -> None:
        while True:
            statuses.append(str(db.status))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(writer.until_more(5) for writer in writers))
    await db.failover()
    watcher.cancel()
    await asyncio.gather(*(writer.until_more(5) for writer in writers))
    return statuses


async def create_table(db: RdsInstance, rows: int) -> None:
    connection = await connect(db)
    try:
        assert await connection.fetchval("SHOW synchronous_commit") == "on"
        await connection.execute("CREATE TABLE orders (id integer PRIMARY KEY)")
        for row in range(rows):
            await connection.execute("INSERT INTO orders (id) VALUES ($1)", row)
    finally:
        await connection.close()


async def stop_and_check_writes(
    db: RdsInstance, writers: list[Writer], tasks: list[asyncio.Task[None]]
) -> None:
    """Every acknowledged write is there, and the failovers did interrupt the writers."""
    for writer in writers:
        writer.stop.set()
    await asyncio.gather(*tasks)
    ids = await all_ids(db)
    for writer in writers:
        lost = set(writer.acknowledged) - ids
        assert not lost, f"acknowledged writes lost: {sorted(lost)}"
        assert writer.errors, "a failover left a writer's connection alone"


def test_failover_keeps_every_committed_write_and_swaps_the_azs(tmp_path: Path) -> None:
    seen_pids: set[int] = set()

    async def main() -> None:
        db = make_instance(tmp_path)
        assert str(db.status) == "stopped"
        await db.start()
        try:
            seen_pids.update(db.process_ids())
            assert str(db.status) == "available"
            assert (db.primary.az, db.standby.az) == ("us-west-2a", "us-west-2b")
            assert await db.standby_sync_state() == "sync"
            await create_table(db, ROWS)
            held = await connect(db)  # an idle pooled connection
            assert await held.fetchval("SELECT 1") == 1
            writers = [Writer(db, first_id=index * 1_000_000) for index in range(1, 5)]
            tasks = [asyncio.create_task(writer.run()) for writer in writers]

            statuses = await failover_under_writes(db, writers)
            seen_pids.update(db.process_ids())
            assert "rebooting" in statuses
            assert str(db.status) == "available"
            assert (db.primary.az, db.standby.az) == ("us-west-2b", "us-west-2a")
            assert address(db) == db.primary.endpoint.host != db.standby.endpoint.host
            assert await db.standby_sync_state() == "sync"  # the old primary, re-based
            # the failed host is the standby now, which takes no client: a connection left
            # from before gets no answer, and a new one to its address times out
            with pytest.raises(TimeoutError):
                await held.fetchval("SELECT 1", timeout=1.0)
            with pytest.raises(TimeoutError):
                await asyncio.to_thread(held_socket, db.standby.endpoint.host, db.port)
            held.terminate()

            # a second failover, back to us-west-2a
            statuses = await failover_under_writes(db, writers)
            seen_pids.update(db.process_ids())
            assert "rebooting" in statuses
            assert (db.primary.az, db.standby.az) == ("us-west-2a", "us-west-2b")
            assert await db.standby_sync_state() == "sync"

            await stop_and_check_writes(db, writers, tasks)
            assert set(range(ROWS)) <= await all_ids(db)
            assert [event.message for event in db.events] == [
                "DB instance created",
                *FAILOVER_EVENTS,
                *FAILOVER_EVENTS,
            ]
        finally:
            marker = (tmp_path / "rds" / "harmonyflow-db.datadir").read_text().strip()
            await db.stop()
        assert str(db.status) == "stopped"
        assert not Path(marker).exists()

    asyncio.run(main())
    assert seen_pids
    assert all(processes.wait_gone(pid, None, 1.0) for pid in seen_pids)
    assert list((tmp_path / "pids").iterdir()) == []
    logs = list((tmp_path / "rds").glob("*.log"))
    assert logs
    assert not [log for log in logs if PASSWORD in log.read_text()], "the password was logged"


def test_a_taken_address_fails_fast_and_starts_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        prefix = free_subnet()
        db = make_instance(tmp_path, prefix)
        blocker = await asyncio.start_server(lambda r, w: None, f"{prefix}.12", 5432)
        try:
            with pytest.raises(AddressInUseError, match=rf"{prefix}\.12:5432 is already in use"):
                await db.start()
        finally:
            blocker.close()
        assert str(db.status) == "failed"
        assert db.process_ids() == []
        await db.stop()
        assert str(db.status) == "stopped"

    asyncio.run(main())


def test_a_killed_sandbox_leaves_no_server_and_its_data_is_removed_next_time(
    tmp_path: Path,
) -> None:
    prefix = free_subnet()
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from pathlib import Path
        from tests.sandbox.infra.builders import make_instance
        async def main():
            db = make_instance(Path({str(tmp_path)!r}), {prefix!r})
            await db.start()
            print(" ".join(str(pid) for pid in db.process_ids()), flush=True)
            os.kill(os.getpid(), 9)
        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[3],  # the repo, for `tests.sandbox`
    )
    pids = [int(pid) for pid in result.stdout.split()]
    assert len(pids) == 2, result.stderr[-2000:]
    assert all(processes.wait_gone(pid, None, 10.0) for pid in pids), "postgres outlived it"
    stale = Path((tmp_path / "rds" / "harmonyflow-db.datadir").read_text().strip())
    assert stale.is_dir()

    assert nft_table(prefix) in nft_tables()  # kill -9 ran no cleanup

    async def main() -> None:
        db = make_instance(tmp_path, prefix)
        await db.start()
        try:
            assert not stale.exists()
        finally:
            await db.stop()

    asyncio.run(main())
    assert nft_table(prefix) not in nft_tables(), "the nft table outlived the instance"


@pytest.fixture
def fake_pg_bin() -> Iterator[Path]:
    """A directory the postgres user can reach, for stand-in binaries."""
    directory = Path(tempfile.mkdtemp(prefix="hf-test-bin-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_a_failing_helper_is_reported_with_its_output(tmp_path: Path, fake_pg_bin: Path) -> None:
    initdb = fake_pg_bin / "initdb"
    initdb.write_text(
        "#!/bin/sh\necho 'initdb: error: directory exists but is not empty'\nexit 1\n"
    )
    initdb.chmod(0o755)

    async def main() -> None:
        template = make_instance(tmp_path)
        db = RdsInstance(
            tmp_path,
            faults=HostFaults(table=f"hf_test_{os.getpid()}"),
            nodes=(template.primary, template.standby),
            pg_bin=fake_pg_bin,
        )
        with pytest.raises(CommandError) as raised:
            await db.start()
        assert "initdb (a) failed with exit code 1" in str(raised.value)
        assert "directory exists but is not empty" in str(raised.value)
        assert str(db.status) == "failed"
        assert not (tmp_path / "rds" / "harmonyflow-db.datadir").exists()  # temp dir removed
        await db.stop()

    asyncio.run(main())


def test_a_binary_that_cannot_be_run_is_named(tmp_path: Path) -> None:
    async def main() -> None:
        template = make_instance(tmp_path)
        db = RdsInstance(
            tmp_path,
            faults=HostFaults(table=f"hf_test_{os.getpid()}"),
            nodes=(template.primary, template.standby),
            pg_bin=tmp_path / "nowhere",
        )
        with pytest.raises(InfraError, match=r"initdb \(a\): cannot start .*nowhere/initdb"):
            await db.start()
        await db.stop()

    asyncio.run(main())


def test_failover_is_refused_unless_available(tmp_path: Path) -> None:
    async def main() -> None:
        db = make_instance(tmp_path)
        with pytest.raises(InvalidDBInstanceState, match="stopped"):
            await db.failover()

    asyncio.run(main())


def test_five_failovers_under_eight_writers(tmp_path: Path) -> None:
    async def main() -> None:
        db = make_instance(tmp_path)
        await db.start()
        try:
            await create_table(db, 0)
            writers = [Writer(db, first_id=index * 1_000_000) for index in range(1, 9)]
            tasks = [asyncio.create_task(writer.run()) for writer in writers]
            for round_ in range(5):
                await asyncio.gather(*(writer.until_more(20) for writer in writers))
                await db.failover()
                assert db.primary.az == ("us-west-2b" if round_ % 2 == 0 else "us-west-2a")
                assert await db.standby_sync_state() == "sync"
            await asyncio.gather(*(writer.until_more(3) for writer in writers))
            await stop_and_check_writes(db, writers, tasks)
            times = [event.time for event in db.events]
            assert times == sorted(times)
        finally:
            await db.stop()

    asyncio.run(main())


def test_postgres_binaries_are_where_the_sandbox_expects() -> None:
    assert shutil.which("pg_basebackup", path=str(PG_BIN))


def wait_for_flip(db: RdsInstance) -> float:
    records = db._dns
    assert isinstance(records, Records)
    return records.flips[-1][0]


def held_socket(host: str, port: int) -> socket.socket:
    """A TCP connection to the server, as a pooled client holds one between queries."""
    held = socket.create_connection((host, port), timeout=2.0)
    held.settimeout(2.0)
    return held


def how_it_ended(held: socket.socket) -> str:
    """`silence` (nothing within the timeout), `reset` (RST) or `clean close` (FIN)."""
    try:
        data = held.recv(1024)
    except TimeoutError:
        return "silence"
    except ConnectionResetError:
        return "reset"
    return "clean close" if data == b"" else f"data {data[:20]!r}"


@pytest.mark.parametrize(
    ("fate", "expected"),
    [(ConnectionFate.BLACKHOLE, "silence"), (ConnectionFate.RESET, "reset")],
)
def test_a_connection_held_across_the_failover_hangs_or_is_reset_and_is_never_closed_cleanly(
    tmp_path: Path, fate: ConnectionFate, expected: str
) -> None:
    timings = RdsTimings(failover_seconds=4.0, reboot_seconds=4.0, failover_connections=fate)

    async def main() -> None:
        db = make_instance(tmp_path, timings=timings)
        await db.start()
        try:
            old = address(db)
            held = held_socket(old, db.port)
            failover = asyncio.create_task(db.failover())
            while str(db.status) != "rebooting":
                await asyncio.sleep(0.01)
            ended = await asyncio.to_thread(how_it_ended, held)
            held.close()
            assert ended == expected, f"{fate}: the held connection saw {ended}"
            if fate is ConnectionFate.BLACKHOLE:
                # a new connection to the failed host times out instead of being refused
                with pytest.raises(TimeoutError):
                    await asyncio.to_thread(held_socket, old, db.port)
            await failover
        finally:
            await db.stop()

    asyncio.run(main())


def test_the_measured_unavailability_matches_the_configured_failover_within_a_fifth(
    tmp_path: Path,
) -> None:
    """The longest pause between acknowledged writes is the failover duration: not the
    instant reconnect of a polite endpoint, and not more than the writers' own timeout
    on top of it."""
    configured = 8.0
    timings = RdsTimings(failover_seconds=configured, reboot_seconds=1.0)

    async def main() -> None:
        db = make_instance(tmp_path, timings=timings)
        await db.start()
        try:
            await create_table(db, 0)
            writers = [Writer(db, first_id=index * 1_000_000) for index in range(1, 4)]
            tasks = [asyncio.create_task(writer.run()) for writer in writers]
            await asyncio.gather(*(writer.until_more(10) for writer in writers))
            await db.failover()
            await asyncio.gather(*(writer.until_more(10) for writer in writers))
            await stop_and_check_writes(db, writers, tasks)
            for writer in writers:
                times = writer.acknowledged_at
                gap = max(later - earlier for earlier, later in itertools.pairwise(times))
                assert configured * 0.8 <= gap <= configured * 1.2, (
                    f"writes paused {gap:.2f}s for a failover configured at {configured:g}s"
                )
        finally:
            await db.stop()

    asyncio.run(main())
