"""CPU rates from cumulative ticks: why a pod is in `kubectl top` only from its second reading."""

from __future__ import annotations

import pytest

from sandbox.kube.kubelet.usage import CpuTracker, Reading, millicores


def test_a_container_has_a_rate_only_from_its_second_reading() -> None:
    tracker = CpuTracker()
    assert tracker.rate("c1", Reading(cpu_ticks=100, at=0.0)) is None
    assert tracker.rate("c1", Reading(cpu_ticks=250, at=15.0)) == (100, 15.0)
    assert tracker.rate("c1", Reading(cpu_ticks=250, at=30.0)) == (0, 15.0)


def test_a_restarted_container_starts_over() -> None:
    """A new container ID is a new key: the pod drops out of `top` for one more reading."""
    tracker = CpuTracker()
    tracker.rate("old", Reading(100, 0.0))
    tracker.forget_except({"new"})
    assert tracker.rate("old", Reading(200, 15.0)) is None
    assert tracker.rate("new", Reading(5, 15.0)) is None


@pytest.mark.parametrize(
    ("ticks", "seconds", "expected"),
    [
        pytest.param(100, 1.0, 1000, id="one core busy"),
        pytest.param(25, 10.0, 25, id="a quarter core over ten seconds is 25m"),
        pytest.param(-5, 1.0, 0, id="a counter that went back (a new process) is no usage"),
        pytest.param(10, 0.0, 0, id="no time between readings"),
    ],
)
def test_millicores(ticks: int, seconds: float, expected: int) -> None:
    assert millicores(Reading(0, 0.0), Reading(ticks, seconds), clk_tck=100) == expected
