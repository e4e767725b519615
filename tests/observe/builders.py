"""Tiny builders for the observe tests: policies from small manifest dicts, worlds by event."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from resilience.manifests import ManifestObject
from resilience.observe.records import (
    Condition,
    ContainerObservation,
    DeploymentObservation,
    EventType,
    HpaObservation,
    NodeObservation,
    Observation,
    PodObservation,
    RsObservation,
)
from resilience.observe.timeline import State, TimelineEvent, fold
from resilience.policy import (
    DisruptionPolicy,
    IntendedPolicy,
    ZonePolicy,
    hpa_policy,
    load_policy,
    rollout_policy,
)
from tests.builders import REPO_ROOT

T0 = 1_700_000_000.0
ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")


@functools.cache
def base_policy() -> IntendedPolicy:
    """deploy/base, rendered once per test session (rendering shells out to kubectl)."""
    return load_policy(REPO_ROOT / "deploy" / "base")


def make_policy(
    replicas: int = 3,
    max_surge: int | str = 1,
    max_unavailable: int | str = 1,
    min_ready_seconds: int = 0,
    min_available: int | str | None = 2,
    hpa: dict[str, Any] | None = None,
    max_skew: int = 1,
) -> IntendedPolicy:
    """The base policy with the rollout, PDB, HPA and zones read from small manifest dicts."""
    spec = {
        "replicas": replicas,
        "minReadySeconds": min_ready_seconds,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
        },
    }
    hpa_body = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-hpa"},
        "spec": {"minReplicas": replicas, "maxReplicas": 10, **(hpa or {})},
    }
    return replace(
        base_policy(),
        namespace="t",
        deployment="web",
        selector={"app": "web"},
        rollout=rollout_policy(spec),
        disruption=None
        if min_available is None
        else DisruptionPolicy("web", min_available=min_available, max_unavailable=None),
        hpa=hpa_policy(_manifest(hpa_body)),
        zones=ZonePolicy("topology.kubernetes.io/zone", max_skew, "DoNotSchedule", ZONES),
    )


def _manifest(body: dict[str, Any]) -> ManifestObject:
    return ManifestObject(body=body, source="test")


class World:
    """A timeline written by hand: each call records one event, `step` seconds after the last."""

    def __init__(self, policy: IntendedPolicy, step: float = 1.0) -> None:
        self.policy = policy
        self.step = step
        self.wall = T0
        self.events: list[TimelineEvent] = []
        self.pods: dict[str, PodObservation] = {}
        self.deployment_replicas = policy.rollout.replicas
        self.synced_index = 0

    # ---- time ----

    def at(self, wall: float) -> World:
        self.wall = wall - self.step
        return self

    def after(self, seconds: float) -> World:
        self.wall += seconds - self.step
        return self

    # ---- objects ----

    def record(self, observation: Observation, type_: EventType = EventType.MODIFIED) -> World:
        self.wall += self.step
        self.events.append(
            TimelineEvent(
                len(self.events), self.wall, self.wall - T0, type_, observation.KIND, observation
            )
        )
        return self

    def deployment(self, replicas: int | None = None, **fields: Any) -> World:
        if replicas is not None:
            self.deployment_replicas = replicas
        return self.record(
            DeploymentObservation(
                name=self.policy.deployment,
                spec_replicas=self.deployment_replicas,
                selector=dict(self.policy.selector),
                **fields,
            )
        )

    def replicaset(self, name: str, spec_replicas: int) -> World:
        return self.record(
            RsObservation(
                name=name, owner_deployment=self.policy.deployment, spec_replicas=spec_replicas
            )
        )

    def node(self, name: str, zone: str, ready: str = "True") -> World:
        return self.record(NodeObservation(name=name, zone=zone, ready=ready))

    def pod(self, name: str, rs: str = "old", **fields: Any) -> World:
        """Add or change a pod; `restarts=N` sets the one container's restart count."""
        previous = self.pods.get(name)
        restarts = fields.pop("restarts", None)
        if previous is None:
            pod = PodObservation(
                name=name,
                phase="Running",
                owner_rs=f"web-{rs}",
                labels={**self.policy.selector, "pod-template-hash": rs},
                containers=(ContainerObservation("web", False, 0, "running"),),
            )
        else:
            pod = previous
        if restarts is not None:
            container = replace(pod.containers[0], restart_count=restarts, **fields.pop("last", {}))
            pod = replace(pod, containers=(container,))
        if fields.get("ready") and "ready_since" not in fields:
            fields["ready_since"] = self.wall + self.step
        pod = replace(pod, **fields)
        self.pods[name] = pod
        return self.record(pod, EventType.ADDED if previous is None else EventType.MODIFIED)

    def delete(self, name: str) -> World:
        pod = self.pods.pop(name)
        return self.record(pod, EventType.DELETED)

    def hpa(self, current: int, desired: int, scaled: bool = True, active: bool = True) -> World:
        last_scale = self.wall + self.step if scaled else self._last_scale()
        return self.record(
            HpaObservation(
                name=self.policy.hpa.name,
                target=self.policy.deployment,
                min_replicas=self.policy.hpa.min_replicas,
                max_replicas=self.policy.hpa.max_replicas,
                current_replicas=current,
                desired_replicas=desired,
                last_scale_time=last_scale,
                conditions=(Condition("ScalingActive", "True" if active else "False"),),
            )
        )

    def _last_scale(self) -> float | None:
        for event in reversed(self.events):
            if isinstance(event.observation, HpaObservation):
                return event.observation.last_scale_time
        return None

    # ---- reading ----

    def synced(self) -> World:
        """Like Timeline.set_synced: checkers start from the state after the last event so far."""
        self.synced_index = len(self.events) - 1
        return self

    def states(self) -> list[State]:
        """States from the sync point on, as `Timeline.states()` gives them."""
        return fold(self.events)[max(self.synced_index, 0) :]


