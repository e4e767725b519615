"""What a game day asks of the cluster: its steps' experiments and its watches.

The union over the plan's runnable steps (each experiment with the step's variables and
the safeguards `chaos run` adds) and over the watches the day starts for the report
(`observe.monitors.watched_kinds`). Each step's own `resilience chaos run` checks its
experiment again; checking the whole day first refuses before the load, the watches
and the first fault, instead of at step 6.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from resilience.chaos.runner import DEFAULT_DEAD_MAN_SECONDS, with_safeguards
from resilience.gameday.plan import Plan, experiment_document
from resilience.observe.monitors import MonitorScope, watched_kinds
from resilience.policy import IntendedPolicy
from resilience.preflight import review
from resilience.preflight.needs import (
    Needs,
    explain,
    on_cluster_load_needs,
    union,
    watch_needs,
)
from resilience.targets.gameday import GamedayTarget


def check_permissions(
    plan: Plan,
    policy: IntendedPolicy,
    target: GamedayTarget,
    log: Callable[[str], None],
    load_namespace: str | None = None,
) -> None:
    """Refuse the day (exit 2, one line) when the target's credentials lack a permission
    any step or watch needs, or the load's pods in `load_namespace` (`--load-on-cluster`)
    do; on an API server with no authorization API, warn and go on."""
    scope = MonitorScope.for_policy(policy, target.target.namespace)
    needs = plan_needs(plan, scope, {**os.environ, **target.exports})
    if load_namespace is not None:
        needs = needs | on_cluster_load_needs(load_namespace)
    api = target.api_client()
    try:
        review.check(api, needs, lambda line: log(f"gameday: preflight: {line}"))
    finally:
        api.close()  # type: ignore[no-untyped-call]


def plan_needs(plan: Plan, scope: MonitorScope, env: Mapping[str, str] | None = None) -> Needs:
    """The day's needs: every runnable step's experiment, and the watches of `scope`."""
    parts = [watch_needs(watched_kinds(scope), scope.namespace)]
    for step in plan.steps:
        if step.path is None:
            continue  # optional and missing: skipped, asks nothing
        experiment = with_safeguards(
            experiment_document(step.path), DEFAULT_DEAD_MAN_SECONDS, step.stop_conditions
        )
        parts.append(explain(experiment, step.variables, env, source=f"step {step.name}"))
    return union(parts)
