"""Is the cluster steady enough for the next fault? (pure, over the watch state)

A game day must not stack faults: an experiment started while the previous one's
damage is still healing measures the sum of both, and can take the service down
for real. Before each step the game day waits (bounded) until this list is empty
and the service answers through the ingress; if it never gets there the day
stops, and the report says where.

    >>> from resilience.observe.records import DeploymentObservation, NodeObservation
    >>> state = State(deployments={"web": DeploymentObservation("web", spec_replicas=3,
    ...     replicas=3, updated=3, ready=2, available=2)},
    ...     nodes={"n1": NodeObservation("n1", ready="True", unschedulable=True)})
    >>> steady_problems(state, "web")
    ['deployment web: 2/3 ready, 2 available, 3 updated', 'node n1 cordoned']
"""

from __future__ import annotations

from resilience.observe.timeline import State


def steady_problems(state: State, deployment: str) -> list[str]:
    """Why the cluster is not steady yet; empty when it is."""
    problems: list[str] = []
    observed = state.deployments.get(deployment)
    if observed is None:
        problems.append(f"deployment {deployment}: not seen")
    elif not (
        observed.ready == observed.spec_replicas
        and observed.available == observed.spec_replicas
        and observed.updated == observed.spec_replicas
        and observed.replicas == observed.spec_replicas
        and observed.observed_generation >= observed.generation
    ):
        problems.append(
            f"deployment {deployment}: {observed.ready}/{observed.spec_replicas} ready, "
            f"{observed.available} available, {observed.updated} updated"
        )
    for name, node in sorted(state.nodes.items()):
        if node.ready != "True":
            problems.append(f"node {name} not Ready ({node.ready})")
        if node.unschedulable:
            problems.append(f"node {name} cordoned")
    pending = sorted(n for n, p in state.pods.items() if p.active and p.phase == "Pending")
    if pending:
        problems.append(f"pods Pending: {', '.join(pending)}")
    return problems
