"""One sync of an HPA, upstream's `horizontal.go` reconcileAutoscaler: `decide` (up to the
scale write), `finish` (the status, events and history after it), `scale_unavailable`,
setCondition. Reference: kubernetes-semantics.md section 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sandbox.kube.controllers.hpa.compute import compute_replicas_for_metrics, tolerances_for
from sandbox.kube.controllers.hpa.model import (
    ABLE_TO_SCALE,
    FALSE,
    SCALING_ACTIVE,
    TRUE,
    AutoscalerSpec,
    AutoscalerStatus,
    Behavior,
    Condition,
    Decision,
    History,
    HpaEvent,
    HpaParams,
    MetricsResult,
    Normalized,
    Outcome,
    PodSnapshot,
    PodUsage,
    Recommendation,
    ScaleView,
)
from sandbox.kube.controllers.hpa.normalize import (
    normalize_desired_replicas,
    normalize_desired_replicas_with_behaviors,
    store_scale_event,
    with_default_down_window,
)

_GOT_SCALE = Condition(
    ABLE_TO_SCALE,
    TRUE,
    "SucceededGetScale",
    "the HPA controller was able to get the target's current scale",
)


def decide(
    spec: AutoscalerSpec,
    scale: ScaleView,
    pods: Sequence[PodSnapshot],
    usages: Mapping[str, PodUsage],
    history: History,
    previous: AutoscalerStatus,
    params: HpaParams,
    now: datetime,
) -> Decision:
    """One sync of reconcileAutoscaler up to the scale write.

    current = the target's spec.replicas. 0 disables scaling (ScalingActive
    False, ScalingDisabled); above max or below min it is clamped without
    reading metrics; otherwise the metrics' max proposal is normalized (legacy
    path when `behavior` is None, behavior path otherwise).

    Example: min 1, max 10, cpu target 70 %, 3 ready pods using 700m of 500m:
    utilization 140, ratio 2, proposal 6; legacy cap max(6, 4) = 6 -> rescale
    to 6, reason "cpu resource utilization (percentage of request) above
    target", conditions AbleToScale True ReadyForNewScale, ScalingActive True
    ValidMetricFound, ScalingLimited False DesiredWithinRange.
    """
    current = scale.spec_replicas
    history = record_initial_recommendation(history, current, now)
    unread = replicas_without_metrics(spec, current, history)
    if unread is not None:
        return unread
    if not scale.has_selector:
        return selector_required(current, previous, history)
    tolerances = tolerances_for(spec.behavior, params.tolerance)
    result = compute_replicas_for_metrics(
        spec.metrics, current, pods, usages, tolerances, now, params.cpu
    )
    conditions = (_GOT_SCALE,) if result.condition is None else (_GOT_SCALE, result.condition)
    if result.replicas == -1:
        return metrics_failed(current, previous, result, conditions, history)
    desired = max(result.replicas, 0)
    normalized = normalize(spec, params, current, desired, history, now)
    rescale = normalized.desired_replicas != current
    return Decision(
        current,
        normalized.desired_replicas if rescale else current,
        rescale,
        rescale_reason(result.metric_name, current, desired),
        result.statuses,
        (*conditions, normalized.able_to_scale, normalized.scaling_limited),
        result.events,
        normalized.recommendations,
    )


def record_initial_recommendation(history: History, current: int, now: datetime) -> History:
    """`recordInitialRecommendation`: an HPA seen for the first time recommends its
    target's current size, so that a downscale waits out the stabilization window."""
    if history.recommendations:
        return history
    return replace(history, recommendations=(Recommendation(current, now),))


def replicas_without_metrics(
    spec: AutoscalerSpec, current: int, history: History
) -> Decision | None:
    """reconcileAutoscaler's branches that read no metrics: a target scaled to 0 (scaling
    disabled), or one above maxReplicas or below minReplicas (clamped); None otherwise."""
    recommendations = history.recommendations
    if current == 0:
        disabled = Condition(
            SCALING_ACTIVE,
            FALSE,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        )
        return Decision(current, 0, False, "", None, (_GOT_SCALE, disabled), (), recommendations)
    if current > spec.max_replicas:
        reason = "Current number of replicas above Spec.MaxReplicas"
        desired = spec.max_replicas
    elif current < spec.min_replicas:
        reason = "Current number of replicas below Spec.MinReplicas"
        desired = spec.min_replicas
    else:
        return None
    return Decision(current, desired, True, reason, None, (_GOT_SCALE,), (), recommendations)


def selector_required(current: int, previous: AutoscalerStatus, history: History) -> Decision:
    """computeReplicasForMetrics on a scale without a selector: InvalidSelector, the
    SelectorRequired and FailedComputeMetricsReplicas warnings, the desired count kept."""
    message = "selector is required"
    invalid = Condition(
        SCALING_ACTIVE,
        FALSE,
        "InvalidSelector",
        "the HPA target's scale is missing a selector",
    )
    events = (
        HpaEvent("Warning", "SelectorRequired", message),
        HpaEvent("Warning", "FailedComputeMetricsReplicas", message),
    )
    return Decision(
        current,
        previous.desired_replicas,
        False,
        "",
        None,
        (_GOT_SCALE, invalid),
        events,
        history.recommendations,
    )


