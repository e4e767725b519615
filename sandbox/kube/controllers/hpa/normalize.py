"""From a proposal to the replicas to set: upstream's `horizontal.go` normalizeDesiredReplicas
(no `behavior`: the downscale stabilization window and the scale-up limit) and
normalizeDesiredReplicasWithBehaviors (stabilization windows, policies, scale events).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from sandbox.kube.controllers.hpa.model import (
    ABLE_TO_SCALE,
    FALSE,
    INT32_MAX,
    INT32_MIN,
    SCALE_UP_LIMIT_FACTOR,
    SCALE_UP_LIMIT_MINIMUM,
    SCALING_LIMITED,
    TRUE,
    Behavior,
    Condition,
    History,
    Normalized,
    Recommendation,
    ScaleEvent,
    ScalingRules,
)

_WITHIN_RANGE: Final = "the desired count is within the acceptable range"
_SCALE_UP_LIMITED: Final = (
    "the desired replica count is increasing faster than the maximum scale rate"
)
_TOO_MANY: Final = "the desired replica count is more than the maximum replica count"
_TOO_FEW: Final = "the desired replica count is less than the minimum replica count"
_READY_FOR_NEW_SCALE: Final = "recommended size matches current size"


def stabilize_recommendation(
    recommendations: Sequence[Recommendation], proposal: int, window_seconds: float, now: datetime
) -> tuple[int, tuple[Recommendation, ...]]:
    """stabilizeRecommendation: the max of the proposal and every recommendation
    inside the window; the proposal is recorded (reusing an expired slot).

    Example (window 300 s): recommendations 5 at now-100 s and 7 at now-400 s,
    proposal 3: result 5; the 7 (expired) is replaced by 3 at now.
    """
    cutoff = now - timedelta(seconds=window_seconds)
    best = proposal
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp < cutoff:
            old_index = index
        elif rec.replicas > best:
            best = rec.replicas
    return best, _record(recommendations, Recommendation(proposal, now), old_index)


def scale_up_limit(current_replicas: int) -> int:
    """calculateScaleUpLimit: max(2 * current, 4).

    Example: current 1 -> 4; current 3 -> 6; current 10 -> 20.
    """
    return int(max(SCALE_UP_LIMIT_FACTOR * current_replicas, SCALE_UP_LIMIT_MINIMUM))


def upper_bound(limit: int, max_replicas: int) -> tuple[int, str, str]:
    """The highest count a scale-up may reach, and why: the rate `limit` where it is below
    maxReplicas (ScaleUpLimit), else maxReplicas (TooManyReplicas).

    >>> upper_bound(6, 20)[:2], upper_bound(6, 5)[:2]
    ((6, 'ScaleUpLimit'), (5, 'TooManyReplicas'))
    """
    if max_replicas > limit:
        return limit, "ScaleUpLimit", _SCALE_UP_LIMITED
    return max_replicas, "TooManyReplicas", _TOO_MANY


def convert_desired_replicas_with_rules(
    current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int
) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules: clamp to [min, min(max, scale-up limit)].

    Examples: current 3, desired 10, max 20: limit 6 -> (6, ScaleUpLimit);
    current 3, desired 10, max 5 -> (5, TooManyReplicas); desired 0, min 2 ->
    (2, TooFewReplicas); desired 4 within range -> (4, DesiredWithinRange).
    """
    maximum, reason, message = upper_bound(scale_up_limit(current_replicas), max_replicas)
    if desired_replicas < min_replicas:
        return min_replicas, "TooFewReplicas", _TOO_FEW
    if desired_replicas > maximum:
        return maximum, reason, message
    return desired_replicas, "DesiredWithinRange", _WITHIN_RANGE


def normalize_desired_replicas(
    current_replicas: int,
    proposal: int,
    min_replicas: int,
    max_replicas: int,
    recommendations: Sequence[Recommendation],
    window_seconds: float,
    now: datetime,
) -> Normalized:
    """normalizeDesiredReplicas (`spec.behavior` is nil): downscale stabilization
    over the flag's window, then the [min, max] clamp and the scale-up cap.

    Example: current 5, proposal 2, a recommendation of 5 two minutes ago:
    stabilized 5 (AbleToScale ScaleDownStabilized), within range, desired 5.
    """
    stabilized, recorded = stabilize_recommendation(recommendations, proposal, window_seconds, now)
    if stabilized != proposal:
        able = Condition(
            ABLE_TO_SCALE,
            TRUE,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, "
            "applying the highest recent recommendation",
        )
    else:
        able = Condition(ABLE_TO_SCALE, TRUE, "ReadyForNewScale", _READY_FOR_NEW_SCALE)
    desired, reason, message = convert_desired_replicas_with_rules(
        current_replicas, stabilized, min_replicas, max_replicas
    )
    limited = Condition(SCALING_LIMITED, FALSE if desired == stabilized else TRUE, reason, message)
    return Normalized(desired, able, limited, recorded)


