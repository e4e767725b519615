"""Locust REST and WebSocket load for the resilience suites: a `LoadSession` on `LoadRun`.

A suite asks the `load` fixture for a profile by the suite's name (`pod-kill` reads
`loadtests/profiles/suite-pod-kill.yaml`, else `pod-kill.yaml`) and wraps its fault:

    with load("pod-kill") as background:          # Locust started, ~10 s of baseline
        with background.fault("kill-pod"):         # the fault window, marked
            kill_one_pod(...)
    # leaving the block: ~10 s of recovery after the last fault, then Locust is stopped
    background.check("kill of pod x").raise_if_violated()

`check` judges the profile's SLOs per window (baseline / fault / recovery) and fails
naming each violated SLO, its window and the observed value, with the most frequent
errors Locust saw: `LEDGER` failures are lost or stale data, `WS seq gap` /
`WS seq duplicate` a WebSocket session that did not resume cleanly.

Locust runs in its own process group (never imported here: resilience.load). Every
run is bounded by the profile's run time and the runner's deadline; `locust_left`
finds any process of a run that outlived its stop (the fixture fails on one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import psutil

from resilience.errors import ResilienceError
from resilience.load.certify import PROFILES, plan_for
from resilience.load.profile import Profile, load_profile, resolve_profile, suite_profile_path
from resilience.load.requests import RequestTimeline, error_counts
from resilience.load.runner import LoadResult, LoadRun
from resilience.slo.error_budget import ErrorBudget, TrafficOutcome
from resilience.slo.objectives import (
    RequestSelector,
    Verdict,
    Window,
    WindowStats,
    select,
    slo_check,
)
from resilience.slo.result import CheckResult

BASELINE_SECONDS = 10.0
RECOVERY_SECONDS = 10.0
FLOWING_REQUESTS = 10
FLOWING_TIMEOUT_SECONDS = 45.0
LEDGER = "LEDGER"
REST_TYPES = frozenset({"GET", "POST", "PUT", "DELETE"})
ERRORS_SHOWN = 3
# The SLO every suite profile budgets its fault window with (also the witness's budget).
FAULT_BUDGET_SLO = "fault-window-error-budget"


class LoadNotFlowingError(ResilienceError):
    """Locust started but no request got through in time: not a verdict on the service."""


def suite_profile(name: str, profiles_dir: Path = PROFILES) -> Profile:
    """The profile of a suite: `suite-<name>.yaml` when it exists, else `<name>.yaml`.

    >>> suite_profile("pod-kill").name
    'suite-pod-kill'
    """
    own = suite_profile_path(name, profiles_dir)
    return load_profile(own if own is not None else resolve_profile(name, profiles_dir))


def witness_budget(profile: Profile) -> ErrorBudget:
    """The suite's own traffic is judged by the load's fault-window budget: one standard,
    read from the profile, for every request the suite sends.

    >>> witness_budget(suite_profile("broker-loss")).describe()
    '0.00% (fault-window-error-budget)'
    """
    return ErrorBudget.from_slo(profile.slo(FAULT_BUDGET_SLO))


# ---- verdicts (pure) ----


def failure_lines_by_window(windows: dict[Window, WindowStats]) -> dict[str, float | int | str]:
    """Requests and failures per window, LEDGER checks apart: the figures of a report.

    >>> from resilience.slo.objectives import EndpointStats
    >>> endpoints = {("GET", "/s"): EndpointStats(ok=8, failed=2),
    ...              ("LEDGER", "read verified"): EndpointStats(ok=4)}
    >>> figures = failure_lines_by_window({Window.FAULT: WindowStats(5.0, endpoints)})
    >>> figures["fault"]
    '2/10 failed in 5.0s'
    """
    figures: dict[str, float | int | str] = {}
    for window, stats in windows.items():
        chosen = [s for (kind, _), s in stats.endpoints.items() if kind != LEDGER]
        failed = sum(s.failed for s in chosen)
        total = sum(s.requests for s in chosen)
        figures[window.value] = f"{failed}/{total} failed in {stats.seconds:.1f}s"
    return figures


def outcome_of(timeline: RequestTimeline, seconds: float) -> TrafficOutcome:
    """Requests and failures Locust recorded, LEDGER checks left out (they are not requests)."""
    records = [r for r in timeline.records if r.request_type != LEDGER]
    return TrafficOutcome(
        requests=sum(r.ok + r.failed for r in records),
        failures=sum(r.failed for r in records),
        seconds=round(seconds, 3),
    )


# ---- the session ----


class LocustLoad:
    """Locust running a profile against the target's base URL for one test.

    `start` returns once requests flow plus `baseline_seconds`; `fault(name)` marks a
    fault window; `stop` lets `recovery_seconds` pass after the last fault's end and
    stops Locust (bounded: SIGTERM, then SIGKILL). Safe to stop twice.
    """

    def __init__(
        self,
        profile: Profile,
        base_url: str,
        out_dir: Path,
        *,
        baseline_seconds: float = BASELINE_SECONDS,
        recovery_seconds: float = RECOVERY_SECONDS,
        flowing_timeout: float = FLOWING_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.profile = profile
        self.out_dir = out_dir.resolve()
        self.baseline_seconds = baseline_seconds
        self.recovery_seconds = recovery_seconds
        self.flowing_timeout = flowing_timeout
        self.run = LoadRun(plan_for(profile, base_url, self.out_dir, None))
        self._sleep = sleep
        self._began = 0.0
        self._last_fault_end: float | None = None
        self._open_faults = 0
        self._result: LoadResult | None = None
        self._ended_early: int | None = None  # Locust's exit code if it ended before stop()

    # ---- LoadSession ----

    def witness_budget(self) -> ErrorBudget:
        return witness_budget(self.profile)

    def limit(self, name: str) -> float:
        """A recovery limit of the profile (`limits.<name>`), with its reasoning there."""
        return self.profile.limit(name)

    def start(self) -> LocustLoad:
        self._began = time.monotonic()
        self.run.start()
        if not self._flowing(FLOWING_REQUESTS, self.flowing_timeout):
            result = self._result = self.run.stop()
            errors = "; ".join(f"{e}: {m} (x{n})" for e, m, n in error_counts(result.timeline, 2))
            raise LoadNotFlowingError(
                f"load {self.profile.name}: fewer than {FLOWING_REQUESTS} requests succeeded "
                f"against {self.run.plan.host} within {self.flowing_timeout:g}s of starting "
                f"Locust (exit code {result.returncode}; {errors or 'no errors recorded'}); "
                f"see {result.log}"
            )
        self._sleep(self.baseline_seconds)
        return self

    def _flowing(self, count: int, timeout: float) -> bool:
        """Until `count` requests succeeded (LEDGER checks aside), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.run.timeline().records
            if sum(r.ok for r in records if r.request_type != LEDGER) >= count:
                return True
            if time.monotonic() >= deadline or not self.run.running:
                return False
            time.sleep(0.5)

    def stop(self) -> TrafficOutcome:
        if self._result is None and self._began:
            if self._open_faults == 0 and self._last_fault_end is not None:
                left = self.recovery_seconds - (time.monotonic() - self._last_fault_end)
                if left > 0 and self.run.running:
                    self._sleep(left)
            if not self.run.running:
                self._ended_early = self.run.result().returncode
            self._result = self.run.stop()
        return self.outcome()

    def outcome(self) -> TrafficOutcome:
        timeline = self._result.timeline if self._result else self.run.timeline()
        return outcome_of(timeline, time.monotonic() - self._began if self._began else 0.0)

    def __enter__(self) -> LocustLoad:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and self._result is None:
            self._result = self.run.stop()  # failing already: no recovery wait
            return
        self.stop()

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Marks the block as fault window `name` in the load's timeline."""
        self._open_faults += 1
        try:
            with self.run.fault(name):
                yield
        finally:
            self._open_faults -= 1
            self._last_fault_end = time.monotonic()

    # ---- verdicts ----

    @property
    def result(self) -> LoadResult:
        if self._result is None:
            raise RuntimeError("the load is still running: stop it before judging it")
        return self._result

    def verdicts(self) -> list[Verdict]:
        return self.result.evaluate(self.profile.slos)

    def problems(self) -> list[str]:
        """Failures of the run itself, which no SLO would name."""
        result = self.result
        found = []
        if not any(r.ok + r.failed for r in result.timeline.records):
            found.append(f"no request was recorded (see {result.log})")
        if self._ended_early is not None:
            found.append(
                f"Locust ended on its own (exit code {self._ended_early}) before the test "
                f"stopped it (see {result.log})"
            )
        if result.marks and Window.FAULT not in result.windows():
            found.append("a fault was marked but no request fell in its window")
        return found

    def figures(self) -> dict[str, float | int | str]:
        """Requests and failures per window, where the reports went; {} before the stop."""
        if self._result is None:
            return {}
        figures = failure_lines_by_window(self._result.windows())
        figures["reports"] = str(self.out_dir)
        return figures

    def check(self, what: str) -> CheckResult:
        """Every SLO of the profile, per window; violations name SLO, window, value."""
        result = self.result
        windows = result.windows()
        figures = failure_lines_by_window(windows)
        figures["profile"] = self.profile.name
        figures["locust"] = str(result.log.parent)
        return slo_check(
            self.verdicts(),
            what,
            error_counts(result.timeline, ERRORS_SHOWN),
            self.problems(),
            figures,
        )

    def rest_failures(self, window: Window) -> tuple[int, int]:
        """(failed, requests) of the REST entries in one window (0, 0 when it did not occur)."""
        stats = self.result.windows().get(window)
        if stats is None:
            return (0, 0)
        chosen = select(stats, RequestSelector(types=REST_TYPES))
        return chosen.failed, chosen.requests


# ---- nothing left behind ----


def locust_left(out_dirs: Sequence[Path]) -> list[psutil.Process]:
    """Processes of these runs still alive: a Locust command line naming one of the
    runs' output directories (the master and any forked worker carry it)."""
    markers = [str(d) for d in out_dirs]
    if not markers:
        return []
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info.get("cmdline") or [])
        if "locust" in command and any(marker in command for marker in markers):
            found.append(process)
    return found


def kill_left(processes: Sequence[psutil.Process]) -> None:
    """SIGKILL what `locust_left` found (a test's teardown cleaning up after a failure)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(processes), timeout=5)
