"""One `syncDeployment` as a plan (upstream's `deployment_controller.go` with the strategies
of `sync.go`, `rolling.go`, `recreate.go`): `plan_sync` returns a `SyncPlan` value that
`controller.py` only applies.

Order: paused -> `sync`; a scaling event -> `sync`; Recreate -> `rollout_recreate`;
RollingUpdate -> `rollout_rolling` ("scale up if we can; if we scaled, stop; else scale
down if we can; else clean up; then sync status"). Each step works on private copies and
sees what the previous steps would write; `now` is a parameter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.kube.clock import rfc3339
from sandbox.kube.controllers.deployment.progress import (
    requeue_stuck_deployment,
    sync_rollout_status,
)
from sandbox.kube.controllers.deployment.recreate import (
    old_pods_running,
    scale_down_old_replicasets_for_recreate,
)
from sandbox.kube.controllers.deployment.rolling import (
    reconcile_new_replicaset,
    reconcile_old_replicasets,
)
from sandbox.kube.controllers.deployment.sync import (
    calculate_status,
    check_paused_conditions,
    cleanup_deployment,
    is_scaling_event,
    scale,
)
from sandbox.kube.controllers.deployment.util import (
    POD_TEMPLATE_HASH_LABEL,
    RECREATE,
    REVISION_ANNOTATION,
    ConditionType,
    KubeObject,
    Reason,
    ScaleAction,
    annotations_of,
    deployment_complete,
    filter_active_replicasets,
    find_new_replicaset,
    find_old_replicasets,
    get_deployment_condition,
    has_progress_deadline,
    max_revision,
    metadata_of,
    name_of,
    new_deployment_condition,
    new_rs_new_replicas,
    pod_template_hash,
    replicas_annotations_need_update,
    scaled_replicaset,
    set_deployment_condition,
    set_new_replicaset_annotations,
    spec_of,
    spec_replicas,
    strategy_type,
)
from sandbox.kube.controllers.replicaset_util import new_controller_ref


@dataclass(frozen=True)
class ReplicaSetUpdate:
    """Sync the new RS's annotations (revision bump) and minReadySeconds."""

    rs_name: str
    annotations: Mapping[str, str]
    min_ready_seconds: int


@dataclass(frozen=True)
class PlannedEvent:
    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class SyncPlan:
    """Everything one `syncDeployment` writes, in the order to write it.

    1. `replicaset_updates`; 2. `create_replicaset`; 3. `deployment_annotations`
    (the revision); 4. `scales`; 5. `deletions`; 6. `status`. `events` go with
    the writes they describe; `requeue_after` is the progress-deadline check.
    """

    create_replicaset: KubeObject | None = None
    replicaset_updates: tuple[ReplicaSetUpdate, ...] = ()
    scales: tuple[ScaleAction, ...] = ()
    deletions: tuple[str, ...] = ()
    deployment_annotations: Mapping[str, str] | None = None
    status: KubeObject | None = None
    events: tuple[PlannedEvent, ...] = ()
    requeue_after: float | None = None

    @property
    def writes_nothing(self) -> bool:
        return not (
            self.create_replicaset
            or self.replicaset_updates
            or self.scales
            or self.deletions
            or self.deployment_annotations is not None
            or self.status is not None
        )


def new_replicaset(
    d: Mapping[str, Any], replicas: int, annotations: Mapping[str, str]
) -> KubeObject:
    """The RS `getNewReplicaSet` creates: `<deploy>-<hash>`, hash in labels and selector."""
    template = copy.deepcopy(dict(spec_of(d).get("template") or {}))
    template_hash = pod_template_hash(template, (d.get("status") or {}).get("collisionCount"))
    template_meta = template.setdefault("metadata", {})
    labels = {**(template_meta.get("labels") or {}), POD_TEMPLATE_HASH_LABEL: template_hash}
    template_meta["labels"] = labels
    selector = copy.deepcopy(dict(spec_of(d).get("selector") or {}))
    selector["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        POD_TEMPLATE_HASH_LABEL: template_hash,
    }
    spec: KubeObject = {"replicas": replicas}
    min_ready = int(spec_of(d).get("minReadySeconds", 0) or 0)
    if min_ready:
        spec["minReadySeconds"] = min_ready
    spec.update(selector=selector, template=template)
    metadata: KubeObject = {
        "name": f"{name_of(d)}-{template_hash}",
        "namespace": metadata_of(d).get("namespace", "default"),
        "labels": dict(labels),
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    metadata["ownerReferences"] = [new_controller_ref(d)]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata, "spec": spec}