def steady(policy: IntendedPolicy, replicas: int | None = None, zones: bool = False) -> World:
    """A Deployment with `replicas` Ready pods of RS "old", spread one node per zone."""
    world = World(policy)
    count = policy.rollout.replicas if replicas is None else replicas
    if zones:
        for zone in ZONES:
            world.node(f"node-{zone}", zone)
    world.deployment(count)
    world.replicaset("web-old", count)
    for i in range(count):
        node = {"node": f"node-{ZONES[i % len(ZONES)]}"} if zones else {}
        world.pod(f"old-{i}", ready=True, **node)
    return world.synced()


def textbook_rollout(world: World) -> World:
    """Roll RS "old" to RS "new" the way the deployment controller would, within the fenceposts."""
    posts = world.policy.rollout.fenceposts
    old = sorted(n for n in world.pods if n.startswith("old-"))
    new_pending: list[str] = []
    new_ready: list[str] = []
    created = 0
    world.deployment(generation=2)
    while old or len(new_ready) < posts.replicas:
        total = len(old) + len(new_pending) + len(new_ready)
        room = min(posts.max_total_pods - total, posts.replicas - len(new_pending) - len(new_ready))
        world.replicaset("web-new", len(new_pending) + len(new_ready) + max(room, 0))
        for _ in range(max(room, 0)):
            name = f"new-{created}"
            created += 1
            world.pod(name, rs="new")
            new_pending.append(name)
        for name in new_pending:
            world.pod(name, ready=True)
        new_ready += new_pending
        new_pending = []
        available = len(old) + len(new_ready)
        remove = min(len(old), available - posts.min_available)
        world.replicaset("web-old", len(old) - max(remove, 0))
        for name in old[: max(remove, 0)]:
            world.pod(name, deleting=True, ready=False)
            world.delete(name)
        old = old[max(remove, 0) :]
    return world
