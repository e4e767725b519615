"""The game day: one load, one watch timeline, the plan's steps in order, then the report.

    warm-up (baseline load) -> for each step: wait for a steady cluster, run the
    experiment (a fault window in the load timeline and a mark in the watch
    timeline), pause for recovery -> stop the load and the watches -> recover if
    needed -> report

Ctrl-C and SIGTERM never cut this short in the middle of a fault: they are
forwarded to the running experiment, whose rollbacks run; the remaining steps
are not started, `resilience recover` replays anything still pending in the
recovery journal, and the report is written saying where the day stopped.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from resilience.errors import InvalidInputError, ResilienceError
from resilience.gameday.permissions import check_permissions
from resilience.gameday.plan import Plan, Step
from resilience.gameday.progress import Progress, Snapshot, recent_rates
from resilience.gameday.steady import steady_problems
from resilience.gameday.steps import StepProcess, chaos_command, run_recover
from resilience.load.certify import PROFILES, plan_for
from resilience.load.cluster import LOAD_NAMESPACE
from resilience.load.cluster_run import STARTUP_TIMEOUT, ClusterLoadRun
from resilience.load.profile import load_profile, resolve_profile
from resilience.load.runner import LoadRun, LoadRunBase
from resilience.observe.codec import to_jsonable
from resilience.observe.monitors import Monitors, MonitorScope
from resilience.observe.recovery import ready_spread
from resilience.paths import PROJECT_ROOT
from resilience.policy import IntendedPolicy
from resilience.report import record as files
from resilience.report.alerts import capture_alerts
from resilience.report.record import RunRecord, StepRecord, StepStatus
from resilience.safety import undo_journal
from resilience.targets.gameday import GamedayTarget, gameday_target, step_environment

TICK = 1.0
FLOWING_REQUESTS = 20
FLOWING_TIMEOUT = 60.0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
PROMETHEUS_URL_ENV = "PROMETHEUS_URL"


@dataclass(frozen=True)
class GamedayOptions:
    plan: Plan
    plan_file: Path
    reports_dir: Path
    policy: IntendedPolicy
    kube_context: str | None = None
    allow_production: str | None = None
    run_id: str | None = None
    load_on_cluster: bool = False  # the day's load from deploy/locust's pods
    load_workers: int = 1
    load_namespace: str = LOAD_NAMESPACE


def new_run_id(plan: str, now: float | None = None) -> str:
    """`20260102T030405Z-standard`: sortable, and names the plan.

    >>> new_run_id("standard", 0.0)
    '19700101T000000Z-standard'
    """
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, datetime.UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{plan}"


def prepare_run_dir(reports_dir: Path, run_id: str) -> Path:
    """The run's directory, created now: an unwritable reports dir is bad input (exit 2)."""
    run_dir = reports_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / ".write-check").write_text("ok", encoding="utf-8")
        (run_dir / ".write-check").unlink()
    except FileExistsError:
        raise InvalidInputError(f"--reports-dir {reports_dir}: {run_id} exists already") from None
    except OSError as error:
        raise InvalidInputError(
            f"--reports-dir {reports_dir}: cannot write there: {error.strerror or error}"
        ) from None
    return run_dir


