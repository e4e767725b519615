"""The HPA controller against the real Store, a ManualClock and a MetricsStore
filled by the test (no kubelets, no deployment controller: pods are created by
hand, so the counts are exactly what the calculation predicts)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock, rfc3339
from sandbox.kube.controllers.hpa.controller import HPA_RESOURCE, HorizontalPodAutoscalerController
from sandbox.kube.controllers.hpa.conversion import metric_spec, pod_snapshot, quantity_or_none
from sandbox.kube.controllers.hpa.model import MetricSpec
from sandbox.kube.metrics import ContainerUsage, MetricsStore, PodSample
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import ADDED, Change, Store

KubeObject = dict[str, Any]
NAMESPACE = "default"
KEY = (NAMESPACE, "web")
SETTINGS = ControlPlaneSettings()


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.store = Store(self.clock)
        self.metrics = MetricsStore()
        self.controller = HorizontalPodAutoscalerController(
            self.store, self.clock, SETTINGS, self.metrics
        )
        self.store.create("namespaces", {"metadata": {"name": NAMESPACE}})
        self.pod_count = 0

    def deployment(self, replicas: int = 3, cpu: str | None = "500m") -> None:
        resources = {"requests": {"cpu": cpu}} if cpu else {}
        self.store.create(
            "apps/deployments",
            {
                "metadata": {"name": "web", "namespace": NAMESPACE},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {"name": "app", "image": "web:1", "resources": resources}
                            ]
                        },
                    },
                },
            },
        )

    def hpa(self, minimum: int = 1, maximum: int = 10, target: str = "Deployment") -> None:
        self.store.create(
            HPA_RESOURCE,
            {
                "metadata": {"name": "web", "namespace": NAMESPACE},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target, "name": "web"},
                    "minReplicas": minimum,
                    "maxReplicas": maximum,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 70},
                            },
                        }
                    ],
                },
            },
        )

    def ready_pods(self, count: int, cpu_millicores: int = 700, cpu: str | None = "500m") -> None:
        """Running, Ready pods started 10 min ago, each with a fresh usage sample."""
        long_ago = rfc3339(self.clock.now() - timedelta(minutes=10))
        for _ in range(count):
            name = f"web-{self.pod_count}"
            self.pod_count += 1
            resources = {"requests": {"cpu": cpu}} if cpu else {}
            self.store.create(
                "pods",
                {
                    "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "app", "image": "web:1", "resources": resources}]
                    },
                },
            )
            pod = self.store.get("pods", NAMESPACE, name)
            pod["status"] = {
                "phase": "Running",
                "startTime": long_ago,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": long_ago}],
            }
            self.store.update("pods", pod, subresource="status")
            self.usage(name, cpu_millicores)

    def usage(self, name: str, cpu_millicores: int) -> None:
        self.metrics.record_pod(
            PodSample(
                NAMESPACE,
                name,
                self.clock.now(),
                15.0,
                (ContainerUsage("app", cpu_millicores, 64 * 2**20),),
            )
        )

    def replicas(self) -> int:
        return int(self.store.get("apps/deployments", NAMESPACE, "web")["spec"]["replicas"])

    def status(self) -> KubeObject:
        status: KubeObject = self.store.get(HPA_RESOURCE, NAMESPACE, "web")["status"]
        return status

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"]) for c in self.status()["conditions"]}

    def events(self) -> list[tuple[str, str, str]]:
        return sorted((e["type"], e["reason"], e["message"]) for e in self.store.list("events"))


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_seed_scale_up_to_the_predicted_count(harness: Harness) -> None:
    harness.deployment(3)
    harness.ready_pods(3, cpu_millicores=700)  # 140 % of 500m: ratio 140 / 70 = 2
    harness.hpa(minimum=1, maximum=10)

    assert harness.controller.reconcile(KEY) == SETTINGS.hpa_sync_period_seconds

    assert harness.replicas() == 6  # ceil(2.0 * 3)
    status = harness.status()
    now = rfc3339(harness.clock.now())
    assert status["currentReplicas"] == 3
    assert status["desiredReplicas"] == 6
    assert status["lastScaleTime"] == now
    assert status["currentMetrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 140, "averageValue": "700m"},
            },
        }
    ]
    assert harness.conditions() == {
        "AbleToScale": ("True", "SucceededRescale"),
        "ScalingActive": ("True", "ValidMetricFound"),
        "ScalingLimited": ("False", "DesiredWithinRange"),
    }
    assert all(c["lastTransitionTime"] == now for c in status["conditions"])
    assert harness.events() == [
        (
            "Normal",
            "SuccessfulRescale",
            "New size: 6; reason: cpu resource utilization (percentage of request) above target",
        )
    ]


def test_never_above_max_replicas(harness: Harness) -> None:
    harness.deployment(3)
    harness.ready_pods(3, cpu_millicores=700)
    harness.hpa(minimum=1, maximum=5)

    harness.controller.reconcile(KEY)

    assert harness.replicas() == 5
    assert harness.conditions()["ScalingLimited"] == ("True", "TooManyReplicas")


def test_syncs_only_every_period_and_keeps_transition_times(harness: Harness) -> None:
    harness.deployment(3)
    harness.ready_pods(3, cpu_millicores=700)
    harness.hpa(minimum=1, maximum=10)
    harness.controller.reconcile(KEY)
    first = {c["type"]: c["lastTransitionTime"] for c in harness.status()["conditions"]}

    harness.clock.advance(5)
    harness.ready_pods(3, cpu_millicores=700)  # the new pods are hot too
    assert harness.controller.reconcile(KEY) == pytest.approx(10.0)
    assert harness.replicas() == 6  # not due yet: nothing read, nothing written

    harness.clock.advance(10)
    assert harness.controller.reconcile(KEY) == SETTINGS.hpa_sync_period_seconds
    assert harness.replicas() == 10  # ceil(2 * 6) = 12, legacy cap 12, clamped to max 10
    assert harness.status()["currentReplicas"] == 6
    assert harness.conditions()["ScalingLimited"] == ("True", "TooManyReplicas")
    again = {c["type"]: c["lastTransitionTime"] for c in harness.status()["conditions"]}
    assert again["AbleToScale"] == first["AbleToScale"]  # still True: time kept
    assert again["ScalingLimited"] != first["ScalingLimited"]  # False -> True

    harness.clock.advance(15)
    harness.ready_pods(4, cpu_millicores=700)
    harness.controller.reconcile(KEY)
    assert harness.replicas() == 10  # at max: stays there
    assert harness.status()["desiredReplicas"] == 10


def test_a_spec_change_syncs_at_once(harness: Harness) -> None:
    harness.deployment(3)
    harness.ready_pods(3, cpu_millicores=700)
    harness.hpa(minimum=1, maximum=4)
    harness.controller.reconcile(KEY)
    assert harness.replicas() == 4

    hpa = harness.store.get(HPA_RESOURCE, NAMESPACE, "web")
    hpa["spec"]["maxReplicas"] = 10
    harness.store.update(HPA_RESOURCE, hpa)
    harness.clock.advance(1)
    harness.controller.reconcile(KEY)
    assert harness.replicas() == 6  # ceil(2.0 * 3 ready pods with metrics), not 2 * current


def test_missing_request_invalidates_the_metric(harness: Harness) -> None:
    harness.deployment(3, cpu=None)
    harness.ready_pods(3, cpu_millicores=700, cpu=None)
    harness.hpa()

    harness.controller.reconcile(KEY)

    assert harness.replicas() == 3
    assert harness.conditions()["ScalingActive"] == ("False", "FailedGetResourceMetric")
    status = harness.status()
    assert status["currentReplicas"] == 3
    assert status["desiredReplicas"] == 0
    assert status["currentMetrics"] == [{"type": ""}]
    reasons = [reason for _, reason, _ in harness.events()]
    assert reasons == ["FailedComputeMetricsReplicas", "FailedGetResourceMetric"]


def test_missing_target_is_failed_get_scale(harness: Harness) -> None:
    harness.hpa()

    harness.controller.reconcile(KEY)

    assert harness.conditions() == {"AbleToScale": ("False", "FailedGetScale")}
    assert harness.status()["desiredReplicas"] == 0
    assert harness.events() == [("Warning", "FailedGetScale", 'deployments.apps "web" not found')]


def test_unknown_target_kind_is_failed_get_scale(harness: Harness) -> None:
    harness.hpa(target="Widget")

    harness.controller.reconcile(KEY)

    assert harness.events() == [
        ("Warning", "FailedGetScale", 'no matches for kind "Widget" in group "apps"')
    ]


def test_zero_replicas_disable_scaling(harness: Harness) -> None:
    harness.deployment(0)
    harness.hpa()

    harness.controller.reconcile(KEY)

    assert harness.replicas() == 0
    assert harness.conditions()["ScalingActive"] == ("False", "ScalingDisabled")
    assert "currentReplicas" not in harness.status()  # omitempty
    assert harness.status()["currentMetrics"] is None


def test_deleted_hpa_is_forgotten(harness: Harness) -> None:
    harness.deployment(3)
    harness.ready_pods(3)
    harness.hpa()
    harness.controller.reconcile(KEY)
    harness.store.delete(HPA_RESOURCE, NAMESPACE, "web")

    assert harness.controller.reconcile(KEY) is None
    assert list(harness.controller.all_keys()) == []


def test_keys_come_from_hpa_changes_only(harness: Harness) -> None:
    hpa = {"metadata": {"name": "web", "namespace": NAMESPACE}}
    pod = {"metadata": {"name": "web-0", "namespace": NAMESPACE}}
    assert list(harness.controller.keys_for(Change(1, HPA_RESOURCE, ADDED, hpa, None))) == [KEY]
    assert list(harness.controller.keys_for(Change(2, "pods", ADDED, pod, None))) == []


# ---- JSON conversions ----


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("500m", Decimal("0.5"), id="milli"),
        pytest.param(2, Decimal(2), id="json-number"),
        pytest.param("bogus", None, id="no-quantity"),
        pytest.param("1e", None, id="bad-suffix"),
        pytest.param(True, None, id="json-bool"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_a_spec_value_that_is_no_quantity_reads_as_none(
    value: object, expected: Decimal | None
) -> None:
    assert quantity_or_none(value) == expected


def test_pod_requests_fall_back_to_limits() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "app", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "initContainers": [
                {
                    "name": "side",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m"}},
                },
                {"name": "init", "resources": {}},
            ],
        },
        "status": {"phase": "Running"},
    }
    snapshot = pod_snapshot(pod)
    assert [(c.name, dict(c.requests_milli)) for c in snapshot.containers] == [
        ("app", {"cpu": 1000, "memory": 2**30 * 1000}),
        ("side", {"cpu": 100}),
    ]
    assert snapshot.ready is None


def test_metric_spec_reads_average_value_targets() -> None:
    entry = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "256Mi"}},
    }
    assert metric_spec(entry) == MetricSpec(
        "Resource", "memory", target_type="AverageValue", average_value_milli=256 * 2**20 * 1000
    )
