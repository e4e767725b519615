"""The ReplicationController controller: the ReplicaSet controller with a map selector.

Upstream runs the ReplicaSet code for RCs too (`pkg/controller/replication`
wraps `replicaset.NewBaseController` with conversions); here the same class runs
on `replicationcontrollers` with `spec.selector` read as a plain label map
(`{"app": "web"}`, no matchLabels/matchExpressions). Status fields are the
ReplicaSet's: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
observedGeneration, ReplicaFailure conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.kube.controllers.replicaset import ReplicaSetController
from sandbox.kube.selectors import LabelSelector, selector_from_match

REPLICATIONCONTROLLERS = "replicationcontrollers"


def rc_selector(rc: Mapping[str, Any]) -> LabelSelector | None:
    """The RC's selector map as a label selector; None (act on nothing) when empty.

    >>> rc_selector({"spec": {"selector": {"app": "web"}}}).matches({"app": "web", "x": "y"})
    True
    >>> rc_selector({"spec": {}}) is None
    True
    """
    labels = (rc.get("spec") or {}).get("selector") or {}
    if not labels:
        return None
    return selector_from_match({"matchLabels": dict(labels)})


class ReplicationControllerController(ReplicaSetController):
    """Keeps `spec.replicas` pods per ReplicationController and writes its status."""

    name = "replicationcontroller"
    resource = REPLICATIONCONTROLLERS
    kind = "ReplicationController"

    def selector(self, obj: Mapping[str, Any]) -> LabelSelector | None:
        return rc_selector(obj)
