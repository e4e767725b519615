"""The HPA suite's pure helpers: the live HPA against deploy/base, what the load needed,
and when each step of a scale-up and scale-down happened.

- `hpa_drift`: bounds, metric targets and scale target of the live HPA against
  deploy/base. Behaviour is not drift: overlays may change its windows (the sandbox
  waits 30 s instead of 300 s before scaling down), so `with_live_behavior` gives the
  checks deploy/base's bounds with the behaviour the cluster actually runs.
- `replicas_needed`: what the autoscaler's own formula asks for from the metrics in
  its status, `ceil(current * utilization / target)`, the largest over the targets.
- `ceiling_reached`: the load needs more than the live maxReplicas allows -- the
  message names maxReplicas, the need and the desired replicas.
- `scale_times`: seconds from the load's start to each step, and from its stop back
  to minReplicas; `check_scale_down_waited`: no scale-down before the stabilization
  window has passed since the last time the metrics asked for more.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.observe import ScaleStep, State, hpa_steps
from resilience.observe.autoscaling import hpa_observations
from resilience.observe.records import HpaObservation
from resilience.policy import HpaPolicy, IntendedPolicy, scaling_behavior
from resilience.slo.result import CheckResult, Violation, format_clock
from resilience.suites.drift import ABSENT, Drift

MAX_LIMIT = "hpa.maxReplicas"
STABILIZATION_LIMIT = "hpa.behavior.scaleDown.stabilizationWindowSeconds"


def hpa_drift(live: Mapping[str, Any], policy: IntendedPolicy) -> tuple[Drift, ...]:
    """Every bound, target and the scale target of the live HPA that is not deploy/base's.

    A drift reads "HorizontalPodAutoscaler harmonyflow/session-state-service-hpa:
    spec.maxReplicas is 3 on the cluster, deploy/base says 10".
    """
    intended = policy.hpa
    name = f"HorizontalPodAutoscaler {policy.namespace}/{intended.name}"
    spec = live.get("spec") or {}
    found: list[Drift] = []
    for field, want, have in (
        ("spec.minReplicas", intended.min_replicas, spec.get("minReplicas", 1)),
        ("spec.maxReplicas", intended.max_replicas, spec.get("maxReplicas")),
    ):
        if have != want:
            found.append(Drift(name, field, want, have))
    reference = spec.get("scaleTargetRef") or {}
    if (reference.get("kind"), reference.get("name")) != ("Deployment", policy.deployment):
        shown = f"{reference.get('kind')}/{reference.get('name')}"
        found.append(Drift(name, "spec.scaleTargetRef", f"Deployment/{policy.deployment}", shown))
    live_targets = _utilization_targets(spec)
    for target in intended.targets:
        have = live_targets.get(target.resource)
        if have != target.average_utilization:
            found.append(
                Drift(
                    name,
                    f"spec.metrics[{target.resource}]",
                    f"averageUtilization {target.average_utilization}",
                    ABSENT if have is None else f"averageUtilization {have}",
                )
            )
    return tuple(found)


def with_live_behavior(policy: IntendedPolicy, live: Mapping[str, Any]) -> IntendedPolicy:
    """deploy/base's policy with the live HPA's behaviour (overlays may change its windows)."""
    behavior = (live.get("spec") or {}).get("behavior")
    hpa = dataclasses.replace(
        policy.hpa, behavior=None if behavior is None else scaling_behavior(behavior)
    )
    return dataclasses.replace(policy, hpa=hpa)


def replicas_needed(hpa: HpaObservation, policy: HpaPolicy) -> tuple[int, str] | None:
    """What the metrics in the HPA's status ask for, and why; None without metrics.

    >>> from resilience.observe.records import MetricObservation
    >>> from resilience.policy import MetricTarget
    >>> policy = HpaPolicy("h", 3, 10, (MetricTarget("cpu", 70), MetricTarget("memory", 80)), None)
    >>> observed = HpaObservation("h", current_replicas=3, metrics=(
    ...     MetricObservation("Resource", "cpu", 140), MetricObservation("Resource", "memory", 20)))
    >>> replicas_needed(observed, policy)
    (6, 'cpu at 140% of the 70% target on 3 pods')
    """
    best: tuple[int, str] | None = None
    for metric in hpa.metrics:
        target = policy.target(metric.name)
        if target is None or metric.average_utilization is None or hpa.current_replicas <= 0:
            continue
        ratio = metric.average_utilization / target.average_utilization
        need = math.ceil(hpa.current_replicas * ratio)
        why = (
            f"{metric.name} at {metric.average_utilization}% of the "
            f"{target.average_utilization}% target on {hpa.current_replicas} pods"
        )
        if best is None or need > best[0]:
            best = (need, why)
    return best


def ceiling_reached(hpa: HpaObservation, policy: HpaPolicy) -> Violation | None:
    """The load needs more replicas than the live maxReplicas allows, and the HPA is there.

    A violation naming maxReplicas (live and intended), the need and desiredReplicas;
    None while the HPA can still scale or the metrics ask for no more.
    """
    found = replicas_needed(hpa, policy)
    limited = any(
        c.type == "ScalingLimited" and c.status == "True" and c.reason == "TooManyReplicas"
        for c in hpa.conditions
    )
    if found is None or not limited or hpa.current_replicas < hpa.max_replicas:
        return None
    need, why = found
    if need <= hpa.max_replicas:
        return None
    return Violation(
        MAX_LIMIT,
        hpa.max_replicas,
        need,
        0.0,
        -1,
        f"hpa {hpa.name}: the load needs {need} replicas ({why}), but maxReplicas is "
        f"{hpa.max_replicas} on the cluster (deploy/base says {policy.max_replicas}): "
        f"desiredReplicas stays at {hpa.desired_replicas}, ScalingLimited TooManyReplicas; "
        "the service cannot grow to what the load needs",
    )


@dataclass(frozen=True)
class ScaleTimes:
    """Seconds to each step: from the load's start up, from its stop back down."""

    first_scale_up: float | None  # load start -> first step up
    new_pods_ready: float | None  # load start -> all desired replicas ready
    peak_replicas: int
    first_scale_down: float | None  # load stop -> first step down
    back_to_min: float | None  # load stop -> HPA and Deployment at minReplicas
    steps: tuple[ScaleStep, ...]

    def properties(self) -> list[tuple[str, object]]:
        """For record_property: one name per figure (None when the step never came)."""
        steps = ", ".join(f"{s.from_replicas}->{s.to_replicas}" for s in self.steps)
        return [
            ("hpa_first_scale_up_seconds", self.first_scale_up),
            ("hpa_new_pods_ready_seconds", self.new_pods_ready),
            ("hpa_peak_replicas", self.peak_replicas),
            ("hpa_first_scale_down_seconds", self.first_scale_down),
            ("hpa_back_to_min_seconds", self.back_to_min),
            ("hpa_steps", steps),
        ]


