"""The ReplicaSet controller: keep `spec.replicas` active pods and report status.

The decisions (which pods count, which pod goes first, how many to create,
what the status says) are the pure functions of `replicaset_util`; this class
only reads the store, calls them and writes.

One deliberate difference from upstream's timing: the status written at the
end of a sync already reflects the pods this sync created or deleted (upstream
reports them on the next sync). A deleted pod therefore never shows as
available to the Deployment controller once its deletionTimestamp is set.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.controllers.replicaset_util import (
    calculate_status,
    claim_objects,
    controller_ref,
    filter_active_pods,
    indirectly_related_pods,
    is_controlled_by,
    manage_replicas,
    pod_from_template,
    seconds_until_available,
    slow_start_batches,
    with_controller_ref,
    without_owner_ref,
)
from sandbox.kube.controllers.runtime import namespaced_key, object_key
from sandbox.kube.errors import ApiError
from sandbox.kube.selectors import LabelSelector, selector_from_match
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]

REPLICASETS = "apps/replicasets"
PODS = "pods"
COMPONENT = "replicaset-controller"


def replicaset_selector(rs: Mapping[str, Any]) -> LabelSelector | None:
    """The RS's selector; None (act on nothing) when it is missing or empty."""
    selector = selector_from_match((rs.get("spec") or {}).get("selector"))
    return None if selector is None or selector.empty else selector


class ReplicaSetController:
    """Creates and deletes pods to match each ReplicaSet, and writes its status."""

    name = "replicaset"
    resource = REPLICASETS
    kind = "ReplicaSet"

    def selector(self, obj: Mapping[str, Any]) -> LabelSelector | None:
        return replicaset_selector(obj)

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    # ---- what to look at ----

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == self.resource:
            return [object_key(change.object)]
        if change.resource != PODS:
            return []
        namespace, _ = object_key(change.object)
        keys: set[tuple[str, str]] = set()
        for pod in (change.object, change.old):
            ref = controller_ref(pod) if pod is not None else None
            if ref is not None and ref.get("kind") == self.kind:
                keys.add((namespace, str(ref.get("name", ""))))
        if not keys and change.type != DELETED:  # an orphan: whoever may adopt it
            labels = (change.object.get("metadata") or {}).get("labels")
            for rs in self.store.list(self.resource, namespace):
                selector = self.selector(rs)
                if selector is not None and selector.matches(labels):
                    keys.add(object_key(rs))
        return sorted(keys)

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(object_key(rs) for rs in self.store.list(self.resource))

    # ---- one sync ----

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        rs = self.store.find(self.resource, namespace, name)
        if rs is None:
            return None
        selector = self.selector(rs)
        if selector is None:
            return None
        now = self.clock.now()
        pods = self._claim_pods(rs, selector)
        error = None
        if rs["metadata"].get("deletionTimestamp") is None:
            error = self._manage_replicas(rs, pods, now)
            pods = self._owned_active_pods(rs, selector)
        status = calculate_status(rs, pods, now, error)
        if status != rs.get("status"):
            self.store.mutate(
                self.resource,
                namespace,
                name,
                lambda obj: obj.__setitem__("status", status),
                subresource="status",
            )
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds", 0) or 0)
        return seconds_until_available(pods, min_ready, now)

    def _claim_pods(self, rs: KubeObject, selector: LabelSelector) -> list[KubeObject]:
        """Active pods the RS owns after adopting matching orphans and releasing strays."""
        namespace, _ = object_key(rs)
        active = filter_active_pods(self.store.snapshot(PODS, namespace))
        claim = claim_objects(rs, active, selector)
        adopting = {pod["metadata"]["name"] for pod in claim.adopt}
        owned = [pod for pod in claim.owned if pod["metadata"]["name"] not in adopting]
        for pod in claim.adopt:
            try:
                owned.append(self.store.update(PODS, with_controller_ref(pod, rs)))
            except ApiError as error:
                if error.code != 404:
                    raise
        for pod in claim.release:
            try:
                self.store.update(PODS, without_owner_ref(pod, rs["metadata"]["uid"]))
            except ApiError as error:
                if error.code != 404:
                    raise
        return owned

    def _owned_active_pods(self, rs: KubeObject, selector: LabelSelector) -> list[KubeObject]:
        namespace, _ = object_key(rs)
        return [
            pod
            for pod in filter_active_pods(self.store.snapshot(PODS, namespace))
            if is_controlled_by(pod, rs) and selector.matches(pod["metadata"].get("labels"))
        ]

    def _manage_replicas(self, rs: KubeObject, pods: list[KubeObject], now: datetime) -> str | None:
        """Create or delete pods; the error message of a failed call, for the status."""
        diff = manage_replicas(rs, pods, self._related_pods(rs), now)
        if diff.create:
            return self._create_pods(rs, diff.create)
        error = None
        namespace, _ = object_key(rs)
        for pod in diff.delete:
            pod_name = pod["metadata"]["name"]
            try:
                self.store.delete(PODS, namespace, pod_name)
            except ApiError as failure:
                if failure.code == 404:
                    continue
                error = failure.message
                self._event(rs, "FailedDelete", f"Error deleting: {failure.message}", "Warning")
                continue
            self._event(rs, "SuccessfulDelete", f"Deleted pod: {pod_name}")
        return error

    def _create_pods(self, rs: KubeObject, count: int) -> str | None:
        """Slow start: batches of 1, 2, 4, …; a batch with a failure stops the rest."""
        error = None
        for batch in slow_start_batches(count):
            for _ in range(batch):
                try:
                    pod = self.store.create(PODS, pod_from_template(rs))
                except ApiError as failure:
                    error = failure.message
                    self._event(rs, "FailedCreate", f"Error creating: {failure.message}", "Warning")
                    continue
                self._event(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
            if error is not None:
                break
        return error

    def _related_pods(self, rs: KubeObject) -> list[KubeObject]:
        namespace, _ = object_key(rs)
        siblings = self.store.list(self.resource, namespace)
        selectors = {}
        for sibling in siblings:
            selector = self.selector(sibling)
            if selector is not None:
                selectors[sibling["metadata"]["name"]] = selector
        return indirectly_related_pods(
            rs, siblings, self.store.snapshot(PODS, namespace), selectors
        )

    def _event(self, rs: KubeObject, reason: str, message: str, event_type: str = "Normal") -> None:
        self.store.record_event(rs, reason, message, event_type=event_type, component=COMPONENT)
