"""Drift: where the live Deployment and PodDisruptionBudget differ from deploy/base.

The suites judge what they observe against the intended policy; that is only
meaningful when the cluster carries the intended configuration. These pure
functions read the live objects (API JSON, camelCase, as the Kubernetes client's
`sanitize_for_serialization` gives them) with the same readers the policy uses,
so defaults are applied the same way on both sides, and name every field that
differs with both values.

What is compared: the rollout strategy and its timing fields, every probe
(path, port, scheme and timings), the termination grace period, the zone spread
constraint, and the PodDisruptionBudget. What is not: `spec.replicas` (the HPA
moves it) and the image (releases move it).

A drift reads: "Deployment harmonyflow/session-state-service:
spec.strategy.rollingUpdate.maxUnavailable is 3 on the cluster, deploy/base says 1".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from resilience.errors import PolicyError
from resilience.policy import (
    DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
    IntendedPolicy,
    ProbeKind,
    ProbePolicy,
    RolloutPolicy,
    probe_policies,
    rollout_policy,
)

ROLLOUT_FIELDS: Mapping[str, str] = {
    "max_surge": "spec.strategy.rollingUpdate.maxSurge",
    "max_unavailable": "spec.strategy.rollingUpdate.maxUnavailable",
    "min_ready_seconds": "spec.minReadySeconds",
    "progress_deadline_seconds": "spec.progressDeadlineSeconds",
    "revision_history_limit": "spec.revisionHistoryLimit",
}
PROBE_FIELDS: Mapping[str, str] = {
    "path": "httpGet.path",
    "port": "httpGet.port",
    "scheme": "httpGet.scheme",
    "initial_delay_seconds": "initialDelaySeconds",
    "period_seconds": "periodSeconds",
    "timeout_seconds": "timeoutSeconds",
    "success_threshold": "successThreshold",
    "failure_threshold": "failureThreshold",
}
ABSENT = "absent"


@dataclass(frozen=True)
class Drift:
    """One field whose live value is not the intended one."""

    object: str  # Deployment harmonyflow/session-state-service
    field: str  # spec.strategy.rollingUpdate.maxUnavailable
    intended: Any
    live: Any

    @property
    def message(self) -> str:
        return (
            f"{self.object}: {self.field} is {self.live} on the cluster, "
            f"deploy/base says {self.intended}"
        )

    def __str__(self) -> str:
        return self.message


def deployment_drift(live: Mapping[str, Any], policy: IntendedPolicy) -> tuple[Drift, ...]:
    """Every intended setting of the Deployment that the live object does not carry."""
    name = f"Deployment {policy.namespace}/{policy.deployment}"
    spec = live.get("spec") or {}
    found: list[Drift] = []
    try:
        live_rollout = rollout_policy(spec)
    except PolicyError as error:
        return (Drift(name, "spec.strategy.type", "RollingUpdate", str(error)),)
    found += _rollout_drift(name, live_rollout, policy.rollout)
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    container = next(
        (c for c in pod_spec.get("containers") or [] if c.get("name") == policy.deployment), None
    )
    if container is None:
        return (*found, Drift(name, "spec.template.spec.containers", policy.deployment, ABSENT))
    found += _probe_drift(name, container, policy)
    grace = int(
        pod_spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
    )
    if grace != policy.termination_grace_period_seconds:
        found.append(
            Drift(
                name,
                "spec.template.spec.terminationGracePeriodSeconds",
                policy.termination_grace_period_seconds,
                grace,
            )
        )
    found += _spread_drift(name, pod_spec, policy)
    return tuple(found)


def pdb_drift(live_pdbs: Sequence[Mapping[str, Any]], policy: IntendedPolicy) -> tuple[Drift, ...]:
    """The intended PodDisruptionBudget exists with the intended minAvailable/maxUnavailable."""
    intended = policy.disruption
    if intended is None:
        return ()
    name = f"PodDisruptionBudget {policy.namespace}/{intended.name}"
    pdb = next(
        (p for p in live_pdbs if (p.get("metadata") or {}).get("name") == intended.name), None
    )
    if pdb is None:
        wanted = (
            f"minAvailable {intended.min_available}"
            if intended.min_available is not None
            else f"maxUnavailable {intended.max_unavailable}"
        )
        return (Drift(name, "(the object)", wanted, ABSENT),)
    spec = pdb.get("spec") or {}
    found = []
    for key, value in (
        ("minAvailable", intended.min_available),
        ("maxUnavailable", intended.max_unavailable),
    ):
        if spec.get(key) != value:
            found.append(Drift(name, f"spec.{key}", _shown(value), _shown(spec.get(key))))
    return tuple(found)


def _rollout_drift(name: str, live: RolloutPolicy, intended: RolloutPolicy) -> list[Drift]:
    return [
        Drift(name, path, getattr(intended, attribute), getattr(live, attribute))
        for attribute, path in ROLLOUT_FIELDS.items()
        if getattr(intended, attribute) != getattr(live, attribute)
    ]


def _probe_drift(name: str, container: Mapping[str, Any], policy: IntendedPolicy) -> list[Drift]:
    try:
        live = probe_policies(container)
    except PolicyError as error:
        return [Drift(name, "probes", "httpGet probes", str(error))]
    found = []
    for kind in ProbeKind:
        wanted, seen = policy.probes.get(kind), live.get(kind)
        where = f"spec.template.spec.containers[{policy.deployment}].{kind.value}Probe"
        if wanted is None and seen is None:
            continue
        if wanted is None or seen is None:
            found.append(Drift(name, where, _probe_text(wanted), _probe_text(seen)))
            continue
        for attribute, path in PROBE_FIELDS.items():
            if getattr(wanted, attribute) != getattr(seen, attribute):
                found.append(
                    Drift(
                        name,
                        f"{where}.{path}",
                        getattr(wanted, attribute),
                        getattr(seen, attribute),
                    )
                )
    return found


def _spread_drift(name: str, pod_spec: Mapping[str, Any], policy: IntendedPolicy) -> list[Drift]:
    where = "spec.template.spec.topologySpreadConstraints"
    constraint = next(
        (
            c
            for c in pod_spec.get("topologySpreadConstraints") or []
            if c.get("topologyKey") == policy.zones.topology_key
        ),
        None,
    )
    if constraint is None:
        return [Drift(name, f"{where}[{policy.zones.topology_key}]", "present", ABSENT)]
    found = []
    if int(constraint.get("maxSkew", 0)) != policy.zones.max_skew:
        found.append(
            Drift(name, f"{where}.maxSkew", policy.zones.max_skew, constraint.get("maxSkew"))
        )
    unsatisfiable = constraint.get("whenUnsatisfiable", "DoNotSchedule")
    if unsatisfiable != policy.zones.when_unsatisfiable:
        found.append(
            Drift(
                name, f"{where}.whenUnsatisfiable", policy.zones.when_unsatisfiable, unsatisfiable
            )
        )
    return found


def _probe_text(probe: ProbePolicy | None) -> str:
    if probe is None:
        return ABSENT
    shown = ", ".join(
        f"{f.name}={getattr(probe, f.name)}" for f in fields(probe) if f.name != "kind"
    )
    return f"{probe.kind.value} probe ({shown})"


def _shown(value: Any) -> Any:
    return "unset" if value is None else value
