"""Probes for steady-state hypotheses: is the service whole, and how long did it take.

A hypothesis needs values it can hold a tolerance against: a count of ready
endpoints, the list of cordoned nodes (tolerance `[]`), whether the Deployment
has every replica Ready, Available and updated. `time_to_recovery` measures
instead of pausing: it returns the seconds until the Deployment is whole again,
and fails past its bound.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from chaosaws import aws_client
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from resilience.chaos.deployments import rollout_seconds
from resilience.chaos.kube import REQUEST_TIMEOUT, apps, autoscaling, core, discovery, items
from resilience.chaos.waiting import POLL_SECONDS, seconds_until

__all__ = [
    "cordoned_nodes",
    "deployment_is_whole",
    "hpa_back_to_min_seconds",
    "hpa_scaled_up_seconds",
    "hpa_status",
    "rds_available_seconds",
    "rds_instance",
    "ready_endpoints",
    "ready_endpoints_at_least",
    "restart_seconds",
    "restarts_since_first_call",
    "rollout_seconds",
    "service_answers",
    "service_answers_promptly",
    "time_to_recovery",
]


def whole(deployment: Any) -> bool:
    """Every desired replica updated, Ready and Available, and the status is current."""
    spec, status, metadata = deployment.spec, deployment.status, deployment.metadata
    desired = spec.replicas if spec.replicas is not None else 1
    return (
        (status.observed_generation or 0) >= (metadata.generation or 0)
        and (status.updated_replicas or 0) == desired
        and (status.ready_replicas or 0) == desired
        and (status.available_replicas or 0) == desired
        and (status.replicas or 0) == desired
    )


def deployment_is_whole(
    name: str, namespace: str, configuration: Any = None, secrets: Any = None
) -> bool:
    """True when `name` has all its replicas updated, Ready and Available, and no extra pod."""
    return whole(
        apps(secrets).read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    )


def ready_endpoints(
    service: str, namespace: str, configuration: Any = None, secrets: Any = None
) -> int:
    """How many ready endpoints the Service's EndpointSlices list (what the ingress routes to)."""
    slices = discovery(secrets).list_namespaced_endpoint_slice(
        namespace,
        label_selector=f"kubernetes.io/service-name={service}",
        _request_timeout=REQUEST_TIMEOUT,
    )
    addresses = {
        address
        for endpoint_slice in items(slices)
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses or []
    }
    return len(addresses)


def ready_endpoints_at_least(
    service: str, namespace: str, minimum: int, configuration: Any = None, secrets: Any = None
) -> bool:
    """True while the Service has at least `minimum` ready endpoints.

    For a hypothesis that must hold during the fault too: with the seed's policy the
    floor is replicas - maxUnavailable, which the PDB also protects.
    """
    return ready_endpoints(service, namespace, secrets=secrets) >= int(minimum)


def service_answers(
    base_url: str, timeout: float = 5.0, configuration: Any = None, secrets: Any = None
) -> bool:
    """True when a session can be created and read back through `base_url` (the ingress).

    One write and one read, each bounded by `timeout`: the user-visible steady state.
    """
    try:
        created = _json_request(
            f"{base_url}/api/v1/sessions", "POST", {"owner": "chaos-probe", "state": {}}, timeout
        )
        read = _json_request(f"{base_url}/api/v1/sessions/{created['id']}", "GET", None, timeout)
    except (OSError, ValueError, KeyError):
        return False
    return bool(read.get("id") == created["id"])


