"""zone_to_drain and busiest_zone over hand-written states: even and uneven spreads."""

from __future__ import annotations

import pytest

from resilience.observe.zones import active_pods_per_zone, busiest_zone, zone_to_drain
from tests.observe.builders import ZONES, World, make_policy

A, B, C = ZONES


def spread(per_zone: dict[str, int], not_ready: dict[str, int] | None = None) -> World:
    """Ready pods per zone (plus not-ready ones), one node per zone."""
    world = World(make_policy())
    for zone in ZONES:
        world.node(f"node-{zone}", zone)
    index = 0
    for zone in ZONES:
        for ready in [True] * per_zone.get(zone, 0) + [False] * (not_ready or {}).get(zone, 0):
            world.pod(f"p-{index}", ready=ready, node=f"node-{zone}")
            index += 1
    return world


@pytest.mark.parametrize(
    ("per_zone", "budget", "chosen"),
    [
        pytest.param({A: 1, B: 1, C: 1}, 1, A, id="even-first-in-order"),
        pytest.param({A: 0, B: 1, C: 2}, 1, B, id="skewed-busiest-within-budget"),
        pytest.param({A: 0, B: 1, C: 2}, 2, C, id="budget-takes-the-busiest"),
        pytest.param({A: 0, B: 0, C: 3}, 1, C, id="none-within-budget-refused-later"),
        pytest.param({A: 0, B: 2, C: 1}, 1, C, id="never-an-empty-zone"),
    ],
)
def test_zone_to_drain(per_zone: dict[str, int], budget: int, chosen: str) -> None:
    state = spread(per_zone).states()[-1]
    assert zone_to_drain(state, make_policy(), budget) == chosen


@pytest.mark.parametrize(
    ("per_zone", "not_ready", "besides", "chosen"),
    [
        pytest.param({A: 1, B: 1, C: 1}, {}, A, B, id="tie-in-order"),
        pytest.param({A: 1, B: 0, C: 2}, {}, A, C, id="most-ready"),
        pytest.param({A: 0, B: 1, C: 0}, {C: 2}, A, B, id="not-ready-does-not-count"),
        pytest.param({A: 2, B: 1, C: 0}, {}, A, B, id="besides-excluded"),
    ],
)
def test_busiest_zone(
    per_zone: dict[str, int], not_ready: dict[str, int], besides: str, chosen: str
) -> None:
    state = spread(per_zone, not_ready).states()[-1]
    assert busiest_zone(state, make_policy(), besides=besides) == chosen


def test_active_pods_per_zone_leaves_terminating_pods_out() -> None:
    world = spread({A: 2, B: 1})
    world.pod("p-0", deleting=True, ready=False)
    assert active_pods_per_zone(world.states()[-1], make_policy()) == {
        A: ["p-1"],
        B: ["p-2"],
        C: [],
    }
