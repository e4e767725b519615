"""Time to recover: from a mark until the Deployment is back to N Ready pods, spread by zone.

"Recovered" at a state means: at least `replicas` active Ready pods of the
Deployment, and -- when the policy has a zone policy and `spread` is asked --
those pods spread over the policy's zones with at most `maxSkew` between the
fullest and the emptiest zone (zones from the policy's required node affinity,
else the zones of the nodes seen).

The clock starts at the mark's start. The checker first looks for the
disruption (the first state at or after the start that is not recovered: a
killed pod shows as terminating within one watch event), then for the first
recovered state after it. A fault that never showed is reported as
`disrupted_at None` and 0 s, so a suite can tell "fast" from "nothing happened".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from resilience.observe.records import PodObservation
from resilience.observe.timeline import Mark, State
from resilience.policy import IntendedPolicy
from resilience.slo.result import CheckResult, Violation, format_clock

RECOVERY_LIMIT = "recovery.seconds"


@dataclass(frozen=True)
class Spread:
    ready: int
    zones: Mapping[str, int] = field(default_factory=dict)  # Ready pods per zone
    skew: int = 0


@dataclass(frozen=True)
class Recovery:
    mark: Mark
    replicas: int
    spread_required: bool
    disrupted_at: float | None = None
    disrupted_index: int | None = None
    recovered_at: float | None = None
    recovered_index: int | None = None
    at_recovery: Spread | None = None
    last: Spread | None = None  # the spread at the last state seen (for messages)
    max_skew: int | None = None  # the zone policy's limit, when the spread is required

    @property
    def recovered(self) -> bool:
        return self.recovered_at is not None

    @property
    def seconds(self) -> float | None:
        """From the mark's start to the first recovered state (0 when never disrupted)."""
        if self.disrupted_at is None and self.recovered_at is not None:
            return 0.0
        return None if self.recovered_at is None else self.recovered_at - self.mark.start


def ready_spread(state: State, policy: IntendedPolicy) -> Spread:
    selector = state.deployment_selector(policy.deployment, policy.selector)
    ready: list[PodObservation] = [p for p in state.pods_matching(selector) if p.active and p.ready]
    zones = policy.zones.zones or tuple(
        sorted({n.zone for n in state.nodes.values() if n.zone is not None})
    )
    counts = Counter(state.zone_of(p) for p in ready)
    per_zone = {zone: counts.get(zone, 0) for zone in zones}
    skew = max(per_zone.values()) - min(per_zone.values()) if per_zone else 0
    return Spread(len(ready), per_zone, skew)


def is_recovered(spread: Spread, replicas: int, policy: IntendedPolicy, with_spread: bool) -> bool:
    if spread.ready < replicas:
        return False
    return not with_spread or spread.skew <= policy.zones.max_skew


def measure_recovery(
    states: Iterable[State],
    policy: IntendedPolicy,
    mark: Mark,
    *,
    replicas: int | None = None,
    spread: bool = True,
) -> Recovery:
    """When, after `mark` started, the Deployment was back to `replicas` Ready pods (and spread)."""
    target = policy.rollout.replicas if replicas is None else replicas
    found = _first_recovery(states, policy, mark, target, spread)
    return replace(found, max_skew=policy.zones.max_skew if spread else None)


def _first_recovery(
    states: Iterable[State], policy: IntendedPolicy, mark: Mark, target: int, spread: bool
) -> Recovery:
    result = Recovery(mark, target, spread)
    for state in states:
        if state.wall < mark.start:
            continue
        now = ready_spread(state, policy)
        healthy = is_recovered(now, target, policy, spread)
        if result.disrupted_at is None:
            if healthy and mark.end is not None and state.wall > mark.end:
                return Recovery(mark, target, spread, None, None, state.wall, state.index, now, now)
            if not healthy:
                result = Recovery(mark, target, spread, state.wall, state.index, last=now)
            continue
        if healthy:
            return Recovery(
                mark,
                target,
                spread,
                result.disrupted_at,
                result.disrupted_index,
                state.wall,
                state.index,
                now,
                now,
            )
        result = Recovery(
            mark, target, spread, result.disrupted_at, result.disrupted_index, last=now
        )
    return result


def check_recovery(recovery: Recovery, within_seconds: float) -> CheckResult:
    """Recovered, and within `within_seconds` of the mark's start."""
    what = f"{recovery.replicas} Ready pods" + (
        f" spread over zones within maxSkew {recovery.max_skew}" if recovery.spread_required else ""
    )
    seconds = recovery.seconds
    details: dict[str, float | int | str] = {"limit_seconds": within_seconds}
    if seconds is not None:
        details["seconds"] = round(seconds, 3)
    if seconds is not None and seconds <= within_seconds:
        return CheckResult("recovery", (), details)
    last = recovery.last
    seen = (
        ""
        if last is None
        else f"; last seen {last.ready} Ready, by zone {dict(last.zones)} (skew {last.skew})"
    )
    if seconds is None:
        message = (
            f"recovery after {recovery.mark.name} (started {format_clock(recovery.mark.start)}): "
            f"never back to {what}{seen}"
        )
        observed, wall, index = -1.0, recovery.mark.start, recovery.disrupted_index or -1
    else:
        message = (
            f"recovery after {recovery.mark.name}: back to {what} at "
            f"{format_clock(recovery.recovered_at or 0.0)} (event {recovery.recovered_index}), "
            f"{seconds:.1f}s after its start, more than {within_seconds:g}s"
        )
        observed, wall, index = (
            seconds,
            recovery.recovered_at or 0.0,
            recovery.recovered_index or -1,
        )
    return CheckResult(
        "recovery",
        (Violation(RECOVERY_LIMIT, within_seconds, observed, wall, index, message),),
        details,
    )
