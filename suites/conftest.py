"""Fixtures of the resilience suites: steady state, monitors, traffic, load, findings.

Every test marked `resilience`:

- starts from the steady state: the Deployment whole, no node cordoned, every
  replica a ready endpoint, no suite canary left (waited for, bounded; else the
  test fails saying what is wrong, before any fault);
- when also marked `destructive` (it changes the Deployment: an image, a
  rollout), gets the Deployment's template, strategy and the
  PodDisruptionBudgets put back after it, and waits (bounded) until the target
  is steady again. We restore rather than start a fresh sandbox: the same
  mechanism works on staging, where there is no fresh cluster to be had, and it
  costs a rollout instead of a 15 s boot. A restore that does not converge
  fails the test's teardown with what is left.

`monitors` records the namespace's watches as one timeline; when the test fails
(or with --keep-timeline) the timeline is exported as JSON lines to
reports/timelines/ and its path printed with the failure.

`traffic` sends bounded REST traffic through the ingress and keeps the ledger of
acknowledged writes (the correctness witness). `load` runs Locust's REST and
WebSocket users (a suite profile from loadtests/profiles/) around a test's faults:
~10 s of baseline, the marked fault windows, ~10 s of recovery (both
$HARMONYFLOW_LOAD_WINDOW_SECONDS), then SLOs judged per window; its reports go to
reports/load/, and no Locust process may outlive it.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resilience.load.session import (
    BASELINE_SECONDS,
    LocustLoad,
    kill_left,
    locust_left,
    suite_profile,
)
from resilience.observe import Monitors, MonitorScope
from resilience.policy import IntendedPolicy
from resilience.safety.undo_journal import ENV_VAR as RECOVERY_JOURNAL_VARIABLE
from resilience.suites.findings import (
    FINDINGS_FILE,
    ResilienceFinding,
    new_finding,
    record_finding,
)
from resilience.targets.live import (
    LiveTarget,
    TargetNotHealthyError,
    restore,
    take_snapshot,
    wait_healthy,
)
from resilience.traffic import LoadSession, SessionTraffic, create_sessions

STEADY_TIMEOUT_SECONDS = 120.0
RESTORE_TIMEOUT_SECONDS = 240.0
MONITOR_SYNC_SECONDS = 20.0
LOAD_WINDOW_VARIABLE = "HARMONYFLOW_LOAD_WINDOW_SECONDS"
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


def _failed(item: pytest.Item) -> bool:
    report = item.stash.get(CALL_REPORT, None)
    return report is None or report.failed


@pytest.fixture(autouse=True)
def steady_target(request: pytest.FixtureRequest) -> Iterator[None]:
    """Resilience tests start from the steady state; destructive ones are restored after."""
    if request.node.get_closest_marker("resilience") is None:
        yield
        return
    target: LiveTarget = request.getfixturevalue("target")
    try:
        wait_healthy(target, STEADY_TIMEOUT_SECONDS)
    except TargetNotHealthyError as error:
        pytest.fail(f"before the test: {error}", pytrace=False)
    snapshot = take_snapshot(target) if request.node.get_closest_marker("destructive") else None
    yield
    if snapshot is not None:
        restored = restore(target, snapshot, RESTORE_TIMEOUT_SECONDS)
        if restored:
            print(f"restored after the test: {'; '.join(restored)}")


@pytest.fixture
def monitors(
    request: pytest.FixtureRequest,
    target: LiveTarget,
    intended_policy: IntendedPolicy,
    reports_dir: Path,
) -> Iterator[Monitors]:
    """Started watches of the target's namespace (bounded start and stop)."""
    scope = MonitorScope.for_policy(intended_policy, namespace=target.namespace)
    started = Monitors(target.api, scope).start(sync_timeout=MONITOR_SYNC_SECONDS)
    try:
        yield started
    finally:
        try:
            started.stop(timeout=10.0)
        finally:
            if _failed(request.node) or request.config.getoption("--keep-timeline"):
                path = reports_dir / "timelines" / f"{_file_name(request.node.nodeid)}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                started.export_jsonl(path)
                request.node.user_properties.append(("timeline", str(path)))
                print(f"timeline of {request.node.nodeid}: {path}")


