"""The Recreate strategy's decisions: upstream's `pkg/controller/deployment/recreate.go`
(`scaleDownOldReplicaSetsForRecreate`, `oldPodsRunning`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.kube.controllers.deployment.util import (
    KubeObject,
    ScaleAction,
    get_actual_replica_count_for_replicasets,
    metadata_of,
    name_of,
    spec_replicas,
)


def scale_down_old_replicasets_for_recreate(old_rss: Sequence[KubeObject]) -> list[ScaleAction]:
    """`scaleDownOldReplicaSetsForRecreate`: every old RS to 0 at once."""
    return [
        ScaleAction(name_of(rs), 0, spec_replicas(rs)) for rs in old_rss if spec_replicas(rs) != 0
    ]


def old_pods_running(
    new_rs: KubeObject | None,
    old_rss: Sequence[KubeObject],
    pod_map: Mapping[str, Sequence[Mapping[str, Any]]],
) -> bool:
    """`oldPodsRunning`: an old RS reports pods, or a pod of one is not Succeeded/Failed.

    Terminating pods count: Recreate waits until the old processes are gone.

    >>> old = {"metadata": {"uid": "o"}, "status": {"replicas": 0}}
    >>> terminating = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:30Z"},
    ...                "status": {"phase": "Running"}}
    >>> old_pods_running(None, [old], {"o": [terminating]})
    True
    """
    if get_actual_replica_count_for_replicasets(old_rss) > 0:
        return True
    new_uid = metadata_of(new_rs).get("uid") if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if new_uid is not None and rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False
