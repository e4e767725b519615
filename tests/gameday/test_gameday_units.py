"""The game day's pure parts: steadiness, step commands and status, progress lines."""

from __future__ import annotations

import io
import signal
import sys
import time
from pathlib import Path

import pytest

from resilience.errors import InvalidInputError
from resilience.gameday.progress import Progress, Snapshot, format_line, recent_rates
from resilience.gameday.run import _step_status, check_writable, new_run_id, prepare_run_dir
from resilience.gameday.steady import steady_problems
from resilience.gameday.steps import StepProcess, chaos_command
from resilience.load.requests import parse_lines
from resilience.observe.records import DeploymentObservation, NodeObservation, PodObservation
from resilience.observe.timeline import State


def deployment(ready: int = 3, **extra: int) -> DeploymentObservation:
    fields = {"spec_replicas": 3, "replicas": 3, "updated": 3, "ready": ready, "available": ready}
    return DeploymentObservation("web", **{**fields, **extra})


@pytest.mark.parametrize(
    ("name", "state", "expected"),
    [
        ("whole", State(deployments={"web": deployment()}), []),
        ("not seen", State(), ["deployment web: not seen"]),
        (
            "one not ready",
            State(deployments={"web": deployment(2)}),
            ["deployment web: 2/3 ready, 2 available, 3 updated"],
        ),
        (
            "surge pod still there",
            State(deployments={"web": deployment(replicas=4)}),
            ["deployment web: 3/3 ready, 3 available, 3 updated"],
        ),
        (
            "stale status",
            State(deployments={"web": deployment(generation=2, observed_generation=1)}),
            ["deployment web: 3/3 ready, 3 available, 3 updated"],
        ),
        (
            "node down",
            State(
                deployments={"web": deployment()},
                nodes={"n": NodeObservation("n", ready="Unknown")},
            ),
            ["node n not Ready (Unknown)"],
        ),
        (
            "pending pod",
            State(
                deployments={"web": deployment()}, pods={"p": PodObservation("p", phase="Pending")}
            ),
            ["pods Pending: p"],
        ),
        (
            "terminating pending pod is fine",
            State(
                deployments={"web": deployment()}, pods={"p": PodObservation("p", deleting=True)}
            ),
            [],
        ),
    ],
)
def test_steady_problems(name: str, state: State, expected: list[str]) -> None:
    assert steady_problems(state, "web") == expected, name


@pytest.mark.parametrize(
    ("code", "timed_out", "interrupted", "expected"),
    [
        (0, False, False, "passed"),
        (1, False, False, "failed"),
        (2, False, False, "error"),
        (None, False, False, "error"),
        (1, True, False, "timed-out"),
        (0, True, True, "interrupted"),
        (130, False, True, "interrupted"),
    ],
)
def test_step_status(code: int | None, timed_out: bool, interrupted: bool, expected: str) -> None:
    assert _step_status(code, timed_out, interrupted) == expected


def test_chaos_command_passes_context_and_confirmation() -> None:
    command = chaos_command(Path("x.yaml"), {"a": "1"}, Path("j.json"), "staging", "staging")
    assert command[:3] == [sys.executable, "-m", "resilience.cli"]
    assert command[3:] == [
        "chaos",
        "run",
        "x.yaml",
        "--var",
        "a=1",
        "--journal",
        "j.json",
        "--kube-context",
        "staging",
        "--allow-production",
        "staging",
    ]


def test_a_step_process_gets_the_forwarded_signal(tmp_path: Path) -> None:
    script = (
        "import signal,sys,time\n"
        "def stop(*a):\n"
        "    print('rolling back', flush=True)\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    log = tmp_path / "out.log"
    process = StepProcess([sys.executable, "-c", script], {}, log, tmp_path)
    deadline = time.monotonic() + 20
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.signal(signal.SIGINT)
    assert process.wait(20) == 7
    assert "rolling back" in log.read_text()
    assert not process.overdue(0.0)


def test_an_overdue_step_is_killed(tmp_path: Path) -> None:
    script = "import signal,time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    process = StepProcess([sys.executable, "-c", script], {}, tmp_path / "out.log", tmp_path)
    time.sleep(0.5)
    process.signal(signal.SIGINT)
    assert process.wait(0.5) is None and process.overdue(0.0)
    assert process.kill() == -signal.SIGKILL


def test_recent_rates_leave_ledger_out() -> None:
    timeline = parse_lines(
        [
            '{"kind":"requests","t":95,"type":"GET","name":"/a","ok":8,"fail":2}',
            '{"kind":"requests","t":96,"type":"LEDGER","name":"lost write","ok":0,"fail":50}',
            '{"kind":"requests","t":80,"type":"GET","name":"/a","ok":99,"fail":99}',
        ]
    )
    assert recent_rates(timeline, 100.2, 10) == (1.0, 0.2)
    assert recent_rates(parse_lines([]), 100.0) == (None, None)


def snapshot(**fields: object) -> Snapshot:
    base: dict[str, object] = {
        "plan": "standard",
        "index": 1,
        "total": 6,
        "step": "pod-kill",
        "phase": "running",
        "step_elapsed": 10.0,
        "step_timeout": 240.0,
        "day_elapsed": 30.0,
        "error_rate": None,
        "rps": None,
        "ready_by_zone": {},
    }
    return Snapshot(**{**base, **fields})


@pytest.mark.parametrize(
    ("name", "snap", "expected"),
    [
        (
            "no data yet",
            snapshot(),
            "[standard 1/6 pod-kill] running 10s (230s left), day 30s, - req/s, errors -, ready -",
        ),
        (
            "warm-up",
            snapshot(index=0, phase="warm-up", step=""),
            "[standard] warm-up 10s, day 30s, - req/s, errors -, ready -",
        ),
        (
            "zones",
            snapshot(
                phase="pause",
                rps=12.25,
                error_rate=0.5,
                ready_by_zone={"us-west-2b": 0, "us-west-2a": 2},
            ),
            "[standard 1/6 pod-kill] pause 10s, day 30s, 12.2 req/s, errors 50.0%, ready a:2 b:0",
        ),
        (
            "note",
            snapshot(phase="steady-state", note="node n cordoned"),
            "[standard 1/6 pod-kill] steady-state 10s, day 30s, - req/s, errors -, ready -"
            " (node n cordoned)",
        ),
    ],
)
def test_progress_lines(name: str, snap: Snapshot, expected: str) -> None:
    assert format_line(snap) == expected, name


def test_plain_progress_prints_on_change_and_periodically() -> None:
    stream = io.StringIO()
    with Progress(stream, every=3600.0, live=False) as progress:
        progress.show(snapshot())
        progress.show(snapshot(step_elapsed=11.0))  # same step and phase: quiet
        progress.show(snapshot(phase="pause"))
        progress.say("gameday: step 1 pod-kill: passed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1] == "gameday: step 1 pod-kill: passed"


def test_rich_progress_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    with Progress(stream) as progress:
        progress.show(snapshot(ready_by_zone={"us-west-2a": 1}, rps=3.0, error_rate=0.0))
        progress.say("gameday: step 1 pod-kill: passed")
    assert "us-west-2a: 1" in stream.getvalue() and "pod-kill: passed" in stream.getvalue()


def test_run_directories() -> None:
    assert new_run_id("standard", 86400.0) == "19700102T000000Z-standard"


def test_an_unwritable_reports_dir_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInputError, match="cannot write there"):
        check_writable(tmp_path / "file" / "reports")
    prepare_run_dir(tmp_path, "r1")
    with pytest.raises(InvalidInputError, match="r1 exists already"):
        prepare_run_dir(tmp_path, "r1")
