"""Readiness follows the dependencies: every pod leaves the endpoints while one is away.

The seed's readiness probe checks the service's dependencies, so a failover or a
stop of the session database, or a partition from Redis (experiments/
dependency-partition.yaml), must take every pod out of the Service's endpoints
within readiness's detection window, and the ingress then answers at once instead
of handing requests to pods that cannot serve them. Error ratios do not show a
build whose readiness ignores the database: its requests fail during the outage
either way. The endpoints do, so this probe judges the mechanism itself.

The window is the intended policy's (deploy/base), never a number typed into an
experiment: `periodSeconds x failureThreshold + timeoutSeconds` from the moment
the dependency went away (that already covers where in its period the probe was),
plus one more period for the fault's onset (the probe starts when the fault's call
returns; AWS, and the sandbox, silence the database shortly after, and the kubelet's
probe ticks drift under load), plus one poll of ours. Measured on the sandbox's
failover: every pod out 15.1 s after the call, against a 21.5 s window.

    >>> from resilience.policy import ProbeKind, ProbePolicy
    >>> probe = ProbePolicy(ProbeKind.READINESS, "/health/ready", 8080, "HTTP", 0, 5, 1, 1, 3)
    >>> print(emptying_failure(EndpointsSeen(21.6, 3, 3), probe))  # doctest: +NORMALIZE_WHITESPACE
    readiness.worst_detection: 3 of 3 pods still ready endpoints 21.6 s after the dependency
    went away; deploy/base lets readiness take 16 s (periodSeconds 5 x failureThreshold 3 +
    timeoutSeconds 1) + 5.5 s for the fault's onset and our poll
    >>> emptying_failure(EndpointsSeen(9.0, 0, 3), probe) is None
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from resilience.chaos.probes import ready_endpoints
from resilience.chaos.waiting import POLL_SECONDS
from resilience.paths import project_file
from resilience.policy import ProbeKind, ProbePolicy, load_policy

__all__ = ["pods_leave_endpoints_seconds"]

LIMIT = "readiness.worst_detection"


@dataclass(frozen=True)
class EndpointsSeen:
    """Ready endpoints counted `seconds` after the dependency went away."""

    seconds: float
    ready: int
    before: int  # ready endpoints when the wait began


def slack_seconds(probe: ProbePolicy) -> float:
    """The fault's onset (one readiness period) and one poll of ours."""
    return probe.period_seconds + POLL_SECONDS


def emptying_window(probe: ProbePolicy) -> float:
    return probe.worst_detection_seconds + slack_seconds(probe)


def emptying_failure(seen: EndpointsSeen, probe: ProbePolicy) -> str | None:
    """Why the endpoints did not empty in time (None: they did), naming the limit and
    what was observed."""
    if seen.ready == 0:
        return None
    return (
        f"{LIMIT}: {seen.ready} of {seen.before} pods still ready endpoints "
        f"{seen.seconds:.1f} s after the dependency went away; deploy/base lets readiness "
        f"take {probe.worst_detection_seconds} s (periodSeconds {probe.period_seconds} x "
        f"failureThreshold {probe.failure_threshold} + timeoutSeconds "
        f"{probe.timeout_seconds}) + {slack_seconds(probe):.1f} s for the fault's onset and "
        "our poll"
    )


def intended_readiness(kustomization: str) -> ProbePolicy:
    policy = load_policy(project_file(kustomization))
    probe = policy.probes.get(ProbeKind.READINESS)
    if probe is None:
        raise ActivityFailed(f"{kustomization} declares no readinessProbe to judge against")
    return probe


def pods_leave_endpoints_seconds(
    service: str,
    namespace: str,
    kustomization: str = "deploy/base",
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds until the Service has no ready endpoint left; call it right after the
    action that takes the database away.

    Fails when a pod is still a ready endpoint past the intended readiness probe's
    detection window (`periodSeconds x failureThreshold + timeoutSeconds` of
    `kustomization`, deploy/base by default): such a build keeps receiving requests
    it cannot serve while its dependency is gone.
    """
    probe = intended_readiness(kustomization)
    window = emptying_window(probe)
    began = time.monotonic()
    before = ready_endpoints(service, namespace, secrets=secrets)
    seen = EndpointsSeen(0.0, before, before)
    while seen.ready > 0 and seen.seconds <= window:
        time.sleep(POLL_SECONDS)
        seen = EndpointsSeen(
            time.monotonic() - began, ready_endpoints(service, namespace, secrets=secrets), before
        )
    failure = emptying_failure(seen, probe)
    if failure is not None:
        raise ActivityFailed(failure)
    return round(seen.seconds, 3)