class Interrupts:
    """SIGINT/SIGTERM as a flag, forwarded to the running step (installed on the main thread)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.step: StepProcess | None = None
        self._saved: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    @property
    def interrupted(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        if self.step is not None:
            self.step.signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)


class Gameday:
    """One run of a plan against one target (see the module docstring)."""

    def __init__(
        self,
        options: GamedayOptions,
        run_dir: Path,
        target: GamedayTarget,
        progress: Progress,
        interrupts: Interrupts,
    ) -> None:
        self.options = options
        self.plan = options.plan
        self.run_dir = run_dir
        self.target = target
        self.progress = progress
        self.interrupts = interrupts
        self.began = time.monotonic()
        self.load: LoadRunBase | None = None
        self.monitors: Monitors | None = None
        self.recovery_journal = undo_journal.journal_path().resolve()
        self.record = RunRecord(
            run_id=run_dir.name,
            plan=self.plan.name,
            plan_description=self.plan.description,
            load_profile=self.plan.load_profile,
            started=time.time(),
            ended=None,
            target=target.describe(),
            steps=tuple(
                StepRecord(
                    index=i + 1,
                    name=s.name,
                    experiment=s.experiment,
                    status="skipped" if s.skipped else "not-run",
                    variables=dict(s.variables),
                    note="experiment file not found (optional step)" if s.skipped else "",
                    recovery_budget=s.recovery_budget,
                    timeout=s.timeout,
                    expect_alerts=s.expect_alerts,
                )
                for i, s in enumerate(self.plan.steps)
            ),
        )

    # ---- the day ----

    def run(self) -> RunRecord:
        try:
            self._start_watching()
            self._start_load()
            self._wait("warm-up", self.plan.warmup_seconds)
            for index, step in enumerate(self.plan.steps, start=1):
                if self.interrupts.interrupted:
                    break
                if step.skipped:
                    self.progress.say(
                        f"gameday: step {index} {step.name}: skipped ({step.experiment} not found)"
                    )
                    continue
                if not self._run_step(index, step):
                    break
                self._wait("pause", self.plan.pause_seconds, index, step)
        except ResilienceError as error:
            self._problem(f"the game day stopped: {error}")
        except Exception as error:  # noqa: BLE001 - the day's outermost loop: record, then report
            self._problem(f"the game day stopped: {type(error).__name__}: {error}")
        finally:
            self._finish()
        return self.record

    def _start_watching(self) -> None:
        scope = MonitorScope.for_policy(self.options.policy, self.target.target.namespace)
        self.monitors = Monitors(self.target.api_client(), scope).start(sync_timeout=30.0)

    def _start_load(self) -> None:
        profile_file = resolve_profile(self.plan.load_profile, PROFILES)
        profile = load_profile(profile_file)
        (self.run_dir / files.LOAD_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(profile_file, self.run_dir / files.LOAD_DIR / "profile.yaml")
        plan = plan_for(
            profile,
            self.target.ingress_url,
            self.run_dir / files.LOAD_DIR,
            run_time=self.plan.bound_seconds() + 120.0,
        )
        options = self.options
        load: LoadRunBase
        if options.load_on_cluster:
            load = ClusterLoadRun(
                plan,
                self.target.api_client(),
                options.load_workers,
                options.load_namespace,
                recovery_journal=self.recovery_journal,
            )
        else:
            load = LoadRun(plan, recovery_journal=self.recovery_journal)
        self.load = load.start()
        self.record = replace(self.record, load_started=time.time())
        # pods first start (and pull the image, and connect the workers) on the cluster
        flowing = FLOWING_TIMEOUT + (STARTUP_TIMEOUT if options.load_on_cluster else 0.0)
        if not self.load.wait_for_requests(FLOWING_REQUESTS, flowing):
            raise ResilienceError(
                f"no load request got through to {self.target.ingress_url} within "
                f"{flowing:g}s (see {self.load.result().log})"
            )

    def _run_step(self, index: int, step: Step) -> bool:
        """Run one step; False when the day must stop (not steady, or interrupted)."""
        assert step.path is not None
        problems = self._wait_steady(index, step)
        if problems:
            note = "not started: the cluster did not become steady: " + "; ".join(problems)
            self._set_step(index, status="not-run", note=note, steady_before=tuple(problems))
            self._stop_here(index, step, "the cluster was not steady before it")
            return False
        if self.interrupts.interrupted:
            return False
        step_dir = self.run_dir / files.STEPS_DIR / f"{index:02d}-{step.name}"
        journal = step_dir / "journal.json"
        log = step_dir / "output.log"
        command = chaos_command(
            step.path,
            step.variables,
            journal,
            self.target.kube_context,
            self.target.allow_production,
            stop_alerts=step.stop_conditions,
        )
        env = step_environment(self.target, step_dir, self.recovery_journal)
        assert self.load is not None and self.monitors is not None
        mark = self.monitors.begin_mark(step.name, f"step {index}: {step.experiment}")
        self.load.mark_fault_start(step.name)
        process = StepProcess(command, env, log, files_cwd())
        self.interrupts.step = process
        self._set_step(
            index, status="interrupted", started=process.started, log=_rel(log, self.run_dir)
        )
        timed_out = False
        try:
            while process.poll() is None:
                if self.interrupts.interrupted and process.signalled_at is None:
                    process.signal(signal.SIGINT)  # the signal came before it was registered
                elapsed = time.time() - process.started
                if elapsed > step.timeout and process.signalled_at is None:
                    timed_out = True
                    self.progress.say(
                        f"gameday: step {index} {step.name}: "
                        f"timeout {step.timeout:g}s, interrupting it"
                    )
                    process.signal(signal.SIGINT)
                if process.overdue():
                    self.progress.say(
                        f"gameday: step {index} {step.name}: rollbacks overdue, killing it"
                    )
                    process.kill()
                    break
                self._show(index, step, "stopping" if process.signalled_at else "running", elapsed)
                process.wait(TICK)
        finally:
            self.interrupts.step = None
            ended = time.time()
            self.load.mark_fault_end(step.name)
            self.monitors.end_mark(mark)
        code = process.poll()
        status = _step_status(code, timed_out, self.interrupts.interrupted)
        self._set_step(
            index,
            status=status,
            ended=ended,
            exit_code=code,
            journal=_rel(journal, self.run_dir) if journal.exists() else None,
            note=_note(status, code, step),
        )
        self.progress.say(
            f"gameday: step {index} {step.name}: {status} after {ended - process.started:.0f}s"
        )
        if self.interrupts.interrupted:
            self._stop_here(index, step, f"interrupted by {self._signal_name()}")
            return False
        return True

    def _wait_steady(self, index: int, step: Step) -> list[str]:
        assert self.monitors is not None
        deadline = time.monotonic() + self.plan.steady_state_timeout
        began = time.monotonic()
        problems = ["not checked yet"]
        while not self.interrupts.interrupted:
            problems = steady_problems(
                self.monitors.timeline.current, self.options.policy.deployment
            )
            if not problems and not _answers(self.target.ingress_url):
                problems = [
                    f"the service does not answer at {self.target.ingress_url}/health/ready"
                ]
            if not problems or time.monotonic() > deadline:
                break
            self._show(index, step, "steady-state", time.monotonic() - began, problems[0])
            time.sleep(TICK)
        return [] if self.interrupts.interrupted else problems

    def _wait(self, phase: str, seconds: float, index: int = 0, step: Step | None = None) -> None:
        began = time.monotonic()
        while not self.interrupts.interrupted and time.monotonic() - began < seconds:
            self._show(index, step, phase, time.monotonic() - began)
            time.sleep(min(TICK, max(0.0, seconds - (time.monotonic() - began))))

    # ---- the end ----

    def _finish(self) -> None:
        notes: list[str] = []
        if self.load is not None:
            result = self.load.stop()
            self.record = replace(self.record, load_stopped=time.time())
            if not result.timeline.records:
                notes.append(f"the load recorded no request (see {result.log})")
        if self.monitors is not None:
            try:
                self.monitors.stop()
            except ResilienceError as error:
                notes.append(str(error))
            self.monitors.export_jsonl(self.run_dir / files.OBSERVE)
        self._capture_alerts()
        pending = undo_journal.pending(undo_journal.read(self.recovery_journal))
        if pending or self.interrupts.interrupted:
            self.progress.say(f"gameday: resilience recover ({len(pending)} pending undo(s))")
            env = step_environment(self.target, self.run_dir, self.recovery_journal)
            done = run_recover(env, self.target.kube_context, files_cwd())
            self.record = replace(self.record, recovered=tuple(done))
        for note in notes:
            self._problem(note)
        if self.interrupts.interrupted and not self.record.stopped_at:
            upcoming = next((s for s in self.record.steps if s.status == "not-run"), None)
            where = (
                f"before step {upcoming.index} ({upcoming.name})"
                if upcoming
                else "after the last step"
            )
            self.record = replace(
                self.record, stopped_at=f"{where}: interrupted by {self._signal_name()}"
            )
        self.record = replace(
            self.record, ended=time.time(), interrupted=self.interrupts.interrupted
        )
        files.write_record(self.run_dir, self.record)

    def _capture_alerts(self) -> None:
        """Prometheus's firing alerts over the run, once, into alerts.json (or why not)."""
        url = {**os.environ, **self.target.exports}.get(PROMETHEUS_URL_ENV)
        end = self.record.load_stopped or time.time()
        capture_alerts(self.run_dir, url, self.record.started, end)

    # ---- helpers ----

    def _signal_name(self) -> str:
        return signal.Signals(self.interrupts.signal or signal.SIGINT).name

    def _stop_here(self, index: int, step: Step, why: str) -> None:
        self.record = replace(self.record, stopped_at=f"step {index} ({step.name}): {why}")
        for later in self.record.steps:
            if later.index > index and later.status == "not-run" and not later.note:
                self._set_step(later.index, note=f"not run: the day stopped at step {index}")

    def _set_step(self, index: int, **changes: object) -> None:
        current = next(s for s in self.record.steps if s.index == index)
        self.record = self.record.with_step(replace(current, **changes))  # type: ignore[arg-type]
        files.write_record(self.run_dir, self.record)

    def _problem(self, text: str) -> None:
        self.progress.say(f"gameday: {text}")
        self.record = replace(self.record, problems=(*self.record.problems, text))

    def _show(
        self, index: int, step: Step | None, phase: str, elapsed: float, note: str = ""
    ) -> None:
        rps = error_rate = None
        if self.load is not None:
            rps, error_rate = recent_rates(self.load.timeline(), time.time())
        zones: dict[str, int] = {}
        if self.monitors is not None:
            zones = dict(ready_spread(self.monitors.timeline.current, self.options.policy).zones)
        self.progress.show(
            Snapshot(
                plan=self.plan.name,
                index=index,
                total=len(self.plan.steps),
                step=step.name if step else "",
                phase=phase,
                step_elapsed=elapsed,
                step_timeout=step.timeout if step else 0.0,
                day_elapsed=time.monotonic() - self.began,
                error_rate=error_rate,
                rps=rps,
                ready_by_zone=zones,
                note=note,
            )
        )


