"""The Deployment controller: roll ReplicaSets forward, back and to size.

All decisions are `plan.plan_sync`, a pure function of the Deployment, the
ReplicaSets it controls and their pods; this class claims ReplicaSets (adopting
matching orphans), asks for the plan and writes it: ReplicaSet updates and
creation, the revision annotation, scaling, history cleanup, then the status
(through the status subresource) and events.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from sandbox.kube.clock import Clock
from sandbox.kube.controllers.deployment.plan import PlannedEvent, SyncPlan, plan_sync
from sandbox.kube.controllers.deployment.util import (
    ConditionType,
    Reason,
    equal_ignore_hash,
    has_progress_deadline,
    new_deployment_condition,
    scaled_replicaset,
    set_deployment_condition,
)
from sandbox.kube.controllers.replicaset import PODS, REPLICASETS
from sandbox.kube.controllers.replicaset_util import (
    claim_objects,
    controller_ref,
    is_controlled_by,
    with_controller_ref,
    without_owner_ref,
)
from sandbox.kube.controllers.runtime import namespaced_key, object_key
from sandbox.kube.errors import ApiError
from sandbox.kube.selectors import LabelSelector, selector_from_match
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import DELETED, Change, Store

KubeObject = dict[str, Any]
DEPLOYMENTS = "apps/deployments"
COMPONENT = "deployment-controller"
COLLISION_RETRY_SECONDS = 0.05


def deployment_selector(d: Mapping[str, Any]) -> LabelSelector | None:
    """The Deployment's selector; None when it would select everything."""
    selector = selector_from_match((d.get("spec") or {}).get("selector"))
    return None if selector is None or selector.empty else selector


