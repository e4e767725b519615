"""Rolling-update limits, checked at every state of a timeline against the intended policy.

What counts (kubernetes-semantics.md 1.2, 1.6, 1.9):

- **pods** are the Deployment's *active* pods: selected by its selector, not
  Succeeded/Failed and without a deletionTimestamp (`controller.IsPodActive`).
  A terminating pod stops counting the moment it is marked for deletion, as
  upstream; its process may still run during the grace period, so live
  processes may legitimately exceed replicas + maxSurge for a while. The
  result's details report that figure separately (`max_pods_with_terminating`).
- **available** pods are active, Ready, and Ready for `minReadySeconds`
  (`IsPodAvailable`, counted from the Ready condition's lastTransitionTime).
- Both limits apply **during a rollout**: while the Deployment's active pods
  belong to more than one ReplicaSet, or more than one of its ReplicaSets has
  `spec.replicas > 0`. A pod killed outside a rollout is the recovery
  checker's business, not this one's.
- `replicas` is the Deployment's observed `spec.replicas` (the HPA moves it),
  the limits come from the intended policy (`maxSurge`, `maxUnavailable`,
  resolved with the upstream rounding). When `spec.replicas` goes down, the
  surge limit keeps the old value until the controller has removed the extra
  pods; when it goes up, the availability floor keeps the old value until the
  new pods are available: neither transition is a rollout violation.

Only the pod watch is used for counts: its events are ordered by the API
server, so every state is a real moment of the cluster. ReplicaSets only help
decide whether a rollout is under way.

Worked example (replicas 3, maxSurge 1, maxUnavailable 1): a state with old
pods a, b, c and new pods d, e all active is 5 > 3 + 1 and reported as
"rollout of web: 5 pods at 14:02:03.120 (event 37), more than replicas 3 +
maxSurge 1 = 4".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from resilience.fenceposts import Fenceposts
from resilience.observe.records import PodObservation
from resilience.observe.timeline import Mark, State
from resilience.policy import IntendedPolicy
from resilience.slo.result import CheckResult, Violation, format_clock

SURGE_LIMIT = "rollout.maxSurge"
AVAILABILITY_LIMIT = "rollout.maxUnavailable"


@dataclass(frozen=True)
class RolloutSample:
    """The counts of one state, as the checker saw them."""

    index: int
    wall: float
    replicas: int
    active: int
    available: int
    with_terminating: int
    rolling: bool


def deployment_pods(state: State, policy: IntendedPolicy) -> list[PodObservation]:
    """Every pod of the Deployment (terminating and terminal included), by its selector."""
    return state.pods_matching(state.deployment_selector(policy.deployment, policy.selector))


def is_rolling(state: State, deployment: str, pods: Sequence[PodObservation]) -> bool:
    """More than one ReplicaSet holds active pods or wants some."""
    owners = {p.owner_rs for p in pods if p.active and p.owner_rs is not None}
    wanting = {
        rs.name
        for rs in state.replicasets.values()
        if rs.owner_deployment == deployment and rs.spec_replicas > 0
    }
    return len(owners) > 1 or len(wanting) > 1


def sample(state: State, policy: IntendedPolicy) -> RolloutSample | None:
    deployment = state.deployments.get(policy.deployment)
    if deployment is None:
        return None
    pods = deployment_pods(state, policy)
    active = [p for p in pods if p.active]
    min_ready = policy.rollout.min_ready_seconds
    return RolloutSample(
        index=state.index,
        wall=state.wall,
        replicas=deployment.spec_replicas,
        active=len(active),
        available=sum(1 for p in active if p.available(min_ready, state.wall)),
        with_terminating=sum(1 for p in pods if p.phase not in ("Succeeded", "Failed")),
        rolling=is_rolling(state, policy.deployment, pods),
    )


@dataclass(frozen=True)
class ReplicaWindow:
    """Which `replicas` each limit uses while `spec.replicas` is changing (see module doc)."""

    surge_replicas: int
    floor_replicas: int

    def step(self, point: RolloutSample, fenceposts: Fenceposts) -> ReplicaWindow:
        """Move to `point.replicas` (with `fenceposts` resolved at it) once it is safe.

        Scaled down from 5 to 3 with 5 pods still active: the surge limit stays
        at 5 + maxSurge until the extra pods are gone, the floor follows at once.

        >>> from resilience.fenceposts import resolve_fenceposts
        >>> point = RolloutSample(0, 0.0, replicas=3, active=5, available=5,
        ...                       with_terminating=5, rolling=False)
        >>> ReplicaWindow(5, 5).step(point, resolve_fenceposts(1, 1, 3))
        ReplicaWindow(surge_replicas=5, floor_replicas=3)
        """
        surge = self.surge_replicas
        if point.replicas >= surge or point.active <= fenceposts.max_total_pods:
            surge = point.replicas
        floor = self.floor_replicas
        if point.replicas <= floor or point.available >= fenceposts.min_available:
            floor = point.replicas
        return ReplicaWindow(surge, floor)


def check_rollout_limits(
    states: Iterable[State], policy: IntendedPolicy, *, exclude: Sequence[Mark] = ()
) -> CheckResult:
    """During rollouts: active pods <= replicas + maxSurge, available >= replicas - maxUnavailable.

    `exclude`: marks during which the availability floor is not checked (a
    fault injected on purpose during a rollout lowers availability through no
    fault of the controller). One violation is reported per excursion.
    """
    violations: list[Violation] = []
    window: ReplicaWindow | None = None
    over = under = False
    maxima = {"max_pods": 0, "min_available": -1, "max_pods_with_terminating": 0}
    rollout_states = total = 0
    for state in states:
        point = sample(state, policy)
        if point is None:
            continue
        total += 1
        posts = policy.rollout.fenceposts_at(point.replicas)
        window = (
            ReplicaWindow(point.replicas, point.replicas)
            if window is None
            else window.step(point, posts)
        )
        if not point.rolling:
            over = under = False
            continue
        rollout_states += 1
        _note(maxima, point)
        surge = policy.rollout.fenceposts_at(window.surge_replicas)
        floor = policy.rollout.fenceposts_at(window.floor_replicas)
        now_over = point.active > surge.max_total_pods
        if now_over and not over:
            violations.append(_surge_violation(policy, point, surge))
        over = now_over
        excluded = any(mark.covers(point.wall) for mark in exclude)
        now_under = not excluded and point.available < floor.min_available
        if now_under and not under:
            violations.append(_floor_violation(policy, point, floor))
        under = now_under
    details: Mapping[str, int] = {**maxima, "states": total, "rollout_states": rollout_states}
    return CheckResult("rollout limits", tuple(violations), details)


def rollout_samples(states: Iterable[State], policy: IntendedPolicy) -> list[RolloutSample]:
    """Counts at every state (for charts and for tests that want the raw series)."""
    return [p for s in states if (p := sample(s, policy)) is not None]


def _note(maxima: dict[str, int], point: RolloutSample) -> None:
    maxima["max_pods"] = max(maxima["max_pods"], point.active)
    maxima["max_pods_with_terminating"] = max(
        maxima["max_pods_with_terminating"], point.with_terminating
    )
    if maxima["min_available"] < 0 or point.available < maxima["min_available"]:
        maxima["min_available"] = point.available


def _surge_violation(policy: IntendedPolicy, point: RolloutSample, posts: Fenceposts) -> Violation:
    return Violation(
        limit=SURGE_LIMIT,
        limit_value=posts.max_total_pods,
        observed=point.active,
        wall=point.wall,
        index=point.index,
        message=(
            f"rollout of {policy.deployment}: {point.active} pods at {format_clock(point.wall)} "
            f"(event {point.index}), more than replicas {posts.replicas} + maxSurge "
            f"{posts.max_surge} = {posts.max_total_pods} (terminating pods not counted)"
        ),
    )


def _floor_violation(policy: IntendedPolicy, point: RolloutSample, posts: Fenceposts) -> Violation:
    return Violation(
        limit=AVAILABILITY_LIMIT,
        limit_value=posts.min_available,
        observed=point.available,
        wall=point.wall,
        index=point.index,
        message=(
            f"rollout of {policy.deployment}: {point.available} available pods at "
            f"{format_clock(point.wall)} (event {point.index}), fewer than replicas "
            f"{posts.replicas} - maxUnavailable {posts.max_unavailable} = {posts.min_available} "
            f"(available: Ready for minReadySeconds {policy.rollout.min_ready_seconds})"
        ),
    )