def _step_status(code: int | None, timed_out: bool, interrupted: bool) -> StepStatus:
    """How a step ended, from its exit code and what the game day did to it.

    >>> [_step_status(c, t, i) for c, t, i in [(0, False, False), (1, False, False),
    ...   (1, True, False), (130, False, True), (2, False, False)]]
    ['passed', 'failed', 'timed-out', 'interrupted', 'error']
    """
    if interrupted:
        return "interrupted"
    if timed_out:
        return "timed-out"
    if code == 0:
        return "passed"
    if code == 1:
        return "failed"
    return "error"


def _note(status: StepStatus, code: int | None, step: Step) -> str:
    return {
        "passed": "",
        "failed": "the experiment failed (see its journal)",
        "timed-out": f"interrupted after its timeout of {step.timeout:g}s; rollbacks ran",
        "interrupted": "interrupted; its rollbacks ran",
        "error": f"resilience chaos run exited {code} (see its output)",
    }.get(status, "")


def _answers(base_url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health/ready", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base))


def files_cwd() -> Path:
    return PROJECT_ROOT


def check_writable(reports_dir: Path) -> None:
    """Before anything starts: an unwritable reports directory is bad input (exit 2)."""
    probe = reports_dir / f".gameday-write-check-{os.getpid()}"
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        raise InvalidInputError(
            f"--reports-dir {reports_dir}: cannot write there: {error.strerror or error}"
        ) from None


def run_gameday(
    options: GamedayOptions, progress: Progress, log: Callable[[str], None]
) -> tuple[RunRecord, Path]:
    """Run the plan; returns the record and the run directory (the caller builds the report)."""
    run_id = options.run_id or new_run_id(options.plan.name)
    with (
        Interrupts() as interrupts,
        gameday_target(options.kube_context, options.allow_production, log) as target,
    ):
        load_namespace = options.load_namespace if options.load_on_cluster else None
        # before anything starts
        check_permissions(options.plan, options.policy, target, log, load_namespace)
        run_dir = prepare_run_dir(options.reports_dir, run_id)
        shutil.copyfile(options.plan_file, run_dir / files.PLAN_COPY)
        policy = json.dumps(to_jsonable(options.policy), indent=2)
        (run_dir / files.POLICY).write_text(policy, encoding="utf-8")
        log(
            f"gameday: plan {options.plan.name} against {target.target.server}; report in {run_dir}"
        )
        day = Gameday(options, run_dir, target, progress, interrupts)
        with progress:
            record = day.run()
    return record, run_dir


def exit_code(record: RunRecord, passed: bool) -> int:
    if record.interrupted:
        return EXIT_INTERRUPTED
    return 0 if passed else EXIT_FAILED
