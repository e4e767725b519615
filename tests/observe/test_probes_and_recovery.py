"""Table tests of the probe histories and the recovery measurement."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilience.observe.probes import (
    LIVENESS_LIMIT,
    READINESS_LIMIT,
    check_liveness_restart,
    check_readiness_recovered_without_restart,
    pod_histories,
)
from resilience.observe.recovery import (
    RECOVERY_LIMIT,
    check_recovery,
    measure_recovery,
)
from resilience.observe.timeline import Mark
from resilience.policy import ProbeKind, ProbePolicy
from tests.observe.builders import T0, World, base_policy, steady


def liveness() -> ProbePolicy:
    return base_policy().probes[ProbeKind.LIVENESS]


def restart_after(seconds: float) -> Callable[[World, float], None]:
    """The container hangs at `hang`; its run ends `seconds` later and it restarts."""

    def scenario(world: World, hang: float) -> None:
        world.at(hang + seconds).pod(
            "old-0", ready=False, restarts=1, last={"last_finished_at": hang + seconds}
        )
        world.after(1).pod("old-0", ready=True)

    return scenario


def no_restart(world: World, hang: float) -> None:
    world.at(hang + 100).pod("old-0", ready=False)


@pytest.mark.parametrize(
    ("scenario", "ok"),
    [
        pytest.param(restart_after(liveness().worst_detection_seconds - 1), True, id="in-time"),
        pytest.param(restart_after(liveness().worst_detection_seconds + 5), False, id="late"),
        pytest.param(no_restart, False, id="never"),
    ],
)
def test_liveness_restart_within_period_times_threshold(
    scenario: Callable[[World, float], None], ok: bool
) -> None:
    policy = base_policy()
    world = steady(policy)
    hang = world.wall + 1
    scenario(world, hang)
    history = pod_histories(world.states(), policy.selector)["old-0"]
    result = check_liveness_restart(history, liveness(), hang, observed_until=world.wall)
    assert result.ok is ok, result.summary()
    if not ok:
        first = result.first
        assert first is not None and first.limit == LIVENESS_LIMIT
        assert f"= {liveness().worst_detection_seconds}s" in first.message


def flap(world: World) -> None:
    world.pod("old-0", ready=False).after(3).pod("old-0", ready=True)


def flap_with_restart(world: World) -> None:
    world.pod("old-0", ready=False).pod("old-0", restarts=1).pod("old-0", ready=True)


def stays_down(world: World) -> None:
    world.pod("old-0", ready=False)


def never_down(world: World) -> None:
    world.pod("old-1", ready=False)


@pytest.mark.parametrize(
    ("scenario", "violation"),
    [
        pytest.param(flap, None, id="flap"),
        pytest.param(flap_with_restart, "restarted", id="restart"),
        pytest.param(stays_down, "never became Ready again", id="stays-down"),
        pytest.param(never_down, "never went unready", id="never-down"),
    ],
)
def test_readiness_went_false_then_true_without_restart(
    scenario: Callable[[World], None], violation: str | None
) -> None:
    policy = base_policy()
    world = steady(policy)
    since = world.wall
    scenario(world)
    history = pod_histories(world.states(), policy.selector)["old-0"]
    result = check_readiness_recovered_without_restart(history, since=since)
    if violation is None:
        assert result.ok, result.summary()
        assert result.details["unready_seconds"] == pytest.approx(3)
    else:
        assert result.first is not None and result.first.limit == READINESS_LIMIT
        assert violation in result.first.message


def test_histories_record_transition_times() -> None:
    policy = base_policy()
    world = steady(policy)
    flap(world)
    history = pod_histories(world.states(), policy.selector)["old-0"]
    assert [t.ready for t in history.transitions] == [True, False, True]
    assert history.transitions[-1].wall - history.transitions[-2].wall == pytest.approx(3)


def kill_and_replace(world: World) -> None:
    world.pod("old-0", deleting=True, ready=False)
    world.pod("new-0", node="node-us-west-2a").after(4).pod("new-0", ready=True)


def kill_and_replace_in_wrong_zone(world: World) -> None:
    world.pod("old-0", deleting=True, ready=False)
    world.pod("new-0", node="node-us-west-2b").after(4).pod("new-0", ready=True)


def kill_never_replaced(world: World) -> None:
    world.pod("old-0", deleting=True, ready=False).after(100).delete("old-0")


def nothing_happens(world: World) -> None:
    world.after(5).node("node-us-west-2a", "us-west-2a")


@pytest.mark.parametrize(
    ("scenario", "spread", "seconds"),
    [
        pytest.param(kill_and_replace, True, 5.5, id="replaced"),
        pytest.param(kill_and_replace_in_wrong_zone, True, None, id="skewed-with-spread"),
        pytest.param(kill_and_replace_in_wrong_zone, False, 5.5, id="skewed-count-only"),
        pytest.param(kill_never_replaced, False, None, id="never"),
        pytest.param(nothing_happens, True, 0.0, id="never-disrupted"),
    ],
)
def test_recovery_time_from_a_mark(
    scenario: Callable[[World], None], spread: bool, seconds: float | None
) -> None:
    policy = base_policy()
    world = steady(policy, zones=True)
    start = world.wall + 0.5
    scenario(world)
    mark = Mark(0, "kill-pod", start, start - T0, start + 0.1, start + 0.1 - T0)
    recovery = measure_recovery(world.states(), policy, mark, spread=spread)
    if seconds is None:
        assert not recovery.recovered
        result = check_recovery(recovery, within_seconds=60)
        assert result.first is not None and result.first.limit == RECOVERY_LIMIT
        assert "never back to" in result.first.message
        if spread:
            assert "within maxSkew 1" in result.first.message, result.first.message
            assert "(skew 2)" in result.first.message, result.first.message
    else:
        assert recovery.seconds == pytest.approx(seconds)
        assert check_recovery(recovery, within_seconds=seconds + 1).ok
    if scenario is nothing_happens:
        assert recovery.disrupted_at is None


def test_slow_recovery_names_the_limit_and_the_time() -> None:
    policy = base_policy()
    world = steady(policy, zones=True)
    start = world.wall + 0.5
    kill_and_replace(world)
    mark = Mark(0, "kill-pod", start, 0.0)
    result = check_recovery(measure_recovery(world.states(), policy, mark), within_seconds=2)
    first = result.first
    assert first is not None
    assert (first.limit, first.limit_value, first.observed) == (RECOVERY_LIMIT, 2, 5.5)
    assert "5.5s after its start, more than 2s" in first.message
