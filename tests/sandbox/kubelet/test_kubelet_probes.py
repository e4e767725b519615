"""The probe worker state machine, step by step, against upstream's worker.go semantics."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandbox.kube.kubelet.probes import (
    ContainerView,
    PodView,
    ProbeSpec,
    ProbeType,
    Result,
    Step,
    WorkerState,
    after_probe,
    before_probe,
    new_worker,
)

S, F, U = Result.SUCCESS, Result.FAILURE, Result.UNKNOWN
LIVE, READY, STARTUP = ProbeType.LIVENESS, ProbeType.READINESS, ProbeType.STARTUP


def running(container_id: str = "c1", since: float = 100.0, started: bool = True) -> ContainerView:
    return ContainerView(container_id, running=True, seconds_since_start=since, started=started)


def worker(
    probe_type: ProbeType = READY, failure: int = 3, success: int = 1, delay: int = 0
) -> WorkerState:
    spec = ProbeSpec(
        initial_delay_seconds=delay, success_threshold=success, failure_threshold=failure
    )
    return new_worker(probe_type, spec)


def probe_all(
    state: WorkerState,
    results: list[Result],
    container: ContainerView | None = None,
    pod: PodView | None = None,
) -> tuple[WorkerState, list[Result | None]]:
    """Run one tick per result; returns the published value after each."""
    published = []
    for result in results:
        state, step = before_probe(state, pod or PodView(), container or running())
        assert step is Step.PROBE
        state = after_probe(state, result)
        published.append(state.result)
    return state, published


@pytest.mark.parametrize(
    ("probe_type", "expected"),
    [
        pytest.param(READY, F, id="readiness-starts-failure"),
        pytest.param(LIVE, S, id="liveness-starts-success"),
        pytest.param(STARTUP, U, id="startup-starts-unknown"),
    ],
)
def test_initial_result_is_published_for_a_new_container(
    probe_type: ProbeType, expected: Result
) -> None:
    container = running(started=probe_type is not STARTUP, since=0.0)
    state, _ = before_probe(worker(probe_type, delay=30), PodView(), container)
    assert state.result is expected
    assert state.container_id == "c1"


def test_nothing_is_published_before_a_container_exists() -> None:
    state, step = before_probe(worker(), PodView(), None)
    assert (state.result, step) == (None, Step.WAIT)


@pytest.mark.parametrize(
    ("probe_type", "failure", "success", "results", "published"),
    [
        pytest.param(READY, 3, 1, [S], [S], id="one-success-is-enough"),
        pytest.param(READY, 3, 2, [S, S], [F, S], id="success-threshold-2"),
        pytest.param(READY, 3, 1, [S, F, F, F], [S, S, S, F], id="three-failures-flip"),
        pytest.param(
            READY,
            3,
            1,
            [S, F, F, S, F, F],
            [S, S, S, S, S, S],
            id="a-success-resets-the-failure-run",
        ),
        pytest.param(READY, 1, 1, [F, S, F], [F, S, F], id="threshold-1-follows-each-result"),
        pytest.param(LIVE, 2, 1, [F, F], [S, F], id="liveness-fails-at-threshold"),
        pytest.param(READY, 3, 1, [U, U, S], [F, F, S], id="unknown-is-thrown-away"),
    ],
)
def test_thresholds(
    probe_type: ProbeType,
    failure: int,
    success: int,
    results: list[Result],
    published: list[Result],
) -> None:
    _, seen = probe_all(worker(probe_type, failure, success), results)
    assert seen == published


def test_liveness_failure_holds_until_a_new_container() -> None:
    state, _ = probe_all(worker(LIVE, failure=1), [F])
    assert state.on_hold and state.result_run == 0
    same, step = before_probe(state, PodView(), running("c1"))
    assert step is Step.WAIT and same.result is F
    fresh, step = before_probe(state, PodView(), running("c2"))
    assert step is Step.PROBE
    assert (fresh.container_id, fresh.result, fresh.on_hold) == ("c2", S, False)


@pytest.mark.parametrize(
    ("result", "published"),
    [pytest.param(S, S, id="startup-success"), pytest.param(F, F, id="startup-failure")],
)
def test_startup_result_holds_until_a_new_container(result: Result, published: Result) -> None:
    state, _ = probe_all(worker(STARTUP, failure=1), [result], container=running(started=False))
    assert state.result is published and state.on_hold
    _, step = before_probe(state, PodView(), running(started=False))
    assert step is Step.WAIT


def test_readiness_failure_does_not_hold() -> None:
    state, _ = probe_all(worker(READY, failure=1), [F])
    assert not state.on_hold
    _, step = before_probe(state, PodView(), running())
    assert step is Step.PROBE


@pytest.mark.parametrize(
    ("probe_type", "started", "step"),
    [
        pytest.param(READY, False, Step.WAIT, id="readiness-waits-for-startup"),
        pytest.param(LIVE, False, Step.WAIT, id="liveness-waits-for-startup"),
        pytest.param(STARTUP, False, Step.PROBE, id="startup-probes-until-started"),
        pytest.param(STARTUP, True, Step.WAIT, id="startup-idle-once-started"),
        pytest.param(READY, True, Step.PROBE, id="readiness-probes-once-started"),
        pytest.param(LIVE, True, Step.PROBE, id="liveness-probes-once-started"),
    ],
)
def test_startup_gating(probe_type: ProbeType, started: bool, step: Step) -> None:
    _, actual = before_probe(worker(probe_type), PodView(), running(started=started))
    assert actual is step


@pytest.mark.parametrize(
    ("since", "step"),
    [
        pytest.param(4.9, Step.WAIT, id="inside-initial-delay"),
        pytest.param(5.0, Step.PROBE, id="delay-over"),
    ],
)
def test_initial_delay_counts_from_container_start(since: float, step: Step) -> None:
    state, actual = before_probe(worker(READY, delay=5), PodView(), running(since=since))
    assert actual is step
    assert state.result is F  # not ready during the delay


@pytest.mark.parametrize(
    ("probe_type", "step", "result"),
    [
        pytest.param(LIVE, Step.STOP, S, id="liveness-success-and-stop"),
        pytest.param(STARTUP, Step.STOP, S, id="startup-success-and-stop"),
        pytest.param(READY, Step.PROBE, F, id="readiness-keeps-probing"),
    ],
)
def test_pod_being_deleted(probe_type: ProbeType, step: Step, result: Result) -> None:
    started = probe_type is not STARTUP
    state, actual = before_probe(
        worker(probe_type), PodView(deleting=True), running(started=started)
    )
    assert (actual, state.result) == (step, result)


@pytest.mark.parametrize(
    ("terminated", "restart_never", "step"),
    [
        pytest.param(False, False, Step.WAIT, id="waiting-keeps-going"),
        pytest.param(True, False, Step.WAIT, id="terminated-will-restart"),
        pytest.param(True, True, Step.STOP, id="terminated-never-restarted"),
    ],
)
def test_container_not_running_is_failure(
    terminated: bool, restart_never: bool, step: Step
) -> None:
    container = ContainerView("c1", running=False, terminated=terminated)
    state, actual = before_probe(worker(LIVE), PodView(restart_never=restart_never), container)
    assert (actual, state.result) == (step, F)


def test_terminal_pod_stops_every_worker() -> None:
    for probe_type in ProbeType:
        _, step = before_probe(worker(probe_type), PodView(terminal=True), running())
        assert step is Step.STOP


def test_run_carries_over_to_a_new_container_as_upstream() -> None:
    state, _ = probe_all(worker(READY, failure=3), [F, F])
    restarted = replace(state)
    state, step = before_probe(restarted, PodView(), running("c2"))
    assert step is Step.PROBE and state.result is F and state.result_run == 2