@dataclass
class _Sync:
    """One sync on private copies: each step sees what the previous steps would write."""

    d: KubeObject
    rss: dict[str, KubeObject]
    now: datetime
    create: KubeObject | None = None
    updates: list[ReplicaSetUpdate] = field(default_factory=list)
    scales: list[ScaleAction] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    events: list[PlannedEvent] = field(default_factory=list)
    requeue: float | None = None

    @property
    def status(self) -> KubeObject:
        return dict(self.d.get("status") or {})

    def set_status(self, status: KubeObject) -> None:
        self.d["status"] = status

    def _by_name(self, rss: Iterable[KubeObject | None]) -> list[KubeObject]:
        return [self.rss[name_of(rs)] for rs in rss if rs is not None]

    def all_and_new(self, create: bool) -> tuple[KubeObject | None, list[KubeObject]]:
        """`getAllReplicaSetsAndSyncRevision`."""
        rs_list = list(self.rss.values())
        _, old_rss = find_old_replicasets(self.d, rs_list)
        new_rs = self.get_new_replicaset(rs_list, old_rss, create)
        return new_rs, old_rss

    def get_new_replicaset(
        self, rs_list: list[KubeObject], old_rss: list[KubeObject], create: bool
    ) -> KubeObject | None:
        existing = find_new_replicaset(self.d, rs_list)
        new_revision = str(max_revision(old_rss) + 1)
        if existing is not None:
            return self._sync_existing(existing, new_revision)
        if not create:
            return None
        draft = new_replicaset(self.d, 0, {})
        replicas = new_rs_new_replicas(self.d, [*old_rss, draft], draft)
        annotations = set_new_replicaset_annotations(self.d, draft, new_revision, exists=False)
        created = new_replicaset(self.d, replicas, annotations or {})
        self.create = copy.deepcopy(created)
        created["metadata"]["creationTimestamp"] = rfc3339(self.now)
        self.rss[name_of(created)] = created
        if replicas > 0:
            self.events.append(
                PlannedEvent(
                    "ScalingReplicaSet",
                    f"Scaled up replica set {name_of(created)} from 0 to {replicas}",
                )
            )
        self._set_revision(new_revision)
        if has_progress_deadline(self.d):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.NEW_REPLICA_SET,
                f'Created new replica set "{name_of(created)}"',
                self.now,
            )
            self.set_status(set_deployment_condition(self.status, condition))
        return created

    def _sync_existing(self, existing: KubeObject, new_revision: str) -> KubeObject:
        annotations = set_new_replicaset_annotations(self.d, existing, new_revision, exists=True)
        min_ready = int(spec_of(self.d).get("minReadySeconds", 0) or 0)
        rs_min_ready = int(spec_of(existing).get("minReadySeconds", 0) or 0)
        if annotations is not None or min_ready != rs_min_ready:
            final = annotations if annotations is not None else annotations_of(existing)
            self.updates.append(ReplicaSetUpdate(name_of(existing), dict(final), min_ready))
            updated = copy.deepcopy(existing)
            updated.setdefault("metadata", {})["annotations"] = dict(final)
            updated.setdefault("spec", {})["minReadySeconds"] = min_ready
            self.rss[name_of(updated)] = updated
            return updated
        self._set_revision(annotations_of(existing).get(REVISION_ANNOTATION, ""))
        if (
            has_progress_deadline(self.d)
            and get_deployment_condition(self.status, ConditionType.PROGRESSING) is None
        ):
            condition = new_deployment_condition(
                ConditionType.PROGRESSING,
                "True",
                Reason.FOUND_NEW_RS,
                f'Found new replica set "{name_of(existing)}"',
                self.now,
            )
            self.set_status(set_deployment_condition(self.status, condition))
        return existing

    def _set_revision(self, value: str) -> None:
        """`SetDeploymentRevision`."""
        annotations = self.d.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(REVISION_ANNOTATION) != value:
            annotations[REVISION_ANNOTATION] = value

    def apply_scales(self, actions: Iterable[ScaleAction]) -> None:
        for action in actions:
            rs = self.rss[action.rs_name]
            if action.replicas == spec_replicas(rs) and not replicas_annotations_need_update(
                rs, self.d
            ):
                continue
            self.scales.append(action)
            self.rss[action.rs_name] = scaled_replicaset(rs, action.replicas, self.d)
            if action.replicas != action.previous:
                self.events.append(PlannedEvent("ScalingReplicaSet", action.event_message))

    def sync_rollout_status(self, new_rs: KubeObject | None, old_rss: list[KubeObject]) -> None:
        new_rs = self.rss[name_of(new_rs)] if new_rs is not None else None
        all_rss = [*self._by_name(old_rss), new_rs]
        status = sync_rollout_status(all_rss, new_rs, self.d, self.now)
        self.requeue = requeue_stuck_deployment(self.d, status, self.now)
        self.set_status(status)

    def sync_deployment_status(self, new_rs: KubeObject | None, old_rss: list[KubeObject]) -> None:
        new_rs = self.rss[name_of(new_rs)] if new_rs is not None else None
        self.set_status(
            calculate_status([*self._by_name(old_rss), new_rs], new_rs, self.d, self.now)
        )

    # -- the strategies --

    def sync(self) -> None:
        """`sync`: scaling events and paused Deployments (no new RS is created)."""
        new_rs, old_rss = self.all_and_new(create=False)
        self.apply_scales(scale(self.d, new_rs, old_rss))
        if spec_of(self.d).get("paused"):
            self.deletions.extend(cleanup_deployment(self._by_name(old_rss), self.d))
        self.sync_deployment_status(new_rs, old_rss)

    def rollout_rolling(self) -> None:
        """`rolloutRolling`: scale up if we can; if we scaled, stop; else scale down."""
        new_rs, old_rss = self.all_and_new(create=True)
        assert new_rs is not None  # create=True always plans one
        scale_up = reconcile_new_replicaset([*old_rss, new_rs], new_rs, self.d)
        if scale_up is not None:
            self.apply_scales([scale_up])
            self.sync_rollout_status(new_rs, old_rss)
            return
        new_rs = self.rss[name_of(new_rs)]
        old_rss = self._by_name(old_rss)
        scale_down = reconcile_old_replicasets(
            [*old_rss, new_rs], filter_active_replicasets(old_rss), new_rs, self.d
        )
        if scale_down:
            self.apply_scales(scale_down)
            self.sync_rollout_status(new_rs, old_rss)
            return
        if deployment_complete(self.d, self.status):
            self.deletions.extend(cleanup_deployment(old_rss, self.d))
        self.sync_rollout_status(new_rs, old_rss)

    def rollout_recreate(self, pod_map: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """`rolloutRecreate`: old RSs to 0; when their pods are gone, the new RS to full size."""
        new_rs, old_rss = self.all_and_new(create=False)
        scale_down = scale_down_old_replicasets_for_recreate(filter_active_replicasets(old_rss))
        if scale_down:
            self.apply_scales(scale_down)
            self.sync_rollout_status(new_rs, old_rss)
            return
        if old_pods_running(new_rs, old_rss, pod_map):
            self.sync_rollout_status(new_rs, old_rss)
            return
        if new_rs is None:
            new_rs, old_rss = self.all_and_new(create=True)
            assert new_rs is not None
        new_rs = self.rss[name_of(new_rs)]
        if spec_replicas(new_rs) != spec_replicas(self.d):
            self.apply_scales(
                [ScaleAction(name_of(new_rs), spec_replicas(self.d), spec_replicas(new_rs))]
            )
        if deployment_complete(self.d, self.status):
            self.deletions.extend(cleanup_deployment(self._by_name(old_rss), self.d))
        self.sync_rollout_status(new_rs, old_rss)


def plan_sync(
    deployment: Mapping[str, Any],
    replicasets: Iterable[Mapping[str, Any]],
    pod_map: Mapping[str, Sequence[Mapping[str, Any]]],
    now: datetime,
) -> SyncPlan:
    """`syncDeployment` as a plan: what to write for one Deployment, given its RSs and pods.

    `replicasets` are the ones the Deployment controls (after adoption);
    `pod_map` maps each RS uid to its pods, terminating ones included.
    """
    run = _Sync(
        d=copy.deepcopy(dict(deployment)),
        rss={name_of(rs): copy.deepcopy(dict(rs)) for rs in replicasets},
        now=now,
    )
    if metadata_of(deployment).get("deletionTimestamp") is not None:
        new_rs, old_rss = run.all_and_new(create=False)
        run.sync_deployment_status(new_rs, old_rss)
    else:
        paused_status = check_paused_conditions(run.d, now)
        if paused_status is not None:
            run.set_status(paused_status)
        new_rs, old_rss = run.all_and_new(create=False)
        strategy = strategy_type(run.d)
        if spec_of(run.d).get("paused") or is_scaling_event(run.d, [*old_rss, new_rs]):
            run.sync()
        elif strategy == RECREATE:
            run.rollout_recreate(pod_map)
        else:
            run.rollout_rolling()
    original_annotations = annotations_of(deployment)
    new_annotations = annotations_of(run.d)
    original_status = dict(deployment.get("status") or {})
    return SyncPlan(
        create_replicaset=run.create,
        replicaset_updates=tuple(run.updates),
        scales=tuple(run.scales),
        deletions=tuple(run.deletions),
        deployment_annotations=new_annotations if new_annotations != original_annotations else None,
        status=run.status if run.status != original_status else None,
        events=tuple(run.events),
        requeue_after=run.requeue,
    )
