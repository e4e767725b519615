"""Locust as a subprocess: start it headless, mark chaos windows, read its timeline, stop it.

Locust runs in its own process group, never in ours: `import locust` monkey-patches
the whole process with gevent and fails outright if urllib3 (kubernetes, boto3) was
imported first (../shared/reference/locust.md §8). The run is bounded three times:
Locust's own `--run-time` (or the shape's end), `LoadPlan.deadline()` after which
the group gets SIGTERM (Locust then stops its users and writes its reports) and,
`KILL_AFTER` seconds later, SIGKILL. Leaving the `with` block (normally, on an
exception, or on Ctrl-C) stops whatever still runs.

A `kill -9` of the process running it leaves no `with` block: so Locust is started
to get SIGTERM when its starter dies (from the main thread; `die_with_parent`), and
each process group is written into the recovery journal as a `stop-load` undo
(pid, start time, command), marked done once stopped, so that `resilience recover`
stops one that was reparented or started from another thread.

    with LoadRun(plan) as run:            # starts Locust
        time.sleep(20)
        with run.fault("pod-kill"):       # marks the fault window
            delete_a_pod()
            wait_for_recovery()
        result = run.wait()               # bounded by the plan's deadline
    verdicts = result.evaluate(profile.slos)

Marks can also come from another process: it appends `MarkEvent` lines to
`run.chaos_file` (`append_mark`), which is read when the result is made.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from resilience import processes as procs
from resilience.errors import InvalidInputError
from resilience.load.requests import RequestTimeline, read_timeline, window_stats
from resilience.load.windows import (
    FaultMark,
    MarkEvent,
    Phase,
    marks_from_events,
    parse_mark_event,
)
from resilience.safety import undo_journal
from resilience.slo.objectives import Slo, Verdict, Window, WindowStats, evaluate

STARTUP_GRACE = 30.0  # seconds Locust may take to import, spawn and (distributed) connect
KILL_AFTER = 10.0  # seconds between SIGTERM and SIGKILL
TIMELINE = "timeline.jsonl"
CHAOS = "chaos.jsonl"
LOCUST_LOG = "locust.log"


@dataclass(frozen=True)
class LoadPlan:
    """One Locust run. `locustfiles` are paths; `shape` adds `shape_<name>.py` beside them."""

    host: str
    locustfiles: tuple[Path, ...]
    out_dir: Path
    users: int = 10
    spawn_rate: float = 5.0
    run_time: float = 30.0  # with a shape: the bound of the shape's own duration
    shape: str | None = None
    processes: int = 1
    workers: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    user_classes: tuple[str, ...] = ()
    stop_timeout: float = 5.0

    def deadline(self) -> float:
        """Seconds after start when the runner stops Locust, whatever it is doing."""
        return self.run_time + self.stop_timeout + STARTUP_GRACE

    def shape_file(self) -> Path | None:
        if self.shape is None:
            return None
        return self.locustfiles[0].parent / f"shape_{self.shape}.py"


def locust_files(plan: LoadPlan) -> list[Path]:
    """The locustfiles Locust loads: the plan's, then its shape's."""
    shape = plan.shape_file()
    return [*plan.locustfiles, *([shape] if shape is not None else [])]


def run_options(plan: LoadPlan, out_dir: str, files: Sequence[str]) -> list[str]:
    """Locust's options for the run itself, wherever it runs (here, or in a pod whose
    `out_dir` and `files` are the pod's paths): what it loads and targets, the timeline
    for the runner, CSV with full history and HTML for people, `--exit-code-on-error 0`
    (the SLOs, not "any failure", decide), and the users, spawn rate and run time
    unless a shape decides them. Pure, so the flags are table-tested."""
    options = ["-f", ",".join(files), "--host", plan.host]
    options += ["--timeline-file", f"{out_dir}/{TIMELINE}"]
    options += ["--csv", f"{out_dir}/locust", "--csv-full-history"]
    options += ["--html", f"{out_dir}/locust.html", "--exit-code-on-error", "0"]
    options += ["--stop-timeout", f"{plan.stop_timeout:g}", "--only-summary"]
    if plan.shape is None:
        options += ["--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}"]
        options += ["--run-time", f"{math.ceil(plan.run_time)}s"]
    return options


def locust_commands(plan: LoadPlan, master_port: int) -> list[list[str]]:
    """The command lines to start: Locust alone, or a master then its workers.

    Pure, so the flags are table-tested: headless, `run_options`, and every listener
    bound to 127.0.0.1.
    """
    files = [str(f) for f in locust_files(plan)]
    locust = [sys.executable, "-m", "locust"]
    main = [*locust, *run_options(plan, str(plan.out_dir), files), "--headless"]
    if plan.processes > 1 or plan.workers > 0:
        main += ["--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port)]
    if plan.processes > 1:
        # The forked workers connect to --master-port (not the bind port): set both.
        main += ["--processes", str(plan.processes), "--master-port", str(master_port)]
    workers: list[list[str]] = []
    if plan.workers > 0:
        main += ["--master", "--expect-workers", str(plan.workers)]
        main += ["--expect-workers-max-wait", f"{STARTUP_GRACE:g}"]
        worker = [*locust, "-f", ",".join(files), "--worker", "--master-host", "127.0.0.1"]
        worker += ["--master-port", str(master_port)]
        workers = [worker + list(plan.user_classes) for _ in range(plan.workers)]
    return [main + list(plan.user_classes), *workers]


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for the master's bind port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def append_mark(chaos_file: Path, fault: str, phase: Phase, t: float | None = None) -> MarkEvent:
    """Append one fault mark to a chaos timeline file (any process may call this)."""
    event = MarkEvent(time.time() if t is None else t, fault, phase)
    with chaos_file.open("a", encoding="utf-8") as stream:
        stream.write(event.to_json() + "\n")
    return event


def read_marks(chaos_file: Path) -> list[FaultMark]:
    """The fault windows in a chaos timeline file; `InvalidInputError` names a bad line."""
    try:
        lines = chaos_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_mark_event(json.loads(line)))
        except (ValueError, AttributeError) as error:
            raise InvalidInputError(f"{chaos_file}:{number}: {error}") from None
    return marks_from_events(events)


@dataclass(frozen=True)
class LoadResult:
    """What a finished (or stopped) run left: exit code, timeline, fault marks."""

    plan: LoadPlan
    returncode: int | None
    stopped_by_runner: bool
    started: float
    ended: float
    timeline: RequestTimeline
    marks: tuple[FaultMark, ...]

    @property
    def span(self) -> tuple[float, float]:
        """The load's own span when it recorded one, else the process's lifetime."""
        return self.timeline.span() or (self.started, self.ended)

    def windows(self) -> dict[Window, WindowStats]:
        start, end = self.span
        return window_stats(self.timeline, self.marks, start, end)

    def evaluate(self, slos: Sequence[Slo]) -> list[Verdict]:
        return evaluate(slos, self.windows())

    @property
    def log(self) -> Path:
        return self.plan.out_dir / LOCUST_LOG


class LoadRunBase(abc.ABC):
    """What every load run offers besides its life cycle: fault marks and the timeline.

    `LoadRun` (Locust here) and `resilience.load.cluster_run.ClusterLoadRun` (Locust in
    pods) subclass it, so certify and the game day take either."""

    plan: LoadPlan
    chaos_file: Path
    clock: Callable[[], float]

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether Locust still runs."""

    @abc.abstractmethod
    def start(self) -> LoadRunBase:
        """Start Locust; the run is then stopped by `stop`, `wait` or leaving `with`."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> LoadResult:
        """Until the run ends, bounded by the plan's deadline; then it is stopped."""

    @abc.abstractmethod
    def stop(self) -> LoadResult:
        """Stop whatever still runs and return what the run left."""

    @abc.abstractmethod
    def result(self) -> LoadResult:
        """What the run left so far."""

    @abc.abstractmethod
    def deadline(self) -> float:
        """Seconds after start when `wait` stops the run, whatever Locust is doing."""

    def __enter__(self) -> LoadRunBase:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- chaos marks and the live timeline ----

    def mark_fault_start(self, fault: str, t: float | None = None) -> None:
        append_mark(self.chaos_file, fault, "start", self.clock() if t is None else t)

    def mark_fault_end(self, fault: str, t: float | None = None) -> None:
        append_mark(self.chaos_file, fault, "end", self.clock() if t is None else t)

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Marks the block as a fault window; the end is marked even if the block raises."""
        self.mark_fault_start(name)
        try:
            yield
        finally:
            self.mark_fault_end(name)

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Until `count` requests succeeded (load is flowing), at most `timeout` s.

        Failures do not count: against a target that refuses everything this is False.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            if self._successes() >= count:
                return True
            time.sleep(0.5)
        return self._successes() >= count

    def _successes(self) -> int:
        return sum(r.ok for r in self.timeline().records)

    def marks(self) -> list[FaultMark]:
        return read_marks(self.chaos_file)

    def timeline(self) -> RequestTimeline:
        """What Locust recorded so far (complete lines only)."""
        return read_timeline(self.plan.out_dir / TIMELINE)


class LoadRun(LoadRunBase):
    """A Locust run in the background; a context manager that always stops it."""

    def __init__(
        self,
        plan: LoadPlan,
        chaos_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        recovery_journal: Path | None = None,
    ) -> None:
        self.plan = plan
        self.chaos_file = chaos_file or plan.out_dir / CHAOS
        self.clock = clock
        # resolved now: `resilience recover` may run from another directory
        self.recovery_journal = (recovery_journal or undo_journal.journal_path()).resolve()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._undos: list[str] = []
        self._log: IO[bytes] | None = None
        self._started = 0.0
        self._stopped_by_runner = False

    # ---- life cycle ----

    def start(self) -> LoadRun:
        if self._processes:
            raise RuntimeError("this run was started already")
        plan = self.plan
        for path in [*plan.locustfiles, plan.shape_file()]:
            if path is not None and not path.is_file():
                raise InvalidInputError(f"{path}: no such locustfile")
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        self.chaos_file.touch()
        env = {**os.environ, **plan.env}
        self._log = (plan.out_dir / LOCUST_LOG).open("ab")
        self._started = self.clock()
        port = free_port() if plan.processes > 1 or plan.workers > 0 else 0
        # prctl and getppid only, resolved before the fork: safe with threads around
        tie = None
        if procs.can_die_with_us():
            tie = procs.die_with_parent(os.getpid(), signal.SIGTERM)
        try:
            for command in locust_commands(plan, port):
                process = subprocess.Popen(
                    command,
                    cwd=plan.out_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() kills it whole
                    preexec_fn=tie,  # noqa: PLW1509 - SIGTERM: Locust stops its --processes workers
                )
                self._processes.append(process)
                started = procs.StartedProcess.of(process.pid, command)
                undo = undo_journal.record("stop-load", started.to_json(), self.recovery_journal)
                self._undos.append(undo)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> LoadRun:
        return self.start() if not self._processes else self

    @property
    def running(self) -> bool:
        return any(process.poll() is None for process in self._processes)

    def deadline(self) -> float:
        return self.plan.deadline()

    def wait(self, timeout: float | None = None) -> LoadResult:
        """Until Locust exits, at most `timeout` (default: what is left of the deadline);
        then it is stopped. Always returns a result."""
        deadline = self._started + self.deadline()
        if timeout is not None:
            deadline = min(deadline, self.clock() + timeout)
        while self.running and self.clock() < deadline:
            time.sleep(0.2)
        if self.running:
            self._stopped_by_runner = True
        return self.stop()

    def stop(self) -> LoadResult:
        """SIGTERM every process group still running, SIGKILL after KILL_AFTER seconds."""
        alive = [p for p in self._processes if p.poll() is None]
        if alive:
            self._stopped_by_runner = True
        for process in alive:
            _signal_group(process, signal.SIGTERM)
        give_up = time.monotonic() + KILL_AFTER
        for process in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, give_up - time.monotonic()))
        for process in self._processes:
            _signal_group(process, signal.SIGKILL)  # stragglers of the group, if any
            if process.poll() is None:
                process.wait(timeout=KILL_AFTER)
        if self._log is not None:
            self._log.close()
            self._log = None
        if not self.running:
            for undo in self._undos:
                undo_journal.mark_done(undo, self.recovery_journal)
            self._undos = []
        return self.result()

    def result(self) -> LoadResult:
        main = self._processes[0] if self._processes else None
        return LoadResult(
            plan=self.plan,
            returncode=main.poll() if main is not None else None,
            stopped_by_runner=self._stopped_by_runner,
            started=self._started,
            ended=self.clock(),
            timeline=self.timeline(),
            marks=tuple(self.marks()),
        )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)  # start_new_session: the group id is the pid