def service_answers_promptly(
    base_url: str, timeout: float = 5.0, configuration: Any = None, secrets: Any = None
) -> bool:
    """True when a write through `base_url` gets an HTTP answer within `timeout`, even an
    error: while a dependency is down a service may refuse, but never leave its users
    waiting.

    The steady state of a dependency's failover, when every request may fail (a database
    that is away for a minute takes every pod out of readiness) but each must still be
    answered: a 503 from the service or the ingress is an answer, a request left hanging on
    a silent connection (no timeout on its database call) is not. A write, because a read
    may be served from the cache without touching the database.
    """
    body = json.dumps({"owner": "chaos-probe", "state": {}}).encode()
    request = urllib.request.Request(
        f"{base_url}/api/v1/sessions",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        error.read()
        return True
    except (OSError, ValueError):
        return False
    return True


def _json_request(url: str, method: str, body: Any, timeout: float) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        payload: dict[str, Any] = json.loads(answer.read())
        return payload


def cordoned_nodes(configuration: Any = None, secrets: Any = None) -> list[str]:
    """Names of the nodes marked unschedulable (a clean cluster answers `[]`)."""
    nodes = items(core(secrets).list_node(_request_timeout=REQUEST_TIMEOUT))
    return sorted(n.metadata.name for n in nodes if n.spec.unschedulable)


def hpa_status(
    name: str, namespace: str, configuration: Any = None, secrets: Any = None
) -> dict[str, Any]:
    """The autoscaler's current and desired replicas, and its bounds."""
    hpa: Any = autoscaling(secrets).read_namespaced_horizontal_pod_autoscaler(
        name, namespace, _request_timeout=REQUEST_TIMEOUT
    )
    return {
        "current": hpa.status.current_replicas or 0,
        "desired": hpa.status.desired_replicas or 0,
        "min": hpa.spec.min_replicas or 1,
        "max": hpa.spec.max_replicas,
    }


def _wait_hpa(
    name: str, namespace: str, timeout: float, done: Any, what: str, secrets: Any
) -> float:
    def check() -> tuple[bool, str]:
        status = hpa_status(name, namespace, secrets=secrets)
        return bool(done(status)), str(status)

    return seconds_until(check, timeout, f"HPA {namespace}/{name} {what}", POLL_SECONDS * 4)


def hpa_scaled_up_seconds(
    name: str,
    namespace: str,
    timeout: float = 300.0,
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds until the autoscaler runs more than its minimum replicas; fails past `timeout`."""
    return _wait_hpa(
        name, namespace, timeout, lambda s: s["current"] > s["min"], "scaled up", secrets
    )


def hpa_back_to_min_seconds(
    name: str,
    namespace: str,
    timeout: float = 600.0,
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds until the autoscaler is back at its minimum (after its scale-down
    stabilization window); fails past `timeout`."""
    return _wait_hpa(
        name,
        namespace,
        timeout,
        lambda s: s["current"] == s["desired"] == s["min"],
        "back at its minimum",
        secrets,
    )


def rds_instance(
    db_instance_identifier: str, configuration: Any = None, secrets: Any = None
) -> dict[str, Any]:
    """The DB instance's status, primary AZ and standby AZ (what a failover swaps)."""
    [db] = aws_client("rds", configuration, secrets).describe_db_instances(
        DBInstanceIdentifier=db_instance_identifier
    )["DBInstances"]
    return {
        "status": db["DBInstanceStatus"],
        "zone": db.get("AvailabilityZone"),
        "secondary_zone": db.get("SecondaryAvailabilityZone"),
    }


def rds_available_seconds(
    db_instance_identifier: str,
    timeout: float = 300.0,
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds until the DB instance reports `available` (a failover ends); fails past `timeout`."""
    rds = aws_client("rds", configuration, secrets)

    def check() -> tuple[bool, str]:
        [db] = rds.describe_db_instances(DBInstanceIdentifier=db_instance_identifier)["DBInstances"]
        return db["DBInstanceStatus"] == "available", str(db["DBInstanceStatus"])

    return seconds_until(check, timeout, f"DB instance {db_instance_identifier} available")


def restart_seconds(
    namespace: str,
    label_selector: str,
    timeout: float = 120.0,
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds until a container of a pod matching `label_selector` restarts; fails past
    `timeout`. With a hanging process, this is how long liveness took to act."""
    api = core(secrets)

    def check() -> tuple[bool, str]:
        pods = items(
            api.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
            )
        )
        restarts = sum(st.restart_count for p in pods for st in (p.status.container_statuses or []))
        return restarts > 0, f"{len(pods)} pod(s), {restarts} restart(s)"

    return seconds_until(check, timeout, f"a restart of a container matching {label_selector}")


class _Baselines:
    restarts: dict[tuple[str, str], int] = {}  # noqa: RUF012 - per chaos run (one process)


def restarts_since_first_call(
    namespace: str, label_selector: str, configuration: Any = None, secrets: Any = None
) -> int:
    """Container restarts of the matching pods since this probe first ran in this run.

    For a hypothesis that forbids a restart storm (tolerance 0): the first call (before
    the method) records the baseline, later calls count what liveness did since.
    """
    pods = items(
        core(secrets).list_namespaced_pod(
            namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT
        )
    )
    total = sum(s.restart_count for p in pods for s in (p.status.container_statuses or []))
    baseline = _Baselines.restarts.setdefault((namespace, label_selector), total)
    return int(max(0, total - baseline))


def time_to_recovery(
    deployment: str,
    namespace: str,
    timeout: float = 180.0,
    configuration: Any = None,
    secrets: Any = None,
) -> float:
    """Seconds from now until `deployment` is whole again; fails after `timeout` seconds."""
    return wait_deployment_whole(
        apps(secrets), namespace, deployment, timeout, since=time.monotonic()
    )


def wait_deployment_whole(
    api: client.AppsV1Api,
    namespace: str,
    name: str,
    timeout: float,
    *,
    since: float,
    gone: str | None = None,
    core_api: client.CoreV1Api | None = None,
) -> float:
    """Poll until the Deployment is whole (and pod `gone` is gone); seconds since `since`."""

    def check() -> tuple[bool, str]:
        deployment: Any = api.read_namespaced_deployment(
            name, namespace, _request_timeout=REQUEST_TIMEOUT
        )
        status = deployment.status
        seen = (
            f"{status.ready_replicas or 0} ready, {status.available_replicas or 0} available,"
            f" {status.updated_replicas or 0} updated of {deployment.spec.replicas}"
        )
        gone_yet = gone is None or core_api is None or _absent(core_api, namespace, gone)
        return whole(deployment) and gone_yet, seen

    seconds_until(check, timeout, f"deployment {namespace}/{name} whole")
    return time.monotonic() - since


def _absent(api: client.CoreV1Api, namespace: str, pod: str) -> bool:
    try:
        api.read_namespaced_pod(pod, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False
