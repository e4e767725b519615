"""Jobs, ReplicationControllers and APIServices: pure decisions by table, controllers on a Store."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sandbox.kube.clock import ManualClock, parse_time, rfc3339
from sandbox.kube.controllers.apiservice import APISERVICES, ApiServiceController, availability
from sandbox.kube.controllers.job import JOBS, JobController, backoff_seconds, decide
from sandbox.kube.controllers.replicationcontroller import (
    REPLICATIONCONTROLLERS,
    ReplicationControllerController,
)
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store

KubeObject = dict[str, Any]
NOW = parse_time("2026-01-01T00:10:00Z")


def make_job(
    completions: int | None = 1,
    parallelism: int = 1,
    backoff_limit: int = 6,
    restart: str = "Never",
    status: KubeObject | None = None,
    **spec: Any,
) -> KubeObject:
    body: KubeObject = {
        "metadata": {"name": "j", "generation": 1},
        "spec": {
            "parallelism": parallelism,
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": restart}},
            **spec,
        },
        "status": status or {"startTime": "2026-01-01T00:00:00Z"},
    }
    if completions is not None:
        body["spec"]["completions"] = completions
    return body


def make_pod(
    phase: str = "Running",
    ready: bool = False,
    finished: datetime | None = None,
    deleting: bool = False,
    restarts: int = 0,
) -> KubeObject:
    metadata: KubeObject = {}
    if deleting:
        metadata["deletionTimestamp"] = rfc3339(NOW)
    state: KubeObject = {"running": {}}
    if finished is not None:
        state = {"terminated": {"finishedAt": rfc3339(finished)}}
    status: KubeObject = {
        "phase": phase,
        "containerStatuses": [{"state": state, "restartCount": restarts}],
    }
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {"metadata": metadata, "status": status}


def conditions(status: KubeObject) -> list[tuple[str, str]]:
    return [(c["type"], c["reason"]) for c in status.get("conditions") or []]


def succeeded(at: int = 60) -> KubeObject:
    return make_pod("Succeeded", finished=NOW - timedelta(seconds=at))


def failed(at: int = 60) -> KubeObject:
    return make_pod("Failed", finished=NOW - timedelta(seconds=at))


@pytest.mark.parametrize(
    ("job", "pods", "create", "delete", "delete_active", "wanted_conditions"),
    [
        pytest.param(make_job(), [], 1, 0, False, [], id="first-pod"),
        pytest.param(make_job(3, 2), [succeeded()], 2, 0, False, [], id="parallel-capped"),
        pytest.param(make_job(3, 5), [succeeded()], 2, 0, False, [], id="remaining-completions"),
        pytest.param(
            make_job(),
            [succeeded()],
            0,
            0,
            False,
            [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")],
            id="complete",
        ),
        pytest.param(make_job(2, 2), [succeeded(), make_pod()], 0, 0, False, [], id="one-left"),
        pytest.param(
            make_job(1, 2), [succeeded(), make_pod()], 0, 1, False, [], id="surplus-deleted"
        ),
        pytest.param(make_job(), [failed(5)], 0, 0, False, [], id="backoff-waits"),
        pytest.param(make_job(), [failed(11)], 1, 0, False, [], id="backoff-over"),
        pytest.param(
            make_job(backoff_limit=1),
            [failed(100), failed(50), make_pod()],
            0,
            0,
            True,
            [("FailureTarget", "BackoffLimitExceeded")],
            id="backoff-limit-kills-active",
        ),
        pytest.param(
            make_job(backoff_limit=1),
            [failed(100), failed(50)],
            0,
            0,
            False,
            [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")],
            id="failed",
        ),
        pytest.param(
            make_job(backoff_limit=0),
            [failed()],
            0,
            0,
            False,
            [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")],
            id="limit-zero-first-failure",
        ),
        pytest.param(
            make_job(backoff_limit=2, restart="OnFailure"),
            [make_pod(restarts=2)],
            0,
            0,
            True,
            [("FailureTarget", "BackoffLimitExceeded")],
            id="on-failure-restarts-count",
        ),
        pytest.param(
            make_job(activeDeadlineSeconds=600),
            [make_pod()],
            0,
            0,
            True,
            [("FailureTarget", "DeadlineExceeded")],
            id="deadline",
        ),
        pytest.param(
            make_job(None, 2), [succeeded(), make_pod()], 0, 0, False, [], id="work-queue-waits"
        ),
        pytest.param(
            make_job(None, 2),
            [succeeded()],
            0,
            0,
            False,
            [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")],
            id="work-queue-done",
        ),
        pytest.param(
            make_job(),
            [succeeded(), make_pod(deleting=True)],
            0,
            0,
            False,
            [("SuccessCriteriaMet", "CompletionsReached")],
            id="complete-waits-for-terminating",
        ),
        pytest.param(make_job(suspend=True), [], 0, 0, False, [], id="suspended"),
    ],
)
def test_job_decisions(
    job: KubeObject,
    pods: list[KubeObject],
    create: int,
    delete: int,
    delete_active: bool,
    wanted_conditions: list[tuple[str, str]],
) -> None:
    decision = decide(job, pods, NOW)
    assert (decision.create, decision.delete, decision.delete_active) == (
        create,
        delete,
        delete_active,
    )
    assert decision.status is not None
    assert conditions(decision.status) == wanted_conditions


def test_job_status_counts_and_keeps_counters_monotonic() -> None:
    job = make_job(3, 2, status={"startTime": "2026-01-01T00:00:00Z", "succeeded": 2})
    status = decide(job, [succeeded(), make_pod(ready=True), failed(100)], NOW).status
    assert status == {
        "startTime": "2026-01-01T00:00:00Z",
        "active": 1,
        "succeeded": 2,
        "failed": 1,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "ready": 1,
    }


def test_backoff_waits_report_when_to_look_again() -> None:
    assert decide(make_job(), [failed(4)], NOW).requeue_after == pytest.approx(6.0)
    assert [backoff_seconds(n) for n in (1, 3, 7)] == [10.0, 40.0, 360.0]


# ---- controllers on a real Store ----


def world() -> tuple[Store, ManualClock]:
    clock = ManualClock(NOW)
    store = Store(clock)
    store.create("namespaces", {"metadata": {"name": "default"}})
    return store, clock


TEMPLATE: KubeObject = {
    "metadata": {"labels": {"app": "w"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


def test_job_creation_generates_the_selector_and_labels_and_validates_restart_policy() -> None:
    store, _ = world()
    job = store.create(
        JOBS,
        {
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {
                "template": {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}
            },
        },
    )
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "pi"
    assert labels["controller-uid"] == uid
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (1, 1)
    assert job["spec"]["backoffLimit"] == 6
    with pytest.raises(ApiError) as invalid:
        store.create(
            JOBS,
            {"metadata": {"name": "bad", "namespace": "default"}, "spec": {"template": TEMPLATE}},
        )
    assert invalid.value.code == 422
    assert 'Unsupported value: "Always"' in invalid.value.message


def test_job_controller_runs_a_job_to_complete() -> None:
    store, clock = world()
    template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}
    store.create(
        JOBS,
        {
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"completions": 2, "template": template},
        },
    )
    controller = JobController(store, clock, ControlPlaneSettings())
    controller.reconcile(("default", "pi"))
    pods = store.list("pods", "default")
    assert len(pods) == 1
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pods[0]["metadata"]["labels"]["job-name"] == "pi"
    for _ in range(2):
        # the pod still running (the list is ordered by name, and names are random)
        [pod] = [
            p
            for p in store.list("pods", "default")
            if (p.get("status") or {}).get("phase") != "Succeeded"
        ]
        pod["status"] = {"phase": "Succeeded"}
        store.update("pods", pod, subresource="status")
        clock.advance(1)
        controller.reconcile(("default", "pi"))
    job = store.get(JOBS, "default", "pi")
    assert job["status"]["succeeded"] == 2
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert job["status"]["completionTime"] == rfc3339(clock.now())
    assert len(store.list("pods", "default")) == 2
    assert [e["reason"] for e in store.list("events", "default")].count("Completed") == 1


def test_replication_controller_keeps_replicas_with_a_map_selector() -> None:
    store, clock = world()
    store.create(
        REPLICATIONCONTROLLERS,
        {
            "metadata": {"name": "rc", "namespace": "default"},
            "spec": {"replicas": 3, "template": TEMPLATE},
        },
    )
    rc = store.get(REPLICATIONCONTROLLERS, "default", "rc")
    assert rc["spec"]["selector"] == {"app": "w"}  # defaulted from the template labels
    controller = ReplicationControllerController(store, clock, ControlPlaneSettings())
    controller.reconcile(("default", "rc"))
    pods = store.list("pods", "default")
    assert len(pods) == 3
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicationController"}
    status = store.get(REPLICATIONCONTROLLERS, "default", "rc")["status"]
    assert (status["replicas"], status["observedGeneration"]) == (3, 1)
    rc = store.get(REPLICATIONCONTROLLERS, "default", "rc")
    rc["spec"]["replicas"] = 1
    store.update(REPLICATIONCONTROLLERS, rc)
    controller.reconcile(("default", "rc"))
    active = [
        p for p in store.list("pods", "default") if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(active) == 1


def test_replication_controller_validation() -> None:
    store, _ = world()
    body = {
        "metadata": {"name": "rc", "namespace": "default"},
        "spec": {"selector": {"app": "other"}, "template": TEMPLATE},
    }
    with pytest.raises(ApiError, match="does not match template"):
        store.create(REPLICATIONCONTROLLERS, body)
    never = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}
    with pytest.raises(ApiError, match='supported values: "Always"'):
        store.create(REPLICATIONCONTROLLERS, {**body, "spec": {"template": never}})


@pytest.mark.parametrize(
    ("service", "endpoints", "expected"),
    [
        pytest.param(None, None, ("False", "ServiceNotFound"), id="no-service"),
        pytest.param({"spec": {}}, None, ("False", "MissingEndpoints"), id="no-endpoints"),
        pytest.param(
            {"spec": {}},
            {"subsets": [{"notReadyAddresses": [{"ip": "1"}]}]},
            ("False", "MissingEndpoints"),
            id="not-ready-only",
        ),
        pytest.param(
            {"spec": {"clusterIP": "127.0.4.9"}},
            {"subsets": [{"addresses": [{"ip": "127.0.2.1"}]}]},
            ("False", "FailedDiscoveryCheck"),
            id="not-proxied",
        ),
    ],
)
def test_apiservice_availability(
    service: KubeObject | None, endpoints: KubeObject | None, expected: tuple[str, str]
) -> None:
    apiservice = {
        "spec": {"group": "m", "version": "v1", "service": {"name": "s", "namespace": "n"}}
    }
    assert availability(apiservice, service, endpoints)[:2] == expected


def test_apiservice_controller_writes_available() -> None:
    store, clock = world()
    for name, service in (
        ("v1.local.example.com", None),
        ("v1beta1.metrics.example.com", {"name": "metrics", "namespace": "default", "port": 443}),
    ):
        group = name.split(".", 1)[1]
        spec: KubeObject = {"group": group, "version": name.split(".")[0], "service": service}
        if service is not None:
            spec.update(groupPriorityMinimum=100, versionPriority=10)
        store.create(APISERVICES, {"metadata": {"name": name}, "spec": spec})
    controller = ApiServiceController(store, clock, ControlPlaneSettings())
    for key in controller.all_keys():
        controller.reconcile(key)
    local = store.get(APISERVICES, "", "v1.local.example.com")["status"]["conditions"]
    remote = store.get(APISERVICES, "", "v1beta1.metrics.example.com")["status"]["conditions"]
    assert [(c["status"], c["reason"]) for c in local] == [("True", "Local")]
    assert [(c["status"], c["reason"]) for c in remote] == [("False", "ServiceNotFound")]
    with pytest.raises(ApiError, match=r"metadata\.name: Invalid value"):
        store.create(
            APISERVICES, {"metadata": {"name": "x"}, "spec": {"group": "g", "version": "v1"}}
        )
