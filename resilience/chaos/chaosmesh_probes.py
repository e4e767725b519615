"""Probes of Chaos Mesh objects: how long until a fault is in place, or over.

Chaos Mesh reports progress in the object's status conditions: `Selected` (pods
found), `AllInjected` (the fault is in place on every selected pod) and
`AllRecovered` (undone everywhere, as after `duration`). An experiment waits for
`AllInjected` before it holds the fault, so the hold measures the fault and not the
engine's start-up, and for `AllRecovered` when it lets `duration` end the fault.
"""

from __future__ import annotations

from typing import Any, cast

from chaoslib.exceptions import ActivityFailed
from kubernetes.client.exceptions import ApiException

from resilience.chaos.chaosmesh import custom
from resilience.chaos.chaosmesh_spec import GROUP, PLURALS, VERSION, condition
from resilience.chaos.kube import REQUEST_TIMEOUT
from resilience.chaos.waiting import seconds_until

__all__ = ["chaos_mesh_condition_seconds"]
POLL_SECONDS = 1.0


def chaos_mesh_condition_seconds(
    name: str,
    namespace: str,
    kind: str = "NetworkChaos",
    condition_type: str = "AllInjected",
    timeout: float = 60.0,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> float:
    """Seconds until the Chaos Mesh object `kind` `namespace`/`name` reports the status
    condition `condition_type` (AllInjected, AllRecovered, Selected) as True; fails past
    `timeout` naming the conditions it last saw, or at once when the object is gone."""
    if kind not in PLURALS:
        raise ActivityFailed(f"kind {kind!r}: expected one of {', '.join(PLURALS)}")
    api = custom(secrets)

    def check() -> tuple[bool, str]:
        try:
            found = cast(
                "dict[str, Any]",
                api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], name, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except ApiException as error:
            if error.status == 404:
                raise ActivityFailed(f"{kind} {namespace}/{name} does not exist") from None
            raise
        conditions = (found.get("status") or {}).get("conditions") or []
        seen = ", ".join(f"{c.get('type')}={c.get('status')}" for c in conditions) or "no status"
        return condition(found, condition_type) == "True", seen

    return seconds_until(
        check, timeout, f"{kind} {namespace}/{name} {condition_type}", POLL_SECONDS
    )
