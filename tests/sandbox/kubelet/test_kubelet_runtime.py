"""The process runtime: log records, pid files, graceful stop with SIGTERM then SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.kube.kubelet.runtime import (
    Deadline,
    ProcessContainer,
    VirtualContainer,
    kill_recorded,
    kill_time,
    start_process,
    stop_gracefully,
)
from sandbox.kube.podlogs import render_records

TRAP_TERM = "import signal,sys,time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
IGNORE_TERM = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


@pytest.mark.parametrize(
    ("deadline", "sigterm_at", "kill_at"),
    [
        pytest.param(130.0, 100.0, 130.0, id="grace-left"),
        pytest.param(100.5, 100.0, 102.0, id="two-second-minimum"),
        pytest.param(90.0, 100.0, 102.0, id="deadline-passed-during-prestop"),
    ],
)
def test_kill_time(deadline: float, sigterm_at: float, kill_at: float) -> None:
    assert kill_time(deadline, sigterm_at) == kill_at


async def start(tmp_path: Path, code: str) -> ProcessContainer:
    return await start_process(
        [sys.executable, "-c", code],
        {"PATH": os.environ["PATH"]},
        tmp_path / "logs" / "0.log",
        tmp_path / "pids",
        "containerd://x",
        lambda: datetime.now(UTC),
    )


def test_output_lands_in_the_log_file_as_cri_records(tmp_path: Path) -> None:
    async def main() -> int:
        process = await start(
            tmp_path,
            "import sys; print('hello'); print('oops', file=sys.stderr)"
            "; print('x' * 70000); sys.exit(3)",
        )
        return await process.wait()

    assert asyncio.run(main()) == 3
    lines = (tmp_path / "logs" / "0.log").read_text().splitlines()
    assert any(" stdout F hello" in line for line in lines)
    assert any(" stderr F oops" in line for line in lines)
    rendered = render_records(lines, timestamps=False)
    assert "hello\n" in rendered and "oops\n" in rendered
    assert sum(len(line) for line in rendered.splitlines() if line.startswith("x")) == 70000
    assert list((tmp_path / "pids").iterdir()) == []


def test_sigterm_handled_exits_zero_before_the_deadline(tmp_path: Path) -> None:
    async def main() -> tuple[int, float]:
        process = await start(tmp_path, TRAP_TERM + "print('up', flush=True); time.sleep(60)")
        await asyncio.sleep(0.3)
        began = time.monotonic()
        deadline = Deadline(asyncio.get_running_loop().time() + 10)
        return await stop_gracefully(process, deadline), time.monotonic() - began

    code, elapsed = asyncio.run(main())
    assert code == 0 and elapsed < 2


def test_sigterm_ignored_gets_sigkill_at_the_deadline(tmp_path: Path) -> None:
    async def main() -> tuple[int, float]:
        process = await start(tmp_path, IGNORE_TERM + "time.sleep(60)")
        await asyncio.sleep(0.3)
        began = time.monotonic()
        deadline = Deadline(asyncio.get_running_loop().time() + 2.5)
        return await stop_gracefully(process, deadline), time.monotonic() - began

    code, elapsed = asyncio.run(main())
    assert code == 137
    assert 2.3 < elapsed < 4


def test_shortened_deadline_kills_sooner(tmp_path: Path) -> None:
    async def main() -> tuple[int, float]:
        process = await start(tmp_path, IGNORE_TERM + "time.sleep(60)")
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        began, deadline = time.monotonic(), Deadline(loop.time() + 30)
        loop.call_later(0.2, deadline.shorten, loop.time() + 1)
        return await stop_gracefully(process, deadline), time.monotonic() - began

    code, elapsed = asyncio.run(main())
    assert code == 137 and elapsed < 5  # 2 s minimum after SIGTERM, not 30 s


def test_prestop_runs_before_sigterm(tmp_path: Path) -> None:
    calls: list[str] = []

    async def pre_stop(timeout: float) -> None:
        calls.append(f"preStop within {timeout:.0f}s")
        await asyncio.sleep(0.2)

    async def main() -> int:
        process = await start(tmp_path, TRAP_TERM + "time.sleep(60)")
        await asyncio.sleep(0.3)
        return await stop_gracefully(
            process, Deadline(asyncio.get_running_loop().time() + 5), pre_stop
        )

    assert asyncio.run(main()) == 0
    assert calls == ["preStop within 5s"]


def test_virtual_container_stops_at_once() -> None:
    async def main() -> tuple[int, int]:
        graceful = VirtualContainer("containerd://v1", datetime.now(UTC))
        killed = VirtualContainer("containerd://v2", datetime.now(UTC))
        killed.kill()
        code = await stop_gracefully(graceful, Deadline(asyncio.get_running_loop().time() + 30))
        return code, await killed.wait()

    assert asyncio.run(main()) == (0, 137)


def test_kill_recorded_cleans_up_after_a_crashed_sandbox(tmp_path: Path) -> None:
    async def main() -> int:
        process = await start(tmp_path, "import time; time.sleep(60)")
        assert process.pid is not None
        assert kill_recorded(tmp_path / "pids") == [process.pid]
        return await process.wait()

    assert asyncio.run(main()) == 128 + signal.SIGKILL
    (tmp_path / "pids" / "999999").write_text("12345 stale\n")
    assert kill_recorded(tmp_path / "pids") == []
    assert list((tmp_path / "pids").iterdir()) == []
