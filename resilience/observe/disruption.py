"""The PodDisruptionBudget, checked against what evictions did.

A PDB only governs the Eviction API (kubernetes-semantics.md 4.3): the budget
is broken when an eviction takes a Ready pod away while that leaves fewer Ready
pods than `desiredHealthy`. Other ways of losing a Ready pod are not the
budget's to prevent, and are reported as dips, not violations:

- a direct DELETE (chaos `terminate_pods`, `kubectl delete pod`): voluntary,
  but bypasses the budget by design;
- a failed probe, a crash, a node gone NotReady, a NoExecute taint eviction
  (`DisruptionTarget` reason `DeletionByTaintManager`): involuntary.

How an eviction is told apart: the API server sets the pod condition
`DisruptionTarget=True` with reason `EvictionByEvictionAPI` before the graceful
delete, and the pod watch sees it. The Ready count before the eviction is the
one of the state just before that event (pod events are ordered by the server).
An eviction admitted while another pod had just gone unready, before the
disruption controller noticed, is reported too: the budget was broken, whoever
raced.

Worked example (minAvailable 2, 3 Ready pods): evicting one leaves 2 -- fine;
evicting a second while the first's replacement is not Ready leaves 1 and is
reported as "pdb session-state-service: eviction of pod web-2 at 14:02:03.120
(event 37) left 1 Ready pods, fewer than minAvailable 2".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from resilience.observe.records import PodObservation
from resilience.observe.timeline import State
from resilience.policy import DisruptionPolicy, IntendedPolicy
from resilience.slo.result import CheckResult, Violation, format_clock

BUDGET_LIMIT = "pdb.minAvailable"
EVICTION_REASON = "EvictionByEvictionAPI"


@dataclass(frozen=True)
class Dip:
    """An interval with fewer Ready pods than the budget wants, and why pods left."""

    start: float
    start_index: int
    end: float | None  # None: still below at the end of the timeline
    end_index: int | None
    min_ready: int
    desired_healthy: int
    causes: tuple[str, ...]  # e.g. "web-1: eviction", "web-2: deleted", "web-3: not ready"

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start


def ready_pods(state: State, policy: IntendedPolicy) -> list[PodObservation]:
    selector = state.deployment_selector(policy.deployment, policy.selector)
    return [p for p in state.pods_matching(selector) if p.active and p.ready]


def expected_pods(state: State, policy: IntendedPolicy) -> int:
    deployment = state.deployments.get(policy.deployment)
    return policy.rollout.replicas if deployment is None else deployment.spec_replicas


def loss_cause(before: PodObservation, after: PodObservation | None) -> str:
    """Why a Ready pod stopped counting, in the words of an incident timeline."""
    if after is None:
        return "deleted"
    if after.disruption_target == EVICTION_REASON:
        return "eviction"
    if after.disruption_target is not None:
        return after.disruption_target
    if after.deleting:
        return "deleted"
    if after.phase in ("Succeeded", "Failed"):
        return f"phase {after.phase}"
    if after.restart_count > before.restart_count:
        return "restarted"
    return "not ready"


def check_disruption_budget(states: Iterable[State], policy: IntendedPolicy) -> CheckResult:
    """No eviction may leave fewer Ready pods than desiredHealthy; dips are reported in details."""
    budget = policy.disruption
    if budget is None:
        return CheckResult("disruption budget", (), {"skipped": "no PodDisruptionBudget"})
    violations: list[Violation] = []
    states = list(states)
    dips = disruption_dips(states, policy)
    previous: State | None = None
    for state in states:
        if previous is not None:
            found = _eviction_violation(previous, state, policy, budget)
            if found is not None:
                violations.append(found)
        previous = state
    details: Mapping[str, float | int | str] = {
        "dips": len(dips),
        "dip_seconds": round(sum(d.seconds or 0.0 for d in dips), 3),
        "min_ready": min((d.min_ready for d in dips), default=-1),
        "dip_causes": "; ".join(sorted({c for d in dips for c in d.causes})),
    }
    return CheckResult("disruption budget", tuple(violations), details)


def disruption_dips(states: Iterable[State], policy: IntendedPolicy) -> list[Dip]:
    """Every interval with fewer Ready pods than desiredHealthy, with the cause of each loss."""
    budget = policy.disruption
    if budget is None:
        return []
    dips: list[Dip] = []
    current: Dip | None = None
    previous: State | None = None
    for state in states:
        ready = ready_pods(state, policy)
        desired = budget.desired_healthy(expected_pods(state, policy))
        causes = _losses(previous, state, policy) if previous is not None else ()
        if len(ready) < desired:
            if current is None:
                current = Dip(state.wall, state.index, None, None, len(ready), desired, causes)
            else:
                current = Dip(
                    current.start,
                    current.start_index,
                    None,
                    None,
                    min(current.min_ready, len(ready)),
                    desired,
                    current.causes + causes,
                )
        elif current is not None:
            dips.append(_closed(current, state))
            current = None
        previous = state
    if current is not None:
        dips.append(current)
    return dips


def _closed(dip: Dip, state: State) -> Dip:
    return Dip(
        dip.start,
        dip.start_index,
        state.wall,
        state.index,
        dip.min_ready,
        dip.desired_healthy,
        dip.causes,
    )


def _losses(previous: State, state: State, policy: IntendedPolicy) -> tuple[str, ...]:
    now = {p.name for p in ready_pods(state, policy)}
    return tuple(
        f"{pod.name}: {loss_cause(pod, state.pods.get(pod.name))}"
        for pod in ready_pods(previous, policy)
        if pod.name not in now
    )


def _eviction_violation(
    previous: State, state: State, policy: IntendedPolicy, budget: DisruptionPolicy
) -> Violation | None:
    event = state.event
    if event is None or not isinstance(event.observation, PodObservation):
        return None
    pod = event.observation
    before = previous.pods.get(pod.name)
    if pod.disruption_target != EVICTION_REASON or before is None:
        return None
    if before.disruption_target == EVICTION_REASON or not (before.active and before.ready):
        return None  # not a new eviction, or an unready pod (those bypass the budget)
    healthy_before = len(ready_pods(previous, policy))
    desired = budget.desired_healthy(expected_pods(previous, policy))
    left = healthy_before - 1
    if left >= desired:
        return None
    return Violation(
        limit=BUDGET_LIMIT,
        limit_value=desired,
        observed=left,
        wall=state.wall,
        index=state.index,
        message=(
            f"pdb {budget.name}: eviction of pod {pod.name} at {format_clock(state.wall)} "
            f"(event {state.index}) left {left} Ready pods, fewer than {_budget_text(budget)} "
            f"= {desired} healthy"
        ),
    )


def _budget_text(budget: DisruptionPolicy) -> str:
    if budget.max_unavailable is not None:
        return f"replicas - maxUnavailable {budget.max_unavailable}"
    return f"minAvailable {budget.min_available}"
