"""The Deployment and ReplicaSet controllers against the real Store and a ManualClock.

The loop is driven by hand: `Cluster.settle` runs a fake kubelet step (bind,
start, report Ready; finish terminating pods) and then reconciles every key of
the ReplicaSet controller and then of the Deployment controller, until a round
writes nothing. Assertions read what the controllers wrote to the store.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock, rfc3339
from sandbox.kube.controllers.deployment.controller import DEPLOYMENTS, DeploymentController
from sandbox.kube.controllers.deployment.util import (
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    pod_template_hash,
)
from sandbox.kube.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController
from sandbox.kube.controllers.runtime import Controller
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]
NS = "default"
Healthy = Callable[[KubeObject], bool]


def always(pod: KubeObject) -> bool:
    return True


def image_is_not_broken(pod: KubeObject) -> bool:
    return not pod["spec"]["containers"][0]["image"].startswith("broken")


def make_deployment(
    name: str = "web",
    *,
    image: str = "nginx:1.24",
    replicas: int = 3,
    surge: int | str = 1,
    unavailable: int | str = 1,
    strategy: str = "RollingUpdate",
    **spec: Any,
) -> KubeObject:
    strategy_spec: KubeObject = {"type": strategy}
    if strategy == "RollingUpdate":
        strategy_spec["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy_spec,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": name, "image": image}],
                    "terminationGracePeriodSeconds": 30,
                },
            },
            **spec,
        },
    }


@dataclass
class Cluster:
    store: Store
    clock: ManualClock
    deployments: DeploymentController
    replicasets: ReplicaSetController
    healthy: Healthy = always
    requeues: dict[str, float | None] = field(default_factory=dict)

    # -- a fake kubelet --

    def kubelet_step(self, *, finish_terminations: bool = True) -> None:
        """Bind and start new pods (Ready if healthy); remove pods that are terminating."""
        for pod in self.store.list(PODS, NS):
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp"):
                if finish_terminations:
                    self.store.delete(PODS, NS, name, grace_period_seconds=0)
                continue
            if not pod["spec"].get("nodeName"):
                pod["spec"]["nodeName"] = "node-a"
                self.store.update(PODS, pod)
            if pod["status"].get("phase") != "Running":
                self.start(name, ready=self.healthy(pod))

    def start(self, pod_name: str, *, ready: bool) -> None:
        status = {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": rfc3339(self.clock.now()),
                }
            ],
        }
        self.store.mutate(
            PODS, NS, pod_name, lambda pod: pod.__setitem__("status", status), subresource="status"
        )

    # -- the control loop, by hand --

    def reconcile_all(self) -> None:
        for key in self.replicasets.all_keys():
            self.replicasets.reconcile(key)
        for key in self.deployments.all_keys():
            self.requeues[str(key)] = self.deployments.reconcile(key)

    def settle(self, *, finish_terminations: bool = True, rounds: int = 60) -> int:
        for round_number in range(rounds):
            before = self.store.resource_version
            self.kubelet_step(finish_terminations=finish_terminations)
            self.reconcile_all()
            if self.store.resource_version == before:
                return round_number
        raise AssertionError(f"no steady state after {rounds} rounds")

    # -- reading and writing the Deployment --

    def deployment(self, name: str = "web") -> KubeObject:
        return self.store.get(DEPLOYMENTS, NS, name)

    def set_template(
        self, name: str = "web", *, image: str | None = None, template: KubeObject | None = None
    ) -> None:
        d = self.deployment(name)
        if image is not None:
            d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        if template is not None:
            d["spec"]["template"] = template
        self.store.update(DEPLOYMENTS, d)

    def set_replicas(self, replicas: int, name: str = "web") -> None:
        d = self.deployment(name)
        d["spec"]["replicas"] = replicas
        self.store.update(DEPLOYMENTS, d)

    def replica_sets(self) -> dict[str, KubeObject]:
        """By image, for readability: {"nginx:1.24": rs, ...}."""
        return {
            rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
            for rs in self.store.list(REPLICASETS, NS)
        }

    def sizes(self) -> dict[str, int]:
        return {image: rs["spec"]["replicas"] for image, rs in self.replica_sets().items()}

    def active_pods(self) -> list[KubeObject]:
        return [p for p in self.store.list(PODS, NS) if not p["metadata"].get("deletionTimestamp")]

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.store.list("events", NS) if e["reason"] == reason]

    def undo_to(self, image: str) -> None:
        """What `kubectl rollout undo` PATCHes: the RS template minus pod-template-hash."""
        rs_template = self.replica_sets()[image]["spec"]["template"]
        template = {
            "metadata": {
                "creationTimestamp": None,
                "labels": {
                    k: v
                    for k, v in rs_template["metadata"]["labels"].items()
                    if k != POD_TEMPLATE_HASH_LABEL
                },
            },
            "spec": {
                **rs_template["spec"],
                "containers": [{**c, "resources": {}} for c in rs_template["spec"]["containers"]],
            },
        }
        self.set_template(template=template)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    clock = ManualClock()
    store = Store(clock=clock, rng=random.Random(7))
    store.create("namespaces", {"metadata": {"name": NS}})
    settings = ControlPlaneSettings()
    yield Cluster(
        store,
        clock,
        DeploymentController(store, clock, settings),
        ReplicaSetController(store, clock, settings),
    )


def condition(d: KubeObject, kind: str) -> KubeObject:
    return next(c for c in d["status"]["conditions"] if c["type"] == kind)


# ---- a first rollout ----


def test_first_rollout_creates_an_owned_hashed_replicaset(cluster: Cluster) -> None:
    created = cluster.store.create(DEPLOYMENTS, make_deployment())
    cluster.settle()
    d = cluster.deployment()
    (rs,) = cluster.store.list(REPLICASETS, NS)
    template_hash = pod_template_hash(created["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{template_hash}"
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": d["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["spec"]["selector"]["matchLabels"] == {
        "app": "web",
        POD_TEMPLATE_HASH_LABEL: template_hash,
    }
    pods = cluster.store.list(PODS, NS)
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{template_hash}-")
        assert pod["metadata"]["generateName"] == f"web-{template_hash}-"
        assert pod["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == template_hash
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    assert {k: v for k, v in d["status"].items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert cluster.events("ScalingReplicaSet") == [
        f"Scaled up replica set web-{template_hash} from 0 to 3"
    ]
    assert len(cluster.events("SuccessfulCreate")) == 3


def test_status_omits_zero_counters_while_nothing_runs(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=0))
    cluster.settle()
    d = cluster.deployment()
    assert {k: v for k, v in d["status"].items() if k != "conditions"} == {"observedGeneration": 1}
    (rs,) = cluster.store.list(REPLICASETS, NS)
    assert rs["status"] == {"replicas": 0, "observedGeneration": 1}


# ---- rolling update limits ----


@dataclass
class Limits:
    """Checks maxSurge/maxUnavailable after every committed write."""

    store: Store
    max_total: int
    min_available: int
    violations: list[str] = field(default_factory=list)

    def __call__(self, change: Change) -> None:
        if change.resource not in (PODS, REPLICASETS):
            return
        total = sum(rs["spec"]["replicas"] for rs in self.store.list(REPLICASETS, NS))
        available = sum(
            1
            for pod in self.store.list(PODS, NS)
            if not pod["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod["status"].get("conditions", [])
            )
        )
        if total > self.max_total:
            self.violations.append(f"rv {change.resource_version}: {total} pods by RS spec")
        if available < self.min_available:
            self.violations.append(f"rv {change.resource_version}: {available} available")


def test_rollout_stays_within_surge_and_unavailability(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=3, surge=1, unavailable=1))
    cluster.settle()
    limits = Limits(cluster.store, max_total=4, min_available=2)
    cluster.store.add_listener(limits)
    cluster.clock.advance(10)
    cluster.set_template(image="nginx:1.25")
    rounds = cluster.settle()
    assert limits.violations == []
    assert rounds > 2  # it took several steps, each of them checked
    assert cluster.sizes() == {"nginx:1.24": 0, "nginx:1.25": 3}
    d = cluster.deployment()
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert d["status"]["updatedReplicas"] == 3 and d["status"]["availableReplicas"] == 3
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_stalled_rollout_hits_progress_deadline(cluster: Cluster) -> None:
    cluster.healthy = image_is_not_broken
    cluster.store.create(DEPLOYMENTS, make_deployment(progressDeadlineSeconds=600))
    cluster.settle()
    limits = Limits(cluster.store, max_total=4, min_available=2)
    cluster.store.add_listener(limits)
    cluster.clock.advance(10)
    cluster.set_template(image="broken:1")
    cluster.settle()
    assert limits.violations == []
    assert cluster.sizes() == {"nginx:1.24": 2, "broken:1": 2}  # 4 by spec, 2 available
    d = cluster.deployment()
    progressing = condition(d, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    assert condition(d, "Available")["status"] == "True"
    wait = cluster.requeues[str(("default", "web"))]
    assert wait == 601.0  # the deadline from the last progress, plus a second

    cluster.clock.advance(599)
    cluster.reconcile_all()
    assert condition(cluster.deployment(), "Progressing")["status"] == "True"
    cluster.clock.advance(2)
    cluster.reconcile_all()
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")
    assert cluster.sizes() == {"nginx:1.24": 2, "broken:1": 2}  # no automatic rollback
    assert cluster.requeues[str(("default", "web"))] is None


# ---- undo, history ----


def test_undo_reuses_the_old_replicaset_with_revision_max_plus_one(cluster: Cluster) -> None:
    cluster.healthy = image_is_not_broken
    cluster.store.create(DEPLOYMENTS, make_deployment())
    cluster.settle()
    good_name = cluster.replica_sets()["nginx:1.24"]["metadata"]["name"]
    cluster.clock.advance(10)
    cluster.set_template(image="broken:1")
    cluster.settle()

    cluster.clock.advance(10)
    cluster.undo_to("nginx:1.24")
    cluster.settle()
    replica_sets = cluster.replica_sets()
    assert len(replica_sets) == 2
    good = replica_sets["nginx:1.24"]
    assert good["metadata"]["name"] == good_name
    assert good["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert good["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
    assert cluster.sizes() == {"nginx:1.24": 3, "broken:1": 0}
    d = cluster.deployment()
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"

    cluster.clock.advance(10)
    cluster.undo_to("broken:1")  # undo the undo: revision 4, and history kept
    cluster.settle()
    broken = cluster.replica_sets()["broken:1"]
    assert broken["metadata"]["annotations"][REVISION_ANNOTATION] == "4"
    assert broken["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "2"
    assert cluster.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "4"


def test_revision_history_limit_cleans_up_only_once_complete(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(revisionHistoryLimit=1))
    cluster.settle()
    for image in ("nginx:1.25", "nginx:1.26"):
        cluster.clock.advance(10)
        cluster.set_template(image=image)
        cluster.settle()
    assert set(cluster.replica_sets()) == {"nginx:1.25", "nginx:1.26"}

    cluster.clock.advance(10)
    cluster.set_template(image="nginx:1.27")
    cluster.reconcile_all()  # rollout started, not complete: nothing is deleted yet
    assert set(cluster.replica_sets()) == {"nginx:1.25", "nginx:1.26", "nginx:1.27"}
    cluster.settle()
    assert set(cluster.replica_sets()) == {"nginx:1.26", "nginx:1.27"}


# ---- Recreate ----


def test_recreate_waits_for_old_pods_to_be_gone(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(strategy="Recreate"))
    cluster.settle()
    cluster.clock.advance(10)
    cluster.set_template(image="nginx:1.25")
    cluster.settle(finish_terminations=False)
    assert cluster.sizes() == {"nginx:1.24": 0}  # no new RS while old pods terminate
    terminating = cluster.store.list(PODS, NS)
    assert len(terminating) == 3
    assert all(p["metadata"].get("deletionTimestamp") for p in terminating)

    cluster.settle()
    assert cluster.sizes() == {"nginx:1.24": 0, "nginx:1.25": 3}
    assert len(cluster.active_pods()) == 3
    new_rs = cluster.replica_sets()["nginx:1.25"]["metadata"]["name"]
    assert f"Scaled up replica set {new_rs} from 0 to 3" in cluster.events("ScalingReplicaSet")


# ---- scaling ----


def test_scaling_mid_rollout_is_proportional(cluster: Cluster) -> None:
    cluster.healthy = image_is_not_broken
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=10, surge=3, unavailable=2))
    cluster.settle()
    cluster.clock.advance(10)
    cluster.set_template(image="broken:1")
    cluster.settle()
    assert cluster.sizes() == {"nginx:1.24": 8, "broken:1": 5}  # 13 = 10 + surge 3

    cluster.set_replicas(20)
    cluster.deployments.reconcile((NS, "web"))
    assert cluster.sizes() == {"nginx:1.24": 14, "broken:1": 9}  # 23 = 20 + 3, pro rata
    old_name = cluster.replica_sets()["nginx:1.24"]["metadata"]["name"]
    assert f"Scaled up replica set {old_name} from 8 to 14" in cluster.events("ScalingReplicaSet")
    for rs in cluster.replica_sets().values():
        annotations = rs["metadata"]["annotations"]
        assert annotations["deployment.kubernetes.io/desired-replicas"] == "20"
        assert annotations["deployment.kubernetes.io/max-replicas"] == "23"


def test_scale_down_deletes_not_ready_pods_first(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=3))
    cluster.settle()
    doomed = cluster.store.list(PODS, NS)[1]["metadata"]["name"]
    cluster.start(doomed, ready=False)
    cluster.set_replicas(2)
    cluster.settle(finish_terminations=False)
    gone = [
        p["metadata"]["name"]
        for p in cluster.store.list(PODS, NS)
        if p["metadata"].get("deletionTimestamp")
    ]
    assert gone == [doomed]
    assert cluster.events("SuccessfulDelete") == [f"Deleted pod: {doomed}"]


# ---- pods come and go ----


def test_deleted_pod_is_replaced_while_it_terminates(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=3))
    cluster.settle()
    victim = cluster.store.list(PODS, NS)[0]["metadata"]["name"]
    cluster.store.delete(PODS, NS, victim)  # graceful: 30 s to go
    assert cluster.store.get(PODS, NS, victim)["metadata"]["deletionTimestamp"]
    rs_key = next(
        iter(
            cluster.replicasets.keys_for(
                Change(0, PODS, "MODIFIED", cluster.store.get(PODS, NS, victim), None)
            )
        )
    )
    cluster.replicasets.reconcile(rs_key)
    pods = cluster.store.list(PODS, NS)
    assert len(pods) == 4  # the victim still exists...
    assert len(cluster.active_pods()) == 3  # ...and a replacement is already there
    (rs,) = cluster.store.list(REPLICASETS, NS)
    assert rs["status"]["replicas"] == 3


def test_min_ready_seconds_delays_available_and_requeues(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=2, minReadySeconds=10))
    cluster.settle()
    (rs,) = cluster.store.list(REPLICASETS, NS)
    assert rs["spec"]["minReadySeconds"] == 10
    assert rs["status"].get("readyReplicas") == 2
    assert "availableReplicas" not in rs["status"]
    assert cluster.replicasets.reconcile((NS, rs["metadata"]["name"])) == 10.0
    cluster.clock.advance(10)
    cluster.settle()
    (rs,) = cluster.store.list(REPLICASETS, NS)
    assert rs["status"]["availableReplicas"] == 2
    assert cluster.deployment()["status"]["availableReplicas"] == 2


# ---- paused, adoption, collisions ----


def test_paused_deployment_does_not_roll_out_until_resumed(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(progressDeadlineSeconds=600))
    cluster.settle()
    d = cluster.deployment()
    d["spec"]["paused"] = True
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    cluster.store.update(DEPLOYMENTS, d)
    cluster.settle()
    assert set(cluster.replica_sets()) == {"nginx:1.24"}
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")

    d = cluster.deployment()
    d["spec"]["paused"] = False
    cluster.store.update(DEPLOYMENTS, d)
    cluster.settle()
    assert cluster.sizes() == {"nginx:1.24": 0, "nginx:1.25": 3}
    assert condition(cluster.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_matching_orphan_replicaset_is_adopted_not_duplicated(cluster: Cluster) -> None:
    d = make_deployment(replicas=2)
    orphan_template = {
        **d["spec"]["template"],
        "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "legacy"}},
    }
    cluster.store.create(
        REPLICASETS,
        {
            "metadata": {
                "name": "web-legacy",
                "namespace": NS,
                "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "legacy"},
            },
            "spec": {
                "replicas": 2,
                "template": orphan_template,
                "selector": {"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: "legacy"}},
            },
        },
    )
    created = cluster.store.create(DEPLOYMENTS, d)
    cluster.settle()
    (rs,) = cluster.store.list(REPLICASETS, NS)
    assert rs["metadata"]["name"] == "web-legacy"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert rs["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    assert cluster.deployment()["status"]["availableReplicas"] == 2


def test_hash_collision_bumps_collision_count(cluster: Cluster) -> None:
    d = make_deployment(replicas=1)
    created = cluster.store.create(DEPLOYMENTS, d)
    squatter_name = f"web-{pod_template_hash(created['spec']['template'])}"
    cluster.store.create(
        REPLICASETS,
        {
            "metadata": {"name": squatter_name, "namespace": NS, "labels": {"app": "other"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "other"}},
                "template": {
                    "metadata": {"labels": {"app": "other"}},
                    "spec": {"containers": [{"name": "o", "image": "o"}]},
                },
            },
        },
    )
    cluster.settle()
    assert cluster.deployment()["status"]["collisionCount"] == 1
    owned = [
        rs for rs in cluster.store.list(REPLICASETS, NS) if rs["metadata"]["name"] != squatter_name
    ]
    (rs,) = owned
    assert rs["metadata"]["name"] == f"web-{pod_template_hash(created['spec']['template'], 1)}"
    assert rs["status"]["replicas"] == 1


# ---- keys ----


def test_keys_follow_owner_references(cluster: Cluster) -> None:
    cluster.store.create(DEPLOYMENTS, make_deployment(replicas=1))
    cluster.settle()
    (rs,) = cluster.store.list(REPLICASETS, NS)
    (pod,) = cluster.store.list(PODS, NS)
    rs_change = Change(1, REPLICASETS, "MODIFIED", rs, None)
    pod_change = Change(2, PODS, "MODIFIED", pod, None)
    assert list(cluster.deployments.keys_for(rs_change)) == [(NS, "web")]
    assert list(cluster.replicasets.keys_for(pod_change)) == [(NS, rs["metadata"]["name"])]
    assert list(cluster.deployments.keys_for(pod_change)) == []  # only deletions matter
    deleted = Change(3, PODS, "DELETED", pod, None)
    assert list(cluster.deployments.keys_for(deleted)) == [(NS, "web")]


def test_both_implement_the_controller_protocol(cluster: Cluster) -> None:
    controllers: tuple[Controller, ...] = (cluster.deployments, cluster.replicasets)
    assert [c.name for c in controllers] == ["deployment", "replicaset"]