def scale_times(
    states: Sequence[State],
    steps: Sequence[ScaleStep],
    policy: IntendedPolicy,
    load_started: float,
    load_stopped: float,
) -> ScaleTimes:
    """Seconds to each step of the cycle, read from the timeline (walls are Unix times)."""
    up = [s.wall for s in steps if s.up and s.wall >= load_started]
    down = [s.wall for s in steps if not s.up and s.wall >= load_stopped]
    # The Deployment's replicas are what the HPA wrote: a witness when its step is not
    # in the timeline (the first status after the rescale may be superseded).
    spec = [
        (s.wall, d.spec_replicas)
        for s in states
        if s.wall >= load_started and (d := s.deployments.get(policy.deployment)) is not None
    ]
    minimum = policy.hpa.min_replicas
    highest = max((replicas for _, replicas in spec), default=minimum)
    up = up or [wall for wall, replicas in spec if replicas > minimum][:1]
    down = down or [w for w, r in spec if w >= load_stopped and r < highest][:1]
    ready_at = next(
        (s.wall for s in states if up and s.wall >= up[0] and scaled_up(s, policy)), None
    )
    back_at = next(
        (s.wall for s in states if s.wall >= load_stopped and at_minimum(s, policy)), None
    )
    peak = max([s.to_replicas for s in steps] + [highest])
    return ScaleTimes(
        first_scale_up=_since(load_started, up[0] if up else None),
        new_pods_ready=_since(load_started, ready_at),
        peak_replicas=peak,
        first_scale_down=_since(load_stopped, down[0] if down else None),
        back_to_min=_since(load_stopped, back_at),
        steps=tuple(steps),
    )


