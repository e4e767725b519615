"""The HorizontalPodAutoscaler's steps, checked against its bounds and behaviour policies.

A **step** is a rescale the HPA made: an HPA status whose `lastScaleTime`
changed (or, where that field is absent, whose `desiredReplicas` changed while
`ScalingActive` is True), from `currentReplicas` to `desiredReplicas` -- both
written in the same status update (kubernetes-semantics.md 5.3, 5.4).
`desiredReplicas` outside a step is only trusted while ScalingActive is True:
with no metrics the controller keeps the old value, 0 at first.

Rate limits (`horizontal.go`, `calculateScaleUpLimitWithScalingRules` and
`calculateScaleDownLimitWithBehaviors`): for every policy, the replicas at the
start of its period are `from - added + deleted` over the HPA's own steps within
`periodSeconds`; a Pods policy allows `start +/- value`, a Percent policy
`ceil(start * (1 + value/100))` up and `floor(start * (1 - value/100))` down;
`selectPolicy: Max` takes the largest change, `Min` the smallest, `Disabled`
none. Without `behavior` (the legacy path), a scale-up is capped at
`max(2 * from, 4)` per sync and scale-down is not rate limited.

Steps are timed by arrival of the watch event, not by the controller's clock,
so a previous step counts towards a period only if it is more than
`clock_slack_seconds` inside it: the check errs towards allowing a step.
Stabilization windows are not checked (they delay, never exceed); the steps
and the seconds between them are in the result for a suite to assert on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from resilience.observe.records import HpaObservation
from resilience.observe.timeline import State
from resilience.policy import HpaPolicy, IntendedPolicy, ScalingRules
from resilience.slo.result import CheckResult, Violation, format_clock

MAX_LIMIT = "hpa.maxReplicas"
MIN_LIMIT = "hpa.minReplicas"
UP_RATE_LIMIT = "hpa.behavior.scaleUp"
DOWN_RATE_LIMIT = "hpa.behavior.scaleDown"
LEGACY_UP_LIMIT = "hpa.scaleUpLimit"


@dataclass(frozen=True)
class ScaleStep:
    wall: float
    index: int
    from_replicas: int
    to_replicas: int
    seconds_since_previous: float | None

    @property
    def up(self) -> bool:
        return self.to_replicas > self.from_replicas


def hpa_observations(states: Iterable[State], name: str) -> list[tuple[State, HpaObservation]]:
    """(state, HPA) for each state whose event changed the HPA `name`."""
    found: list[tuple[State, HpaObservation]] = []
    for state in states:
        event = state.event
        observation = None if event is None else event.observation
        if isinstance(observation, HpaObservation) and observation.name == name:
            found.append((state, state.hpas.get(name, observation)))
    return found


def hpa_steps(states: Iterable[State], name: str) -> list[ScaleStep]:
    """Every rescale of HPA `name`, in order, with the time since the previous one."""
    steps: list[ScaleStep] = []
    previous: HpaObservation | None = None
    for state, hpa in hpa_observations(states, name):
        if previous is not None and _is_step(previous, hpa):
            since = None if not steps else state.wall - steps[-1].wall
            steps.append(
                ScaleStep(
                    state.wall, state.index, hpa.current_replicas, hpa.desired_replicas, since
                )
            )
        previous = hpa
    return steps


def check_hpa(
    states: Iterable[State], policy: IntendedPolicy, *, clock_slack_seconds: float = 1.0
) -> CheckResult:
    """Bounds on every decision, rate limits on every step."""
    hpa = policy.hpa
    states = list(states)
    steps = hpa_steps(states, hpa.name)
    violations: list[Violation] = []
    outside = False
    for state, observed in hpa_observations(states, hpa.name):
        decision = observed.desired_replicas if observed.scaling_active else None
        found = None if decision is None else _bounds_violation(hpa, decision, state)
        if found is not None and not outside:
            violations.append(found)
        outside = found is not None
    for position, step in enumerate(steps):
        found = _step_bounds(hpa, step) or _rate_violation(
            hpa, step, steps[:position], clock_slack_seconds
        )
        if found is not None and all(v.index != found.index for v in violations):
            violations.append(found)
    violations.sort(key=lambda v: v.index)
    details: dict[str, float | int | str] = {
        "steps": len(steps),
        "max_replicas_seen": max((s.to_replicas for s in steps), default=0),
        "step_times": ", ".join(
            f"{format_clock(s.wall)} {s.from_replicas}->{s.to_replicas}" for s in steps
        ),
    }
    return CheckResult("hpa", tuple(violations), details)


def scale_up_limit(
    rules: ScalingRules, from_replicas: int, earlier: Sequence[ScaleStep], now: float, slack: float
) -> int:
    """The largest `to` a scale-up from `from_replicas` at `now` may reach."""
    if rules.select_policy == "Disabled":
        return from_replicas
    proposals = []
    for policy in rules.policies:
        start = _period_start(from_replicas, earlier, now, policy.period_seconds - slack)
        if policy.type == "Pods":
            proposals.append(start + policy.value)
        else:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(
    rules: ScalingRules, from_replicas: int, earlier: Sequence[ScaleStep], now: float, slack: float
) -> int:
    """The smallest `to` a scale-down from `from_replicas` at `now` may reach."""
    if rules.select_policy == "Disabled":
        return from_replicas
    proposals = []
    for policy in rules.policies:
        start = _period_start(from_replicas, earlier, now, policy.period_seconds - slack)
        if policy.type == "Pods":
            proposals.append(start - policy.value)
        else:
            proposals.append(math.floor(start * (1 - policy.value / 100)))
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def _period_start(
    from_replicas: int, earlier: Sequence[ScaleStep], now: float, period: float
) -> int:
    within = [s for s in earlier if now - s.wall < period]
    added = sum(s.to_replicas - s.from_replicas for s in within if s.up)
    deleted = sum(s.from_replicas - s.to_replicas for s in within if not s.up)
    return from_replicas - added + deleted


def _is_step(previous: HpaObservation, current: HpaObservation) -> bool:
    if current.desired_replicas == current.current_replicas or current.desired_replicas <= 0:
        return False
    if current.last_scale_time is not None:
        return current.last_scale_time != previous.last_scale_time
    return current.scaling_active and current.desired_replicas != previous.desired_replicas


def _bounds_violation(hpa: HpaPolicy, replicas: int, state: State) -> Violation | None:
    where = f"at {format_clock(state.wall)} (event {state.index})"
    if replicas > hpa.max_replicas:
        return Violation(
            MAX_LIMIT,
            hpa.max_replicas,
            replicas,
            state.wall,
            state.index,
            f"hpa {hpa.name}: desired {replicas} replicas {where}, more than maxReplicas "
            f"{hpa.max_replicas}",
        )
    if replicas < hpa.min_replicas:
        return Violation(
            MIN_LIMIT,
            hpa.min_replicas,
            replicas,
            state.wall,
            state.index,
            f"hpa {hpa.name}: desired {replicas} replicas {where}, fewer than minReplicas "
            f"{hpa.min_replicas}",
        )
    return None


def _step_bounds(hpa: HpaPolicy, step: ScaleStep) -> Violation | None:
    fake = State(index=step.index, wall=step.wall)
    return _bounds_violation(hpa, step.to_replicas, fake)


def _rate_violation(
    hpa: HpaPolicy, step: ScaleStep, earlier: Sequence[ScaleStep], slack: float
) -> Violation | None:
    where = f"at {format_clock(step.wall)} (event {step.index})"
    moved = f"hpa {hpa.name}: scaled {step.from_replicas} -> {step.to_replicas} {where}"
    if hpa.behavior is None:
        if not step.up:
            return None
        limit = max(2 * step.from_replicas, 4)
        if step.to_replicas <= limit:
            return None
        return Violation(
            LEGACY_UP_LIMIT,
            limit,
            step.to_replicas,
            step.wall,
            step.index,
            f"{moved}, more than the legacy per-sync limit max(2 x {step.from_replicas}, 4) "
            f"= {limit}",
        )
    if step.up:
        rules = hpa.behavior.scale_up
        limit = scale_up_limit(rules, step.from_replicas, earlier, step.wall, slack)
        if step.to_replicas <= limit:
            return None
        return Violation(
            UP_RATE_LIMIT,
            limit,
            step.to_replicas,
            step.wall,
            step.index,
            f"{moved}, more than the scaleUp limit {limit} ({_policies_text(rules)})",
        )
    rules = hpa.behavior.scale_down
    limit = scale_down_limit(rules, step.from_replicas, earlier, step.wall, slack)
    if step.to_replicas >= limit:
        return None
    return Violation(
        DOWN_RATE_LIMIT,
        limit,
        step.to_replicas,
        step.wall,
        step.index,
        f"{moved}, below the scaleDown limit {limit} ({_policies_text(rules)})",
    )


def _policies_text(rules: ScalingRules) -> str:
    policies = ", ".join(f"{p.type} {p.value} per {p.period_seconds}s" for p in rules.policies)
    return f"selectPolicy {rules.select_policy}: {policies}"