def with_default_down_window(behavior: Behavior, window_seconds: float) -> Behavior:
    """maybeInitScaleDownStabilizationWindow: a nil scaleDown window takes the flag.

    Example: scaleDown window None with the 300 s flag -> 300.
    """
    if behavior.scale_down.stabilization_window_seconds is not None:
        return behavior
    down = replace(behavior.scale_down, stabilization_window_seconds=int(window_seconds))
    return replace(behavior, scale_down=down)


def stabilize_recommendation_with_behaviors(
    recommendations: Sequence[Recommendation],
    current_replicas: int,
    proposal: int,
    behavior: Behavior,
    now: datetime,
) -> tuple[int, str, str, tuple[Recommendation, ...]]:
    """The up recommendation is the min over the up window, the down
    recommendation the max over the down window (both including the proposal);
    the result starts from current and is clamped between them.

    Example: current 4, up window 60 s with a recommendation of 5 at now-30 s,
    proposal 8: up = min(8, 5) = 5, down = max(8, 5) = 8 -> 5, reason
    ScaleUpStabilized. The proposal 8 is recorded at now.
    """
    up_window = behavior.scale_up.stabilization_window_seconds or 0
    down_window = behavior.scale_down.stabilization_window_seconds or 0
    up_cutoff = now - timedelta(seconds=up_window)
    down_cutoff = now - timedelta(seconds=down_window)
    up_recommendation = down_recommendation = proposal
    old_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp > up_cutoff:
            up_recommendation = min(rec.replicas, up_recommendation)
        if rec.timestamp > down_cutoff:
            down_recommendation = max(rec.replicas, down_recommendation)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            old_index = index
    recommendation = current_replicas
    recommendation = max(recommendation, up_recommendation)
    recommendation = min(recommendation, down_recommendation)
    recorded = _record(recommendations, Recommendation(proposal, now), old_index)
    if proposal >= current_replicas:
        reason, message = (
            "ScaleUpStabilized",
            (
                "recent recommendations were lower than current one, "
                "applying the lowest recent recommendation"
            ),
        )
    else:
        reason, message = (
            "ScaleDownStabilized",
            (
                "recent recommendations were higher than current one, "
                "applying the highest recent recommendation"
            ),
        )
    return recommendation, reason, message, recorded


def replicas_change_per_period(
    period_seconds: int, events: Sequence[ScaleEvent], now: datetime
) -> int:
    """getReplicasChangePerPeriod: the sum of changes strictly inside the period.

    Example: changes 2 at now-10 s and 3 at now-20 s, period 15 s -> 2.
    """
    cutoff = now - timedelta(seconds=period_seconds)
    return sum(event.replica_change for event in events if event.timestamp > cutoff)