def scaled_up(state: State, policy: IntendedPolicy) -> bool:
    """The Deployment runs more than minReplicas and every replica is Ready."""
    return _all_desired_ready(state, policy, policy.hpa.min_replicas)


def at_minimum(state: State, policy: IntendedPolicy) -> bool:
    """HPA current = desired = minReplicas, and the Deployment holds just that many pods."""
    hpa = state.hpas.get(policy.hpa.name)
    deployment = state.deployments.get(policy.deployment)
    minimum = policy.hpa.min_replicas
    return (
        hpa is not None
        and deployment is not None
        and hpa.current_replicas == hpa.desired_replicas == minimum
        and deployment.spec_replicas == deployment.replicas == minimum
    )


def check_scale_down_waited(
    states: Sequence[State], policy: IntendedPolicy, window_seconds: int, slack: float = 1.0
) -> CheckResult:
    """No step down before `window_seconds` passed since the metrics last asked for more.

    The controller scales down to the highest recommendation of the last window; a
    recommendation is read here from each HPA status in the timeline (the status of
    one sync), so the check errs towards allowing a step (`slack` for watch delivery).
    """
    name = policy.hpa.name
    observed = hpa_observations(states, name)

    violations = []
    details: dict[str, float | int | str] = {"window_seconds": window_seconds}
    for step in (s for s in hpa_steps(states, name) if not s.up):
        high = [
            state.wall
            for state, hpa in observed
            if state.wall < step.wall
            and (needed := replicas_needed(hpa, policy.hpa)) is not None
            and needed[0] > step.to_replicas
        ]
        if not high:
            continue
        waited = step.wall - high[-1]
        details[f"waited_before_{step.from_replicas}_to_{step.to_replicas}"] = round(waited, 1)
        if waited + slack < window_seconds:
            violations.append(
                Violation(
                    STABILIZATION_LIMIT,
                    window_seconds,
                    round(waited, 1),
                    step.wall,
                    step.index,
                    f"hpa {name}: scaled down {step.from_replicas} -> {step.to_replicas} at "
                    f"{format_clock(step.wall)}, {waited:.1f}s after the metrics last asked for "
                    f"more (at {format_clock(high[-1])}), sooner than the scale-down "
                    f"stabilization window of {window_seconds}s",
                )
            )
    return CheckResult("hpa scale-down stabilization", tuple(violations), details)


def _all_desired_ready(state: State, policy: IntendedPolicy, above: int) -> bool:
    """The HPA has scaled the Deployment above `above` replicas and every one is Ready.

    Read from the Deployment: the HPA's own currentReplicas only catches up at its next
    sync, seconds after the new pods exist.
    """
    deployment = state.deployments.get(policy.deployment)
    if deployment is None or deployment.spec_replicas <= above:
        return False
    return deployment.ready >= deployment.spec_replicas


def _utilization_targets(spec: Mapping[str, Any]) -> dict[str, int]:
    found = {}
    for metric in spec.get("metrics") or []:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        if metric.get("type") == "Resource" and target.get("type") == "Utilization":
            found[str(resource.get("name"))] = int(target.get("averageUtilization", 0))
    return found


def _since(start: float, moment: float | None) -> float | None:
    return None if moment is None else round(moment - start, 1)
