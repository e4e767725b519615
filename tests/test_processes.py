"""Which recorded process `resilience recover` may stop (a table), and that it stops
exactly that one: a `stop-load` undo replayed on real processes in their own groups."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from resilience import processes as procs
from resilience.chaos.undo import recover
from resilience.safety import undo_journal

RECORD = procs.StartedProcess(
    pid=4242,
    start_time="1000",
    boot_id="boot-a",
    command=(sys.executable, "-m", "locust", "-f", "sessions_ws.py", "--headless"),
    owner_pid=4000,
    owner_start_time="900",
)


@pytest.mark.parametrize(
    ("record", "seen", "expected"),
    [
        pytest.param(RECORD, procs.Seen("boot-a", "1000", None), "stop", id="orphan"),
        pytest.param(RECORD, procs.Seen("boot-a", "1000", "901"), "stop", id="owner-pid-reused"),
        pytest.param(RECORD, procs.Seen("boot-a", "1000", "900"), "owned", id="its-run-lives"),
        pytest.param(RECORD, procs.Seen("boot-a", None, None), "gone", id="exited"),
        pytest.param(RECORD, procs.Seen("boot-a", "2000", None), "gone", id="pid-reused"),
        pytest.param(RECORD, procs.Seen("boot-b", "1000", None), "gone", id="machine-restarted"),
        pytest.param(
            replace(RECORD, boot_id=""), procs.Seen("", "1000", None), "stop", id="no-boot-id"
        ),
        pytest.param(
            replace(RECORD, start_time=""), procs.Seen("boot-a", "", None), "gone", id="never-read"
        ),
        pytest.param(
            replace(RECORD, owner_start_time=""),
            procs.Seen("boot-a", "1000", None),
            "stop",
            id="owner-unknown",
        ),
    ],
)
def test_fate(record: procs.StartedProcess, seen: procs.Seen, expected: str) -> None:
    assert procs.fate(record, seen) == expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param(RECORD.command, "locust -f sessions_ws.py --headless", id="python-m"),
        pytest.param(("locust", "-f", "x.py"), "locust -f x.py", id="as-is"),
        pytest.param(("a" * 200,), "a" * 117 + "...", id="bounded"),
    ],
)
def test_short(command: tuple[str, ...], expected: str) -> None:
    assert replace(RECORD, command=command).short() == expected


def test_the_record_survives_the_journal() -> None:
    assert procs.StartedProcess.from_json(RECORD.to_json()) == RECORD


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own that ignores SIGTERM (as a stuck Locust might)."""
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        yield process
    finally:
        procs.kill_group(process.pid)
        process.wait(timeout=10)


def orphaned(process: subprocess.Popen[bytes]) -> procs.StartedProcess:
    """Its record as if the run that started it had been killed."""
    started = procs.StartedProcess.of(process.pid, ["locust", "-f", "x.py"])
    return replace(started, owner_pid=1, owner_start_time="not-init's")


@pytest.mark.parametrize(
    ("change", "line", "still_running", "done"),
    [
        pytest.param({}, "stopped Locust pid {pid} (locust -f x.py)", False, True, id="orphan"),
        pytest.param(
            {"start_time": "1"},
            "Locust pid {pid} (locust -f x.py): already gone",
            True,
            True,
            id="pid-now-another-process",
        ),
        pytest.param(
            {"owner_pid": None},
            "Locust pid {pid} (locust -f x.py): left running, its run (pid {owner}) is still going",
            True,
            False,
            id="its-run-still-going",
        ),
    ],
)
def test_recover_stops_only_the_process_it_started(
    sleeper: subprocess.Popen[bytes],
    tmp_path: Path,
    change: dict[str, object],
    line: str,
    still_running: bool,
    done: bool,
) -> None:
    started = orphaned(sleeper)
    if "owner_pid" in change:  # the owner is this test: alive
        started = procs.StartedProcess.of(sleeper.pid, ["locust", "-f", "x.py"])
    else:
        started = replace(started, **change)
    journal = tmp_path / "recovery.jsonl"
    undo_journal.record("stop-load", started.to_json(), journal)
    lines = recover(journal)
    assert lines == [line.format(pid=sleeper.pid, owner=started.owner_pid)]
    assert (sleeper.poll() is None) is still_running
    assert (undo_journal.pending(undo_journal.read(journal)) == []) is done


def test_the_whole_group_is_stopped(tmp_path: Path) -> None:
    """Locust's --processes workers share its group: they go with it."""
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=-1)
    try:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        child_started = procs.start_time(child)
        journal = tmp_path / "recovery.jsonl"
        undo_journal.record("stop-load", orphaned(leader).to_json(), journal)
        assert recover(journal) == [f"stopped Locust pid {leader.pid} (locust -f x.py)"]
        assert procs.wait_gone(child, child_started, 5.0), "a process of the group survived"
        assert leader.wait(timeout=5) == -signal.SIGKILL
    finally:
        procs.kill_group(leader.pid)
        leader.wait(timeout=10)


def test_a_zombie_is_already_gone(tmp_path: Path) -> None:
    """Exited, not yet reaped (a reparented Locust waits for init): nothing to stop."""
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    try:
        record = orphaned(process)
        deadline = time.monotonic() + 10
        while not procs.is_zombie(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        journal = tmp_path / "recovery.jsonl"
        undo_journal.record("stop-load", record.to_json(), journal)
        assert recover(journal) == [f"Locust pid {process.pid} (locust -f x.py): already gone"]
    finally:
        process.wait(timeout=10)