class DeploymentController:
    """Drives each Deployment's ReplicaSets through rollouts, rollbacks and scaling."""

    name = "deployment"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    # ---- what to look at ----

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == DEPLOYMENTS:
            return [object_key(change.object)]
        if change.resource == REPLICASETS:
            return self._keys_for_replicaset(change)
        if change.resource == PODS and change.type == DELETED:
            return self._keys_for_deleted_pod(change.object)  # Recreate waits for these
        return []

    def _keys_for_replicaset(self, change: Change) -> list[tuple[str, str]]:
        namespace, _ = object_key(change.object)
        keys: set[tuple[str, str]] = set()
        for rs in (change.object, change.old):
            ref = controller_ref(rs) if rs is not None else None
            if ref is not None and ref.get("kind") == "Deployment":
                keys.add((namespace, str(ref.get("name", ""))))
        if not keys and change.type != DELETED:  # an orphan: whoever may adopt it
            labels = (change.object.get("metadata") or {}).get("labels")
            for d in self.store.list(DEPLOYMENTS, namespace):
                selector = deployment_selector(d)
                if selector is not None and selector.matches(labels):
                    keys.add(object_key(d))
        return sorted(keys)

    def _keys_for_deleted_pod(self, pod: Mapping[str, Any]) -> list[tuple[str, str]]:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        namespace, _ = object_key(pod)
        rs = self.store.find(REPLICASETS, namespace, str(ref.get("name", "")))
        owner = controller_ref(rs) if rs is not None else None
        if owner is None or owner.get("kind") != "Deployment":
            return []
        return [(namespace, str(owner.get("name", "")))]

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(object_key(d) for d in self.store.list(DEPLOYMENTS))

    # ---- one sync ----

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        d = self.store.find(DEPLOYMENTS, namespace, name)
        if d is None:
            return None
        selector = deployment_selector(d)
        if selector is None:
            self._selecting_all(d)
            return None
        replicasets = self._claim_replicasets(d, selector)
        pod_map = self._pod_map(d, selector, replicasets)
        plan = plan_sync(d, replicasets, pod_map, self.clock.now())
        return self._write(d, plan)

    def _selecting_all(self, d: KubeObject) -> None:
        self._event(
            d,
            PlannedEvent(
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
                "Warning",
            ),
        )
        generation = int(d["metadata"].get("generation", 0))
        if int((d.get("status") or {}).get("observedGeneration", 0)) < generation:
            status = {**(d.get("status") or {}), "observedGeneration": generation}
            self._write_status(d, status)

    def _claim_replicasets(self, d: KubeObject, selector: LabelSelector) -> list[KubeObject]:
        """ReplicaSets the Deployment controls, after adopting orphans and releasing strays."""
        namespace, _ = object_key(d)
        claim = claim_objects(d, self.store.list(REPLICASETS, namespace), selector)
        adopted = {rs["metadata"]["name"] for rs in claim.adopt}
        owned = [rs for rs in claim.owned if rs["metadata"]["name"] not in adopted]
        for rs in claim.adopt:
            try:
                owned.append(self.store.update(REPLICASETS, with_controller_ref(rs, d)))
            except ApiError as error:
                if error.code != 404:
                    raise
        for rs in claim.release:
            try:
                self.store.update(REPLICASETS, without_owner_ref(rs, d["metadata"]["uid"]))
            except ApiError as error:
                if error.code != 404:
                    raise
        return owned

    def _pod_map(
        self, d: KubeObject, selector: LabelSelector, replicasets: list[KubeObject]
    ) -> dict[str, list[KubeObject]]:
        """`getPodMapForDeployment`: pods by owning RS uid, terminating ones included."""
        namespace, _ = object_key(d)
        pod_map: dict[str, list[KubeObject]] = {rs["metadata"]["uid"]: [] for rs in replicasets}
        for pod in self.store.snapshot(PODS, namespace, labels=selector):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in pod_map:
                pod_map[str(ref["uid"])].append(pod)
        return pod_map

    # ---- writing a plan ----

    def _write(self, d: KubeObject, plan: SyncPlan) -> float | None:
        namespace, name = object_key(d)
        for update in plan.replicaset_updates:
            rs = self.store.get(REPLICASETS, namespace, update.rs_name)
            rs["metadata"]["annotations"] = dict(update.annotations)
            if update.min_ready_seconds:
                rs["spec"]["minReadySeconds"] = update.min_ready_seconds
            else:
                rs["spec"].pop("minReadySeconds", None)
            self.store.update(REPLICASETS, rs)
        if plan.create_replicaset is not None:
            retry = self._create_replicaset(d, plan.create_replicaset)
            if retry is not None:
                return retry
        if plan.deployment_annotations is not None:
            current = self.store.get(DEPLOYMENTS, namespace, name)
            current["metadata"]["annotations"] = dict(plan.deployment_annotations)
            self.store.update(DEPLOYMENTS, current)
        for action in plan.scales:
            rs = self.store.get(REPLICASETS, namespace, action.rs_name)
            self.store.update(REPLICASETS, scaled_replicaset(rs, action.replicas, d))
        for rs_name in plan.deletions:
            try:
                self.store.delete(REPLICASETS, namespace, rs_name)
            except ApiError as error:
                if error.code != 404:
                    raise
        if plan.status is not None:
            self._write_status(d, plan.status)
        for event in plan.events:
            self._event(d, event)
        return plan.requeue_after

    def _create_replicaset(self, d: KubeObject, rs: KubeObject) -> float | None:
        """Create the new RS; on a name collision bump collisionCount and look again."""
        namespace, _ = object_key(d)
        try:
            self.store.create(REPLICASETS, rs)
            return None
        except ApiError as error:
            if error.reason != "AlreadyExists":
                self._report_create_failure(d, rs, error)
                raise
        existing = self.store.find(REPLICASETS, namespace, rs["metadata"]["name"])
        template = (d.get("spec") or {}).get("template") or {}
        if (
            existing is not None
            and is_controlled_by(existing, d)
            and equal_ignore_hash(template, (existing.get("spec") or {}).get("template") or {})
        ):
            return COLLISION_RETRY_SECONDS  # ours already: the next sync finds it
        status = dict(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount", 0) or 0) + 1
        self._write_status(d, status)
        return COLLISION_RETRY_SECONDS

    def _report_create_failure(self, d: KubeObject, rs: KubeObject, error: ApiError) -> None:
        message = f'Failed to create new replica set "{rs["metadata"]["name"]}": {error.message}'
        if has_progress_deadline(d):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "False",
                Reason.FAILED_RS_CREATE,
                message,
                self.clock.now(),
            )
            self._write_status(d, set_deployment_condition(d.get("status") or {}, condition))
        self._event(d, PlannedEvent(Reason.FAILED_RS_CREATE.value, message, "Warning"))

    def _write_status(self, d: KubeObject, status: KubeObject) -> None:
        namespace, name = object_key(d)
        self.store.mutate(
            DEPLOYMENTS,
            namespace,
            name,
            lambda obj: obj.__setitem__("status", status),
            subresource="status",
        )

    def _event(self, d: KubeObject, event: PlannedEvent) -> None:
        self.store.record_event(
            d, event.reason, event.message, event_type=event.type, component=COMPONENT
        )