def scale_up_limit_with_rules(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> int:
    """calculateScaleUpLimitWithScalingRules: each policy proposes from the
    replica count at the start of its period; Max picks the largest, Min the
    smallest; Disabled allows no change. Percent rounds up.

    Example: current 4, no events, policies Pods 4 / 15 s and Percent 100 /
    15 s: proposals 8 and 8 -> 8. After a +3 event 5 s ago at current 7: period
    start 4, proposals 8 and 8 -> 8. Percent 50 from 3: ceil(4.5) = 5.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick_min = rules.select_policy == "Min"
    result: int | None = None
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = start + policy.value
        elif policy.type == "Percent":
            proposed = math.ceil(start * (1 + policy.value / 100))
        else:
            continue
        if result is None:
            result = proposed
        else:
            result = min(result, proposed) if pick_min else max(result, proposed)
    return result if result is not None else (INT32_MAX if pick_min else INT32_MIN)


def scale_down_limit_with_behaviors(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: datetime,
) -> int:
    """calculateScaleDownLimitWithBehaviors: the lowest count the policies allow;
    Max (the default) picks the largest change, i.e. the smallest count; Min the
    smallest change. Percent truncates.

    Example: current 10, Percent 100 / 15 s -> 0; Pods 2 / 60 s -> 8; with
    both and Min: max(0, 8) = 8. Percent 10 from 10: int(10 * 0.9) = 9.
    """
    if rules.select_policy == "Disabled":
        return current_replicas
    pick_fewest_removed = rules.select_policy == "Min"
    result: int | None = None
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_seconds, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now)
        start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposed = start - policy.value
        elif policy.type == "Percent":
            proposed = int(start * (1 - policy.value / 100))
        else:
            continue
        if result is None:
            result = proposed
        else:
            result = max(result, proposed) if pick_fewest_removed else min(result, proposed)
    return result if result is not None else (INT32_MIN if pick_fewest_removed else INT32_MAX)


def convert_desired_replicas_with_behavior_rate(
    current_replicas: int,
    desired_replicas: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    history: History,
    now: datetime,
) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate: the rate limits and [min, max].

    Examples: current 2, desired 10, max 20, default scale-up policies: limit
    max(2 + 4, 2 * 2) = 6 -> (6, ScaleUpLimit). Current 8, desired 1, min 3,
    default scale-down (100 %): limit 0 -> (3, TooFewReplicas).
    """
    if desired_replicas > current_replicas:
        limit = scale_up_limit_with_rules(
            current_replicas,
            history.scale_up_events,
            history.scale_down_events,
            behavior.scale_up,
            now,
        )
        maximum, reason, message = upper_bound(max(limit, current_replicas), max_replicas)
        if desired_replicas > maximum:
            return maximum, reason, message
    elif desired_replicas < current_replicas:
        limit = scale_down_limit_with_behaviors(
            current_replicas,
            history.scale_up_events,
            history.scale_down_events,
            behavior.scale_down,
            now,
        )
        limit = min(limit, current_replicas)
        if min_replicas < limit:
            minimum, reason, message = (
                limit,
                "ScaleDownLimit",
                ("the desired replica count is decreasing faster than the maximum scale rate"),
            )
        else:
            minimum, reason, message = min_replicas, "TooFewReplicas", _TOO_FEW
        if desired_replicas < minimum:
            return minimum, reason, message
    return desired_replicas, "DesiredWithinRange", _WITHIN_RANGE


def normalize_desired_replicas_with_behaviors(
    current_replicas: int,
    proposal: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Behavior,
    history: History,
    now: datetime,
) -> Normalized:
    """normalizeDesiredReplicasWithBehaviors: stabilization windows, then rate
    limits and [min, max]. `behavior` must have its scaleDown window resolved
    (see `with_default_down_window`).

    Example: current 3, proposal 6, default behavior, no history: up window 0,
    down window 300 s holds only the proposal -> 6; scale-up limit max(3 + 4,
    3 * 2) = 7 -> desired 6, ScalingLimited False DesiredWithinRange.
    """
    stabilized, reason, message, recorded = stabilize_recommendation_with_behaviors(
        history.recommendations, current_replicas, proposal, behavior, now
    )
    if stabilized != proposal:
        able = Condition(ABLE_TO_SCALE, TRUE, reason, message)
    else:
        able = Condition(ABLE_TO_SCALE, TRUE, "ReadyForNewScale", _READY_FOR_NEW_SCALE)
    desired, reason, message = convert_desired_replicas_with_behavior_rate(
        current_replicas, stabilized, min_replicas, max_replicas, behavior, history, now
    )
    limited = Condition(SCALING_LIMITED, FALSE if desired == stabilized else TRUE, reason, message)
    return Normalized(desired, able, limited, recorded)


def store_scale_event(
    behavior: Behavior | None, history: History, previous: int, new: int, now: datetime
) -> History:
    """storeScaleEvent: remember a rescale for the rate limits (only with a
    behavior). Events older than the direction's longest policy period are
    marked outdated and the last of them is reused for the new one.

    Example: behavior with up period 15 s, events (+2 at now-60 s): previous 3,
    new 6 -> up events (+3 at now); the old one was outdated and reused.
    """
    if behavior is None:
        return history
    up = new > previous
    rules = behavior.scale_up if up else behavior.scale_down
    events = history.scale_up_events if up else history.scale_down_events
    longest = max((policy.period_seconds for policy in rules.policies), default=0)
    cutoff = now - timedelta(seconds=longest)
    marked = [
        replace(event, outdated=True) if event.timestamp < cutoff else event for event in events
    ]
    old_index: int | None = None
    for index, event in enumerate(marked):
        if event.outdated:
            old_index = index
    fresh = ScaleEvent(abs(new - previous), now)
    if old_index is None:
        marked.append(fresh)
    else:
        marked[old_index] = fresh
    if up:
        return replace(history, scale_up_events=tuple(marked))
    return replace(history, scale_down_events=tuple(marked))


def _record(
    recommendations: Sequence[Recommendation], fresh: Recommendation, old_index: int | None
) -> tuple[Recommendation, ...]:
    recorded = list(recommendations)
    if old_index is None:
        recorded.append(fresh)
    else:
        recorded[old_index] = fresh
    return tuple(recorded)
