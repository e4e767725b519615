"""The Job controller (batch/v1, NonIndexed): run pods to `completions`, retry to `backoffLimit`.

After `pkg/controller/job/job_controller.go` as of 1.32 (JobManagedBy and
JobPodReplacementPolicy on): a finishing Job first gets the interim condition
(`SuccessCriteriaMet` / `FailureTarget`), its active pods are deleted, and the
terminal condition (`Complete` / `Failed`) follows once no pod is terminating.
`status.ready` and `status.terminating` are always written; the other counters
are omitempty. Failed pods are replaced after 10 s doubling per consecutive
failure, capped at 6 minutes (the Job documentation's back-off). With
restartPolicy OnFailure, container restarts of running pods count toward
`backoffLimit` (`pastBackoffLimitOnFailure`).

Not modelled: Indexed completion mode, podFailurePolicy, successPolicy, suspend's
pod deletion, TTL, and the job-tracking finalizer: `succeeded`/`failed` never
decrease, and pods removed before the controller saw them finish are not
counted.

`decide` is the whole decision (plain data in and out); `JobController` only
reads, calls it and writes.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.kube.clock import Clock, parse_time, rfc3339
from sandbox.kube.controllers.replicaset_util import (
    controller_ref,
    is_controlled_by,
    pod_from_template,
)
from sandbox.kube.controllers.runtime import namespaced_key, object_key
from sandbox.kube.errors import ApiError
from sandbox.kube.podutil import is_pod_ready
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]

JOBS = "batch/jobs"
PODS = "pods"
COMPONENT = "job-controller"
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 360.0
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"


@dataclass(frozen=True)
class PodCounts:
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int = 0
    restarts: int = 0  # container restarts of Pending/Running pods (OnFailure back-off)
    failures_since_success: int = 0
    last_failure: datetime | None = None


def _finished_at(pod: Mapping[str, Any]) -> datetime | None:
    times = [
        parse_time(state["terminated"]["finishedAt"])
        for status in (pod.get("status") or {}).get("containerStatuses") or []
        for state in [status.get("state") or {}]
        if (state.get("terminated") or {}).get("finishedAt")
    ]
    return max(times) if times else None


def count_pods(pods: Iterable[Mapping[str, Any]]) -> PodCounts:
    """Counts over the Job's own pods.

    >>> count_pods([{"metadata": {}, "status": {"phase": "Succeeded"}},
    ...             {"metadata": {}, "status": {"phase": "Running"}}]).active
    1
    """
    active = ready = succeeded = failed = terminating = restarts = 0
    last_success: datetime | None = None
    failures: list[datetime | None] = []
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        deleting = (pod.get("metadata") or {}).get("deletionTimestamp") is not None
        if phase == "Succeeded":
            succeeded += 1
            finished = _finished_at(pod)
            if finished is not None and (last_success is None or finished > last_success):
                last_success = finished
        elif phase == "Failed":
            failed += 1
            failures.append(_finished_at(pod))
        elif deleting:
            terminating += 1
        else:
            active += 1
            ready += 1 if is_pod_ready(pod) else 0
            restarts += sum(
                int(s.get("restartCount", 0))
                for key in ("initContainerStatuses", "containerStatuses")
                for s in (pod.get("status") or {}).get(key) or []
            )
    recent = [t for t in failures if last_success is None or t is None or t > last_success]
    known = [t for t in recent if t is not None]
    return PodCounts(
        active,
        ready,
        succeeded,
        failed,
        terminating,
        restarts,
        len(recent),
        max(known) if known else None,
    )


@dataclass(frozen=True)
class JobDecision:
    create: int = 0
    delete_active: bool = False  # the Job is finishing: every active pod goes
    delete: int = 0  # surplus active pods (parallelism lowered)
    status: KubeObject | None = None
    requeue_after: float | None = None


def backoff_seconds(failures: int) -> float:
    """The delay before replacing a failed pod: 0, then 10 s doubling, capped at 6 min.

    >>> [backoff_seconds(n) for n in (0, 1, 2, 3, 10)]
    [0.0, 10.0, 20.0, 40.0, 360.0]
    """
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_BASE_SECONDS * 2.0 ** (failures - 1), BACKOFF_MAX_SECONDS))


def _condition(kind: str, reason: str, message: str, now: datetime) -> KubeObject:
    moment = rfc3339(now)
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": moment,
        "lastTransitionTime": moment,
        "reason": reason,
        "message": message,
    }


def _has(conditions: Sequence[Mapping[str, Any]], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _failure(
    spec: Mapping[str, Any], counts: PodCounts, failed: int, start: str | None, now: datetime
) -> tuple[str, str] | None:
    limit = int(spec.get("backoffLimit", 6))
    template_spec = (spec.get("template") or {}).get("spec") or {}
    on_failure = template_spec.get("restartPolicy") == "OnFailure"
    restarts_exceeded = on_failure and (
        counts.restarts > 0 if limit == 0 else counts.restarts >= limit
    )
    if failed > limit or restarts_exceeded:
        return "BackoffLimitExceeded", BACKOFF_MESSAGE
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and start and (now - parse_time(start)).total_seconds() >= deadline:
        return "DeadlineExceeded", DEADLINE_MESSAGE
    return None


@dataclass(frozen=True)
class _Progress:
    """The Job's counters after this sync's observations (never decreasing)."""

    counts: PodCounts
    succeeded: int
    failed: int
    start: str | None
    want: int  # active pods wanted
    complete: bool


def _progress(
    spec: Mapping[str, Any], old: Mapping[str, Any], counts: PodCounts, now: datetime
) -> _Progress:
    succeeded = max(int(old.get("succeeded", 0)), counts.succeeded)
    failed = max(int(old.get("failed", 0)), counts.failed)
    start = old.get("startTime") or (None if spec.get("suspend") else rfc3339(now))
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1))
    if completions is None:  # a work queue: done once one pod succeeded and none runs
        complete = succeeded > 0 and counts.active == 0
        want = counts.active if succeeded > 0 else parallelism
    else:
        complete = succeeded >= int(completions) and counts.active == 0
        want = max(0, min(parallelism, int(completions) - succeeded))
    return _Progress(counts, succeeded, failed, start, want, complete)


def _interim_conditions(
    spec: Mapping[str, Any], conditions: list[KubeObject], progress: _Progress, now: datetime
) -> None:
    """Add FailureTarget or SuccessCriteriaMet when the Job has just reached an end."""
    if _has(conditions, "Complete") or _has(conditions, "Failed"):
        return
    if not _has(conditions, "FailureTarget"):
        failure = _failure(spec, progress.counts, progress.failed, progress.start, now)
        if failure is not None:
            conditions.append(_condition("FailureTarget", *failure, now))
            return
    if (
        progress.complete
        and not _has(conditions, "FailureTarget")
        and not _has(conditions, "SuccessCriteriaMet")
    ):
        conditions.append(
            _condition("SuccessCriteriaMet", "CompletionsReached", COMPLETE_MESSAGE, now)
        )


def _pod_changes(
    spec: Mapping[str, Any], progress: _Progress, ending: bool, now: datetime
) -> tuple[int, int, bool, float | None]:
    """`(create, delete, delete_active, requeue_after)` for the active pods."""
    counts = progress.counts
    if ending:
        return 0, 0, counts.active > 0, None
    want = 0 if spec.get("suspend") else progress.want
    if counts.active > want:
        return 0, counts.active - want, False, None
    if counts.active == want:
        return 0, 0, False, None
    wait = backoff_seconds(counts.failures_since_success)
    if counts.last_failure is not None:
        wait -= (now - counts.last_failure).total_seconds()
    if wait > 0:
        return 0, 0, False, wait
    return want - counts.active, 0, False, None


def decide(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime) -> JobDecision:
    """What one sync does: pods to create or delete, the status, when to look again.

    >>> job = {"metadata": {"generation": 1}, "spec": {"completions": 2, "parallelism": 2,
    ...        "backoffLimit": 6, "template": {"spec": {"restartPolicy": "Never"}}}}
    >>> decision = decide(job, [], parse_time("2026-01-01T00:00:00Z"))
    >>> decision.create, decision.status["startTime"]
    (2, '2026-01-01T00:00:00Z')
    """
    spec = job.get("spec") or {}
    old = dict(job.get("status") or {})
    conditions: list[KubeObject] = copy.deepcopy(list(old.get("conditions") or []))
    progress = _progress(spec, old, count_pods(pods), now)
    counts = progress.counts
    finished = _has(conditions, "Complete") or _has(conditions, "Failed")
    _interim_conditions(spec, conditions, progress, now)
    failing, succeeding = _has(conditions, "FailureTarget"), _has(conditions, "SuccessCriteriaMet")
    ending = finished or failing or succeeding
    create, delete, delete_active, requeue = _pod_changes(spec, progress, ending, now)
    completion_time = old.get("completionTime")
    still_terminating = counts.terminating + (counts.active if delete_active else 0)
    if not finished and ending:
        if still_terminating:
            requeue = 1.0  # the terminal condition waits for the pods to be gone
        elif failing:
            target = next(c for c in conditions if c.get("type") == "FailureTarget")
            conditions.append(_condition("Failed", target["reason"], target["message"], now))
        else:
            conditions.append(_condition("Complete", "CompletionsReached", COMPLETE_MESSAGE, now))
            completion_time = rfc3339(now)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and progress.start and not ending:
        remaining = float(deadline) - (now - parse_time(progress.start)).total_seconds()
        requeue = remaining if requeue is None else min(requeue, remaining)

    status: KubeObject = {}
    if conditions:
        status["conditions"] = conditions
    if progress.start:
        status["startTime"] = progress.start
    if completion_time:
        status["completionTime"] = completion_time
    active = 0 if delete_active else counts.active - delete + create
    for key, value in (
        ("active", active),
        ("succeeded", progress.succeeded),
        ("failed", progress.failed),
    ):
        if value:
            status[key] = value
    status["terminating"] = counts.terminating
    status["uncountedTerminatedPods"] = {}
    status["ready"] = 0 if delete_active else counts.ready
    return JobDecision(create, delete_active, delete, status, requeue)


class JobController:
    """Creates and deletes each Job's pods and writes its status."""

    name = "job"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == JOBS:
            return [object_key(change.object)]
        if change.resource != PODS:
            return []
        namespace, _ = object_key(change.object)
        keys = set()
        for pod in (change.object, change.old):
            ref = controller_ref(pod) if pod is not None else None
            if ref is not None and ref.get("kind") == "Job":
                keys.add((namespace, str(ref.get("name", ""))))
        return sorted(keys)

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(object_key(job) for job in self.store.list(JOBS))

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        job = self.store.find(JOBS, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp") is not None:
            return None
        pods = [p for p in self.store.snapshot(PODS, namespace) if is_controlled_by(p, job)]
        decision = decide(job, pods, self.clock.now())
        for _ in range(decision.create):
            self._create_pod(job)
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and p["metadata"].get("deletionTimestamp") is None
        ]
        doomed = active if decision.delete_active else active[: decision.delete]
        for pod in doomed:
            try:
                self.store.delete(PODS, namespace, pod["metadata"]["name"])
            except ApiError as error:
                if error.code != 404:
                    raise
            self._event(job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        if decision.status is not None and decision.status != job.get("status"):
            self._write_status(job, decision.status)
        return decision.requeue_after

    def _create_pod(self, job: KubeObject) -> None:
        try:
            pod = self.store.create(PODS, pod_from_template(job))
        except ApiError as failure:
            self._event(job, "FailedCreate", f"Error creating: {failure.message}", "Warning")
            return
        self._event(job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def _write_status(self, job: KubeObject, status: KubeObject) -> None:
        old = job.get("status") or {}
        namespace, name = object_key(job)
        self.store.mutate(
            JOBS,
            namespace,
            name,
            lambda obj: obj.__setitem__("status", status),
            subresource="status",
        )
        for kind, reason in (("Complete", "Completed"), ("Failed", "BackoffLimitExceeded")):
            was = _has(old.get("conditions") or [], kind)
            if _has(status.get("conditions") or [], kind) and not was:
                condition = next(c for c in status["conditions"] if c["type"] == kind)
                event_reason = reason if kind == "Complete" else condition["reason"]
                event_type = "Normal" if kind == "Complete" else "Warning"
                message = "Job completed" if kind == "Complete" else condition["message"]
                self._event(job, event_reason, message, event_type)

    def _event(
        self, job: KubeObject, reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        self.store.record_event(job, reason, message, event_type=event_type, component=COMPONENT)