def metrics_failed(
    current: int,
    previous: AutoscalerStatus,
    result: MetricsResult,
    conditions: tuple[Condition, ...],
    history: History,
) -> Decision:
    """No metric gave a proposal: a FailedComputeMetricsReplicas warning after the
    metrics' own, the previous desired count kept and no rescale."""
    events = (
        *result.events,
        HpaEvent("Warning", "FailedComputeMetricsReplicas", result.error or ""),
    )
    return Decision(
        current,
        previous.desired_replicas,
        False,
        "",
        result.statuses,
        conditions,
        events,
        history.recommendations,
    )


def rescale_reason(metric_name: str, current: int, desired: int) -> str:
    """The reason a SuccessfulRescale event gives, from the metrics' proposal.

    >>> rescale_reason("cpu resource utilization (percentage of request)", 3, 6)
    'cpu resource utilization (percentage of request) above target'
    >>> rescale_reason("cpu", 6, 3), rescale_reason("cpu", 3, 3)
    ('All metrics below target', '')
    """
    if desired > current:
        return f"{metric_name} above target"
    if desired < current:
        return "All metrics below target"
    return ""


def normalize(
    spec: AutoscalerSpec,
    params: HpaParams,
    current: int,
    desired: int,
    history: History,
    now: datetime,
) -> Normalized:
    """normalizeDesiredReplicas without a `behavior`, normalizeDesiredReplicasWithBehaviors
    with one (its scale-down window defaulting to --horizontal-pod-autoscaler-downscale-
    stabilization)."""
    if spec.behavior is None:
        return normalize_desired_replicas(
            current,
            desired,
            spec.min_replicas,
            spec.max_replicas,
            history.recommendations,
            params.downscale_stabilization_seconds,
            now,
        )
    behavior = with_default_down_window(spec.behavior, params.downscale_stabilization_seconds)
    return normalize_desired_replicas_with_behaviors(
        current, desired, spec.min_replicas, spec.max_replicas, behavior, history, now
    )


def scale_unavailable(
    previous: AutoscalerStatus, error: str, now: datetime
) -> tuple[AutoscalerStatus, HpaEvent]:
    """Reading the target's scale failed: AbleToScale False FailedGetScale, the
    rest of the status as it was, and a FailedGetScale Warning.

    Example: error 'deployments.apps "web" not found' -> condition message "the
    HPA controller was unable to get the target's current scale:
    deployments.apps "web" not found".
    """
    condition = Condition(
        ABLE_TO_SCALE,
        FALSE,
        "FailedGetScale",
        f"the HPA controller was unable to get the target's current scale: {error}",
    )
    status = replace(previous, conditions=set_condition(previous.conditions, condition, now))
    return status, HpaEvent("Warning", "FailedGetScale", error)


def finish(
    decision: Decision,
    previous: AutoscalerStatus,
    behavior: Behavior | None,
    history: History,
    now: datetime,
    update_error: str | None = None,
) -> Outcome:
    """The status to write after the scale write (or its absence), the events to
    record, and the history to keep.

    A successful rescale adds AbleToScale True SucceededRescale, a
    SuccessfulRescale event "New size: N; reason: R", lastScaleTime = now and
    (with a behavior) a scale event. A failed one adds AbleToScale False
    FailedUpdateScale, a FailedRescale event, and keeps the previous desired
    count. currentMetrics is replaced by this sync's statuses.

    Example: decision 3 -> 6 that succeeded: status current 3, desired 6,
    lastScaleTime now, event SuccessfulRescale "New size: 6; reason: cpu
    resource utilization (percentage of request) above target".
    """
    conditions = list(decision.conditions)
    events = list(decision.events)
    desired = decision.desired_replicas
    last_scale_time = previous.last_scale_time
    history = replace(history, recommendations=decision.recommendations)
    if decision.rescale and update_error is not None:
        events.append(
            HpaEvent(
                "Warning",
                "FailedRescale",
                f"New size: {desired}; reason: {decision.reason}; error: {update_error}",
            )
        )
        conditions.append(
            Condition(
                ABLE_TO_SCALE,
                FALSE,
                "FailedUpdateScale",
                f"the HPA controller was unable to update the target scale: {update_error}",
            )
        )
        desired = previous.desired_replicas
    elif decision.rescale:
        conditions.append(
            Condition(
                ABLE_TO_SCALE,
                TRUE,
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
        )
        events.append(
            HpaEvent(
                "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {decision.reason}"
            )
        )
        history = store_scale_event(behavior, history, decision.current_replicas, desired, now)
        last_scale_time = now
    merged = previous.conditions
    for condition in conditions:
        merged = set_condition(merged, condition, now)
    status = AutoscalerStatus(
        current_replicas=decision.current_replicas,
        desired_replicas=desired,
        last_scale_time=last_scale_time,
        current_metrics=decision.metrics,
        conditions=merged,
    )
    return Outcome(status, tuple(events), history)


def set_condition(
    conditions: Sequence[Condition], update: Condition, now: datetime
) -> tuple[Condition, ...]:
    """setConditionInList: replace the condition of the same type (appending a
    new one), stamping lastTransitionTime only when the status changes.

    Example: AbleToScale True since 10:00 updated to True/SucceededRescale at
    10:05 keeps 10:00; updated to False at 10:05 gets 10:05.
    """
    result = list(conditions)
    for index, existing in enumerate(result):
        if existing.type == update.type:
            changed = existing.status != update.status
            stamp = now if changed else existing.last_transition_time
            result[index] = replace(update, last_transition_time=stamp)
            return tuple(result)
    result.append(replace(update, last_transition_time=now))
    return tuple(result)
