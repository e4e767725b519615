"""A load run `kill -9`ed mid-load leaves no Locust behind: the death signal takes Locust
along at once, and `resilience recover` stops one the signal could not reach (started
from a thread), saying so; either way its journal entry ends done.

The runner is a subprocess (as `resilience chaos run` or a game day is) loading the
seeded loopback server; Locust is its child, reparented once it is killed, so the
processes are found by their output directory rather than as our children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from resilience import processes as procs
from resilience.safety import undo_journal
from tests.cli import run_resilience
from tests.load.locustrun import LOADTESTS
from tests.load.seeded import serving

RUNNER = """
import sys, threading, time
from pathlib import Path
from resilience.load.runner import LoadPlan, LoadRun

host, out, journal, where, processes = sys.argv[1:6]
plan = LoadPlan(
    host=host,
    locustfiles=(Path(sys.argv[6]),),
    out_dir=Path(out),
    users=2,
    spawn_rate=2.0,
    run_time=600.0,  # far beyond the test: only a stop ends it
    processes=int(processes),
    env={"HF_WAIT_MIN": "0.05", "HF_WAIT_MAX": "0.1", "HF_TIMEOUT": "3"},
    stop_timeout=1.0,
)
run = LoadRun(plan, recovery_journal=Path(journal))
if where == "thread":  # a thread that ends at once: no death signal can be tied to it
    starter = threading.Thread(target=run.start)
    starter.start()
    starter.join()
else:
    run.start()
print("flowing" if run.wait_for_requests(5, 30) else "dry", flush=True)
time.sleep(600)
"""
GONE_WITHIN = 15.0  # SIGTERM, then Locust's --stop-timeout 1 s and its reports


def locust_of(out_dir: Path) -> list[psutil.Process]:
    """Live Locust processes of the run writing to `out_dir`, wherever they were reparented."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        mine = "locust" in cmdline and str(out_dir) in cmdline
        if mine and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def wait_no_locust(out_dir: Path, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while (left := locust_of(out_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def server() -> Iterator[str]:
    with serving("healthy") as url:
        yield url


class KilledRun:
    """A runner subprocess with its Locust flowing, then `kill -9`ed; `close` stops
    whatever of it is left (the test fails before that if anything was)."""

    def __init__(self, server: str, tmp_path: Path, where: str, processes: int) -> None:
        self.out_dir = tmp_path / "load"
        self.journal = tmp_path / "recovery.jsonl"
        args = [server, str(self.out_dir), str(self.journal), where, str(processes)]
        self.runner = subprocess.Popen(
            [sys.executable, "-c", RUNNER, *args, str(LOADTESTS / "sessions_ws.py")],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )

    def flowing(self) -> bool:
        assert self.runner.stdout is not None
        return self.runner.stdout.readline().strip() == "flowing"  # bounded: 30 s in the runner

    def kill(self) -> None:
        self.runner.send_signal(signal.SIGKILL)
        self.runner.wait(timeout=10)

    def undos(self) -> list[undo_journal.Undo]:
        return [
            u
            for u in undo_journal.pending(undo_journal.read(self.journal))
            if u.kind == "stop-load"
        ]

    def close(self) -> None:
        if self.runner.poll() is None:
            self.kill()
        for undo in self.undos():
            started = procs.StartedProcess.from_json(undo.target)
            procs.kill_group_if_same(started, signal.SIGKILL)
        for process in locust_of(self.out_dir):
            process.kill()


@pytest.fixture
def killed_run(server: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[KilledRun]:
    where, processes = request.param
    run = KilledRun(server, tmp_path, where, processes)
    try:
        assert run.flowing(), (run.out_dir / "locust.log").read_text()[-2000:]
        assert locust_of(run.out_dir), "Locust is not running"
        assert len(run.undos()) == 1, "the load was not journalled"
        run.kill()
        yield run
    finally:
        run.close()


@pytest.mark.parametrize(
    "killed_run",
    [pytest.param(("main", 1), id="local"), pytest.param(("main", 2), id="processes")],
    indirect=True,
)
def test_locust_dies_with_its_killed_runner(killed_run: KilledRun) -> None:
    left = wait_no_locust(killed_run.out_dir, GONE_WITHIN)
    assert not left, f"Locust outlived its killed runner: {[p.pid for p in left]}"
    [undo] = killed_run.undos()  # the runner never got to mark it done
    done = run_resilience("recover", "--journal", str(killed_run.journal), timeout=60)
    assert done.returncode == 0, done.stderr
    started = procs.StartedProcess.from_json(undo.target)
    expected = f"recover: Locust pid {started.pid} ({started.short()}): already gone"
    assert done.stdout.splitlines() == [expected]
    assert killed_run.undos() == []


@pytest.mark.parametrize("killed_run", [pytest.param(("thread", 1), id="thread")], indirect=True)
def test_recover_stops_the_locust_of_a_killed_run(killed_run: KilledRun) -> None:
    time.sleep(2.0)
    assert locust_of(killed_run.out_dir), "the death signal reached it: nothing left to recover"
    [undo] = killed_run.undos()
    done = run_resilience("recover", "--journal", str(killed_run.journal), timeout=60)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith(f"recover: stopped Locust pid {undo.target['pid']} (locust -f ")
    assert not locust_of(killed_run.out_dir), "Locust survived recover"
    assert killed_run.undos() == []
    again = run_resilience("recover", "--journal", str(killed_run.journal), timeout=60)
    assert again.stdout.splitlines() == ["recover: nothing to recover"]
