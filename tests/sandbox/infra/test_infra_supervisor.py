"""Server processes: recorded, bounded waits with the log's tail, stopped for good."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import processes
from sandbox.infra.postgres import is_postgres_user_available
from sandbox.infra.supervisor import (
    AddressInUseError,
    CommandError,
    Endpoint,
    NotReadyError,
    ServerProcess,
    ensure_free,
    log_tail,
    run_command,
    wait_until,
)

IGNORE_TERM = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


async def start_python(tmp_path: Path, code: str) -> ServerProcess:
    return await ServerProcess.start(
        "test server",
        [sys.executable, "-c", code],
        log_path=tmp_path / "server.log",
        pids_dir=tmp_path / "pids",
    )


def test_process_is_recorded_then_forgotten_when_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_python(
            tmp_path, "import time; print('up', flush=True); time.sleep(60)"
        )
        assert (tmp_path / "pids" / str(server.pid)).exists()
        assert await server.stop(signal.SIGTERM, 5.0) == -signal.SIGTERM
        assert not (tmp_path / "pids" / str(server.pid)).exists()

    asyncio.run(main())


def test_stop_kills_what_ignores_the_signal(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_python(
            tmp_path, IGNORE_TERM + "print('up', flush=True); time.sleep(60)"
        )
        await wait_until(
            lambda: _has_text(tmp_path / "server.log", "up"), what="up", timeout=5, server=server
        )
        started = time.monotonic()
        assert await server.stop(signal.SIGTERM, 0.5) == -signal.SIGKILL
        assert time.monotonic() - started < 5

    asyncio.run(main())


def test_stop_kills_the_whole_group(tmp_path: Path) -> None:
    async def main() -> None:
        code = (
            "import subprocess,time; p = subprocess.Popen(['sleep', '60']);"
            " print(p.pid, flush=True); time.sleep(60)"
        )
        server = await start_python(tmp_path, code)
        await wait_until(
            lambda: _has_text(tmp_path / "server.log", ""), what="child", timeout=5, server=server
        )
        await asyncio.sleep(0.2)
        child = int((tmp_path / "server.log").read_text().split()[0])
        await server.stop(signal.SIGKILL, 1.0)
        assert processes.wait_gone(child, processes.start_time(child), 5.0)

    asyncio.run(main())


@pytest.mark.parametrize(
    "user",
    [
        pytest.param(None, id="as-root"),
        pytest.param(
            "postgres",
            id="as-postgres",  # setuid would clear PDEATHSIG if it came after prctl
            marks=pytest.mark.skipif(
                not is_postgres_user_available(), reason="needs root and a postgres user"
            ),
        ),
    ],
)
def test_process_dies_with_its_parent(tmp_path: Path, user: str | None) -> None:
    """PR_SET_PDEATHSIG: a server outlives no sandbox, even one killed with SIGKILL."""
    parent = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from pathlib import Path
        from sandbox.infra.supervisor import ServerProcess
        async def main():
            server = await ServerProcess.start(
                "sleeper", ["sleep", "60"], log_path=Path({str(tmp_path / "s.log")!r}),
                pids_dir=Path({str(tmp_path / "pids")!r}), user={user!r})
            print(server.pid, flush=True)
            os.kill(os.getpid(), 9)
        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, timeout=30, check=False
    )
    pid = int(result.stdout.split()[0])
    assert processes.wait_gone(pid, None, 5.0), f"pid {pid} outlived its parent"


def test_wait_until_times_out_with_the_log_tail(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_python(
            tmp_path, "import time; print('booting slowly', flush=True); time.sleep(60)"
        )
        try:
            await asyncio.sleep(0.3)
            with pytest.raises(NotReadyError) as raised:
                await wait_until(_never, what="thing on 127.0.0.9:1", timeout=0.3, server=server)
            message = str(raised.value)
            assert "thing on 127.0.0.9:1: not reached within 0.3 s" in message
            assert "booting slowly" in message
        finally:
            await server.stop()

    asyncio.run(main())


def test_wait_until_stops_at_once_when_the_server_exits(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start_python(
            tmp_path, "import sys; print('FATAL: bad config', flush=True); sys.exit(3)"
        )
        started = time.monotonic()
        with pytest.raises(NotReadyError) as raised:
            while server.running:  # let it exit first, then the wait must not wait
                await asyncio.sleep(0.05)
            await wait_until(_never, what="server up", timeout=30, server=server)
        assert time.monotonic() - started < 10
        assert "exited with code 3" in str(raised.value)
        assert "FATAL: bad config" in str(raised.value)

    asyncio.run(main())


def test_run_command_reports_failure_with_its_output(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(CommandError) as raised:
            await run_command(
                "helper",
                [sys.executable, "-c", "import sys; print('no such role'); sys.exit(2)"],
                log_path=tmp_path / "helper.log",
                pids_dir=tmp_path / "pids",
                timeout=10,
            )
        assert "helper failed with exit code 2" in str(raised.value)
        assert "no such role" in str(raised.value)
        assert list((tmp_path / "pids").iterdir()) == []

    asyncio.run(main())


def test_run_command_timeout_kills_it(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(CommandError, match=r"did not finish within 0\.3 s"):
            await run_command(
                "hanging",
                ["sleep", "60"],
                log_path=tmp_path / "h.log",
                pids_dir=tmp_path / "pids",
                timeout=0.3,
            )
        assert list((tmp_path / "pids").iterdir()) == []

    asyncio.run(main())


def test_ensure_free_names_the_taken_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = Endpoint("127.0.0.1", taken.getsockname()[1])
        with pytest.raises(AddressInUseError, match=f"db: {endpoint} is already in use"):
            ensure_free([endpoint], "db")
    ensure_free([endpoint], "db")


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""


async def _never() -> bool:
    return False


async def _has_text(path: Path, text: str) -> bool:
    return path.exists() and path.stat().st_size > 0 and text in path.read_text()
