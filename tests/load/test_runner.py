"""The Locust runner: its command lines (pure, table-tested) and real runs against the
seeded loopback server: it stops by itself, on its deadline and on an exception, in
local, `--processes` and master/worker mode, and leaves no process behind."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience.load.runner import KILL_AFTER, LoadPlan, LoadRun, locust_commands
from resilience.safety import undo_journal
from resilience.slo.objectives import Slo, SloKind, Status, Window
from tests.load.locustrun import LOADTESTS, locust_processes
from tests.load.seeded import serving

WS_FILE = LOADTESTS / "sessions_ws.py"
FAST = {"HF_WAIT_MIN": "0.05", "HF_WAIT_MAX": "0.1", "HF_TIMEOUT": "3"}


def plan(out: Path, **changes: object) -> LoadPlan:
    fields: dict[str, object] = {
        "host": "http://127.0.0.1:9",
        "locustfiles": (WS_FILE,),
        "out_dir": out,
        "users": 2,
        "spawn_rate": 2.0,
        "run_time": 4.0,
        "env": FAST,
        "stop_timeout": 1.0,
    }
    fields.update(changes)
    return LoadPlan(**fields)


def flags(command: list[str]) -> dict[str, str]:
    """`--flag value` pairs of a command line (flags without a value map to '')."""
    found: dict[str, str] = {}
    for index, word in enumerate(command):
        if word.startswith("--"):
            following = command[index + 1] if index + 1 < len(command) else "--"
            found[word] = "" if following.startswith("--") else following
    return found


@pytest.mark.parametrize(
    ("changes", "expected", "absent", "workers"),
    [
        pytest.param(
            {},
            {"--users": "2", "--spawn-rate": "2", "--run-time": "4s", "--exit-code-on-error": "0"},
            ["--processes", "--master", "--master-bind-host"],
            0,
            id="local",
        ),
        pytest.param({"run_time": 4.2}, {"--run-time": "5s"}, [], 0, id="run-time-rounds-up"),
        pytest.param(
            {"processes": 3},
            {"--processes": "3", "--master-bind-port": "5599", "--master-port": "5599"},
            ["--master"],
            0,
            id="processes",
        ),
        pytest.param(
            {"workers": 2},
            {"--master": "", "--expect-workers": "2", "--master-bind-host": "127.0.0.1"},
            ["--processes"],
            2,
            id="master-workers",
        ),
        pytest.param(
            {"shape": "spike"}, {"--headless": ""}, ["--users", "--run-time"], 0, id="shape"
        ),
    ],
)
def test_locust_commands(
    tmp_path: Path,
    changes: dict[str, object],
    expected: dict[str, str],
    absent: list[str],
    workers: int,
) -> None:
    main, *rest = locust_commands(plan(tmp_path, **changes), master_port=5599)
    found = flags(main)
    assert {k: found.get(k) for k in expected} == expected
    assert not [flag for flag in absent if flag in found]
    assert found["--timeline-file"] == str(tmp_path / "timeline.jsonl")
    assert found["--csv-full-history"] == "" and found["--html"].endswith("locust.html")
    assert len(rest) == workers
    for worker in rest:
        assert flags(worker)["--master-host"] == "127.0.0.1"
        assert flags(worker)["--master-port"] == "5599"
    if "shape" in changes:
        assert main[main.index("-f") + 1].endswith(f"sessions_ws.py,{LOADTESTS}/shape_spike.py")


@pytest.fixture
def server() -> Iterator[str]:
    with serving("healthy") as url:
        yield url


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param({}, id="local"),
        pytest.param({"processes": 2}, id="processes"),
        pytest.param({"workers": 1}, id="master-worker"),
    ],
)
def test_a_run_ends_by_itself_with_its_timeline_and_marks(
    server: str, tmp_path: Path, mode: dict[str, object]
) -> None:
    journal = tmp_path / "recovery.jsonl"
    with LoadRun(plan(tmp_path, host=server, **mode), recovery_journal=journal) as run:
        assert run.wait_for_requests(20, timeout=30)
        undos = undo_journal.pending(undo_journal.read(journal))
        assert [u.kind for u in undos] == ["stop-load"] * (2 if "workers" in mode else 1)
        assert {u.target["pid"] for u in undos} <= {p.pid for p in locust_processes()}
        with run.fault("pod-kill"):
            time.sleep(1.0)
        result = run.wait()
    assert undo_journal.pending(undo_journal.read(journal)) == [], "a stopped load is no undo"
    assert result.returncode == 0 and not result.stopped_by_runner, result.log.read_text()[-2000:]
    assert [m.name for m in result.marks] == ["pod-kill"]
    windows = result.windows()
    assert set(windows) == {Window.ALL, Window.BASELINE, Window.FAULT, Window.RECOVERY}
    pings = Slo("ping-p99", SloKind.LATENCY, limit=1000, percentile=99)
    assert result.evaluate([pings])[0].status is Status.PASS
    ws = windows[Window.ALL].endpoints[("WS", "ping")]
    assert ws.ok > 10 and ws.failed == 0
    assert (tmp_path / "locust_stats.csv").is_file() and (tmp_path / "locust.html").is_file()
    assert not locust_processes()


def test_the_runner_stops_locust_at_its_deadline(server: str, tmp_path: Path) -> None:
    began = time.monotonic()
    with LoadRun(plan(tmp_path, host=server, run_time=600.0)) as run:
        result = run.wait(timeout=3.0)
    assert result.stopped_by_runner
    assert time.monotonic() - began < 3.0 + KILL_AFTER + 5
    assert not run.running and not locust_processes()


def test_an_exception_in_the_block_stops_locust(server: str, tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="chaos went wrong"),
        LoadRun(plan(tmp_path, host=server, run_time=600.0)) as run,
    ):
        assert run.wait_for_requests(1, timeout=30)
        raise RuntimeError("chaos went wrong")
    assert not run.running and not locust_processes()
    assert run.result().stopped_by_runner


def test_failed_requests_are_not_load_flowing(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    with LoadRun(plan(tmp_path, host=f"http://127.0.0.1:{closed}", run_time=600.0)) as run:
        assert not run.wait_for_requests(1, timeout=8)
        assert sum(r.failed for r in run.timeline().records) > 0, "requests were sent and failed"
    assert not run.running and not locust_processes()
