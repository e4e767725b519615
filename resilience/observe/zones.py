"""Which zone a drain should take: pure choices over one state of the timeline.

An earlier rollout may leave the replicas unevenly spread (the scale-down picks
pods without regard to zones). A drain that picked a zone by position could then
take an empty zone and test nothing, or a zone holding more pods than the
disruption budget and be refused by the blast-radius interlock.
"""

from __future__ import annotations

from resilience.observe.recovery import ready_spread
from resilience.observe.timeline import State
from resilience.policy import IntendedPolicy


def active_pods_per_zone(state: State, policy: IntendedPolicy) -> dict[str, list[str]]:
    """The service's running or starting pods (not terminating) on each intended zone."""
    per_zone: dict[str, list[str]] = {zone: [] for zone in policy.zones.zones}
    for pod in state.pods_matching(policy.selector):
        zone = state.zone_of(pod)
        if pod.active and zone in per_zone:
            per_zone[zone].append(pod.name)
    return per_zone


def zone_to_drain(state: State, policy: IntendedPolicy, budget: int) -> str:
    """The busiest zone whose pods the budget lets go at once; else the busiest of all,
    which the blast-radius interlock then refuses by name. Ties go in the intended order."""
    counts = {zone: len(pods) for zone, pods in active_pods_per_zone(state, policy).items()}
    ranked = sorted(counts, key=lambda zone: -counts[zone])
    within = [zone for zone in ranked if 0 < counts[zone] <= budget]
    return (within or ranked)[0]


def busiest_zone(state: State, policy: IntendedPolicy, besides: str | None = None) -> str:
    """The zone with the most Ready replicas, other than `besides` (intended order on ties):
    where a second drain meets the budget, if anywhere."""
    ready = ready_spread(state, policy).zones
    return max(
        (zone for zone in policy.zones.zones if zone != besides),
        key=lambda zone: ready.get(zone, 0),
    )