@pytest.fixture
def finding(
    request: pytest.FixtureRequest, target: LiveTarget, reports_dir: Path
) -> Callable[[str, str], None]:
    """`finding(title, detail)`: record a known limitation without failing the test."""

    def record(title: str, detail: str) -> None:
        found = new_finding(request.node.nodeid, title, detail, target.describe())
        path = record_finding(reports_dir / FINDINGS_FILE, found)
        request.node.user_properties.append(("finding", found.summary()))
        warnings.warn(ResilienceFinding(f"{found.summary()} (recorded in {path})"), stacklevel=2)

    return record


@pytest.fixture
def traffic(target: LiveTarget) -> Iterator[Callable[..., SessionTraffic]]:
    """`traffic(sessions=4, max_seconds=180)`: a started SessionTraffic; stopped after the test."""
    started: list[SessionTraffic] = []

    def start(sessions: int = 4, max_seconds: float = 180.0) -> SessionTraffic:
        ids = create_sessions(target.base_url, sessions)
        running = SessionTraffic(target.base_url, ids, max_seconds=max_seconds).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def load_window_seconds() -> float:
    """Seconds of baseline before the first fault and of recovery after the last one:
    $HARMONYFLOW_LOAD_WINDOW_SECONDS, else 10. The seeded-fault twins shorten it (they
    judge the seeded fault, not the load)."""
    text = os.environ.get(LOAD_WINDOW_VARIABLE, "").strip()
    try:
        seconds = float(text) if text else BASELINE_SECONDS
    except ValueError:
        raise pytest.UsageError(f"{LOAD_WINDOW_VARIABLE}: {text!r} is not a number") from None
    if not 0 <= seconds <= 300:
        raise pytest.UsageError(f"{LOAD_WINDOW_VARIABLE}: expected 0..300 seconds, got {text}")
    return seconds


def make_load(target: LiveTarget, profile: str, out_dir: Path) -> LoadSession:
    """Locust REST + WebSocket users running the suite's profile against `target.base_url`
    (`loadtests/profiles/suite-<profile>.yaml`, else `<profile>.yaml`), writing its
    timeline, CSV, HTML and log to `out_dir`."""
    window = load_window_seconds()
    return LocustLoad(
        suite_profile(profile),
        target.base_url,
        out_dir,
        baseline_seconds=window,
        recovery_seconds=window,
    )


@pytest.fixture
def load(
    request: pytest.FixtureRequest, target: LiveTarget, reports_dir: Path
) -> Iterator[Callable[[str], LoadSession]]:
    """`with load("pod-kill") as background:` -- Locust load around one test's faults.

    Mark each fault with `background.fault(name)`; after the block, judge it with
    `background.check(what).raise_if_violated()`. Teardown stops every run still going
    and fails the test if any Locust process of its runs is left (found with psutil).
    """
    started: list[LocustLoad] = []
    stamp = time.strftime("%Y%m%dT%H%M%S")

    def start(profile: str) -> LoadSession:
        name = f"{_file_name(request.node.nodeid)}-{profile}-{stamp}-{len(started)}"
        out_dir = reports_dir / "load" / name
        session = make_load(target, profile, out_dir)
        assert isinstance(session, LocustLoad)
        started.append(session)
        request.node.user_properties.append(("load", str(session.out_dir)))
        return session

    yield start
    try:
        for session in started:
            session.stop()
            figures = session.figures()
            request.node.user_properties.append((f"load {session.profile.name}", figures))
            print(f"load {session.profile.name}: {figures}")
    finally:
        left = locust_left([s.out_dir for s in started])
        if left:
            kill_left(left)
            pytest.fail(
                "Locust processes outlived their run and were killed: "
                + ", ".join(f"pid {p.pid}" for p in left),
                pytrace=False,
            )


@pytest.fixture
def recovery_journal(monkeypatch: pytest.MonkeyPatch, reports_dir: Path) -> None:
    """Chaos actions called from a test journal their undo under the run's reports dir
    (`resilience recover` with HARMONYFLOW_RECOVERY_JOURNAL set to it replays them)."""
    monkeypatch.setenv(RECOVERY_JOURNAL_VARIABLE, str(reports_dir / "recovery.jsonl"))


def _file_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:180]
