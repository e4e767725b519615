"""Releases as faults: a new image, a bad one, a faulty canary, and how each is undone.

Each action writes its undo into the recovery journal before it changes anything:
the previous image for `set_image`, the canary's name for `add_canary`.
`restore_image` and `remove_canary` are the rollbacks; `resilience recover`
replays them after a crash.
"""

from __future__ import annotations

import copy
from typing import Any

from chaoslib.exceptions import ActivityFailed
from kubernetes.client.exceptions import ApiException

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.kube import REQUEST_TIMEOUT, apps
from resilience.chaos.waiting import seconds_until
from resilience.safety import undo_journal

__all__ = ["add_canary", "remove_canary", "restore_image", "set_image"]
CANARY_LABEL = "chaos.harmonyflow.io/canary"


def _container(deployment: Any, container: str | None) -> Any:
    containers = deployment.spec.template.spec.containers
    chosen = next((c for c in containers if container in (None, c.name)), None)
    if chosen is None:
        raise ActivityFailed(
            f"deployment {deployment.metadata.name} has no container {container!r}"
        )
    return chosen


def set_image(
    deployment: str,
    namespace: str,
    image: str,
    container: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll `deployment` to `image` (the first container unless `container` is named).

    Starts a rolling update and returns at once with the previous image; pair it with
    the probe `rollout_seconds` to measure it, and with the rollback `restore_image`.
    """
    api = apps(secrets)
    current: Any = api.read_namespaced_deployment(
        deployment, namespace, _request_timeout=REQUEST_TIMEOUT
    )
    target = _container(current, container)
    undo_journal.record(
        "restore-image",
        {
            "namespace": namespace,
            "deployment": deployment,
            "container": target.name,
            "image": target.image,
        },
    )
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": target.name, "image": image}]}}}
    }
    api.patch_namespaced_deployment(deployment, namespace, patch, _request_timeout=REQUEST_TIMEOUT)
    return {"deployment": deployment, "previous_image": target.image, "image": image}


def restore_image(
    deployment: str,
    namespace: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Put `deployment` back on the image it had before this run's `set_image` calls.

    What `kubectl rollout undo` does for one step, but exact over several: the oldest
    pending image recorded for this deployment wins. Nothing to restore is not an error.
    """
    undos = [
        u
        for u in undo_journal.pending(undo_journal.read())
        if u.kind == "restore-image"
        and u.target.get("deployment") == deployment
        and u.target.get("namespace") == namespace
    ]
    if not undos:
        return {"deployment": deployment, "restored": None}
    first = undos[0].target
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": first["container"], "image": first["image"]}]}
            }
        }
    }
    apps(secrets).patch_namespaced_deployment(
        deployment, namespace, patch, _request_timeout=REQUEST_TIMEOUT
    )
    for undo in undos:
        undo_journal.mark_done(undo.id)
    return {"deployment": deployment, "restored": first["image"]}


def rollout_seconds(
    deployment: str,
    namespace: str,
    timeout: float = 600.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> float:
    """Seconds until the rollout of `deployment` completes; fails when it does not within
    `timeout` or reports ProgressDeadlineExceeded (the message says so)."""
    api = apps(secrets)

    def check() -> tuple[bool, str]:
        current: Any = api.read_namespaced_deployment(
            deployment, namespace, _request_timeout=REQUEST_TIMEOUT
        )
        status = current.status
        conditions = {c.type: c for c in status.conditions or []}
        progressing = conditions.get("Progressing")
        if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
            raise ActivityFailed(
                f"rollout of {namespace}/{deployment} stalled: {progressing.message}"
            )
        desired = current.spec.replicas
        done = (
            (status.observed_generation or 0) >= (current.metadata.generation or 0)
            and (status.updated_replicas or 0) == desired
            and (status.available_replicas or 0) == desired
            and (status.replicas or 0) == desired
        )
        return (
            done,
            f"{status.updated_replicas or 0} updated,"
            f" {status.available_replicas or 0} available of {desired}",
        )

    return seconds_until(check, timeout, f"rollout of {namespace}/{deployment} complete")


def add_canary(
    deployment: str,
    namespace: str,
    image: str,
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add one faulty replica beside `deployment`: its pod template, on `image`.

    The canary's pods carry the Deployment's labels (so its Services route to them)
    plus `chaos.harmonyflow.io/canary`, which alone selects them; the rollback is
    `remove_canary`. One pod: the blast radius is declared as 1.
    """
    enforce_budget(configuration, 1, "add_canary")
    api = apps(secrets)
    source: Any = api.read_namespaced_deployment(
        deployment, namespace, _request_timeout=REQUEST_TIMEOUT
    )
    canary_name = name or f"{deployment}-chaos-canary"
    template = copy.deepcopy(api.api_client.sanitize_for_serialization(source.spec.template))
    template["metadata"].setdefault("labels", {})[CANARY_LABEL] = canary_name
    for container in template["spec"]["containers"][:1]:
        container["image"] = image
    body: Any = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name,
            "namespace": namespace,
            "labels": {CANARY_LABEL: canary_name},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {CANARY_LABEL: canary_name}},
            "template": template,
        },
    }
    undo_journal.record("delete-canary", {"namespace": namespace, "deployment": canary_name})
    api.create_namespaced_deployment(namespace, body, _request_timeout=REQUEST_TIMEOUT)
    return {"canary": canary_name, "image": image}


def remove_canary(
    deployment: str,
    namespace: str,
    name: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Delete the canary `add_canary` created (the rollback); gone already is fine."""
    canary_name = name or f"{deployment}-chaos-canary"
    delete_canary(namespace, canary_name, secrets)
    for undo in undo_journal.pending(undo_journal.read()):
        if undo.kind == "delete-canary" and undo.target.get("deployment") == canary_name:
            undo_journal.mark_done(undo.id)
    return {"canary": canary_name, "removed": True}


def delete_canary(namespace: str, name: str, secrets: dict[str, Any] | None = None) -> None:
    try:
        apps(secrets).delete_namespaced_deployment(
            name, namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as error:
        if error.status != 404:
            raise
