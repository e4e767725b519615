"""Pod kills, one zone at a time, with the recovery measured rather than paused for.

chaostoolkit-kubernetes' `terminate_pods` picks pods with the global `random` and
cannot say "one per zone, each after the last one's replacement is Ready". These
actions pick with a seeded `random.Random` (a repeated game day kills the same
pods), delete through the API, and wait until the Deployment is whole again,
returning how long that took.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

from chaoslib.exceptions import ActivityFailed

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.kube import REQUEST_TIMEOUT, ZONE_LABEL, apps, core, items
from resilience.chaos.probes import wait_deployment_whole

__all__ = ["kill_one_pod", "kill_one_pod_per_zone"]


def choose_per_zone(
    pods_by_zone: dict[str, list[str]], rng: random.Random
) -> list[tuple[str, str]]:
    """One pod per zone, zones in name order, the pod chosen by `rng`.

    >>> choose_per_zone({"b": ["p2", "p3"], "a": ["p1"]}, random.Random(1))
    [('a', 'p1'), ('b', 'p2')]
    """
    return [(zone, rng.choice(sorted(pods))) for zone, pods in sorted(pods_by_zone.items()) if pods]


def _ready_pods_by_zone(namespace: str, label_selector: str, secrets: Any) -> dict[str, list[str]]:
    api = core(secrets)
    zones = {
        n.metadata.name: (n.metadata.labels or {}).get(ZONE_LABEL, "")
        for n in items(api.list_node(_request_timeout=REQUEST_TIMEOUT))
    }
    by_zone: dict[str, list[str]] = defaultdict(list)
    pods = api.list_namespaced_pod(
        namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
    )
    for pod in items(pods):
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if ready and pod.metadata.deletion_timestamp is None and pod.spec.node_name:
            by_zone[zones.get(pod.spec.node_name, "")].append(pod.metadata.name)
    return dict(by_zone)


def kill_one_pod(
    namespace: str,
    label_selector: str,
    deployment: str,
    recovery_timeout: float = 180.0,
    seed: int = 0,
    grace_period_seconds: int | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete one Ready pod matching `label_selector` and measure the recovery.

    Returns the pod, its zone and the seconds until `deployment` had all its replicas
    Ready and Available again; fails when that takes longer than `recovery_timeout`.
    """
    by_zone = _ready_pods_by_zone(namespace, label_selector, secrets)
    candidates = [(zone, pod) for zone, pods in sorted(by_zone.items()) for pod in sorted(pods)]
    if not candidates:
        raise ActivityFailed(f"no Ready pod matches {label_selector} in {namespace}")
    zone, pod = random.Random(seed).choice(candidates)
    enforce_budget(configuration, 1, "kill_one_pod")
    return _kill_and_wait(
        namespace, deployment, zone, pod, recovery_timeout, grace_period_seconds, secrets
    )


def kill_one_pod_per_zone(
    namespace: str,
    label_selector: str,
    deployment: str,
    recovery_timeout: float = 180.0,
    seed: int = 0,
    grace_period_seconds: int | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """In each zone in turn, delete one Ready pod and wait until the Deployment is whole.

    Never more than one pod down at a time. Returns, per zone, the pod killed and
    the measured seconds to recovery; fails at the first zone whose recovery takes
    longer than `recovery_timeout`.
    """
    rng = random.Random(seed)
    enforce_budget(configuration, 1, "kill_one_pod_per_zone")
    results = []
    for zone, pod in choose_per_zone(_ready_pods_by_zone(namespace, label_selector, secrets), rng):
        results.append(
            _kill_and_wait(
                namespace, deployment, zone, pod, recovery_timeout, grace_period_seconds, secrets
            )
        )
    if not results:
        raise ActivityFailed(f"no Ready pod matches {label_selector} in {namespace}")
    return results


def _kill_and_wait(
    namespace: str,
    deployment: str,
    zone: str,
    pod: str,
    timeout: float,
    grace_period_seconds: int | None,
    secrets: Any,
) -> dict[str, Any]:
    began = time.monotonic()
    core(secrets).delete_namespaced_pod(
        pod, namespace, grace_period_seconds=grace_period_seconds, _request_timeout=REQUEST_TIMEOUT
    )
    seconds = wait_deployment_whole(
        apps(secrets), namespace, deployment, timeout, since=began, gone=pod, core_api=core(secrets)
    )
    return {"pod": pod, "zone": zone, "recovery_seconds": round(seconds, 3)}
