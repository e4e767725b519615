"""The CronJob controller (batch/v1): a Job per schedule time, history kept to its limits.

After `pkg/controller/cronjob/cronjob_controllerv2.go` and `utils.go` as of 1.32. One
sync (`ControllerV2.sync`) first deletes the oldest finished Jobs beyond
`successfulJobsHistoryLimit` / `failedJobsHistoryLimit` (`cleanupFinishedJobs`, ordered
by `byJobStartTime`), then (`syncCronJob`):

1. reconciles `status.active` with the Jobs it controls: a finished one leaves it
   (`SawCompletedJob`), one that is gone too (`MissingJob`), an unfinished one not in
   it is reported (`UnexpectedJob`, as after `kubectl create job --from=cronjob/...`);
   `lastSuccessfulTime` follows the newest completed Job;
2. stops there for a CronJob being deleted, an unknown `timeZone` (`UnknownTimeZone`),
   `suspend: true`, or a schedule it cannot parse (`UnparseableSchedule`);
3. finds the most recent unmet schedule time (`mostRecentScheduleTime`: after
   `lastScheduleTime`, else the creation time, and not before now minus
   `startingDeadlineSeconds`); more than 100 missed starts add the
   `TooManyMissedTimes` warning and the newest one still runs;
4. skips a time too late for `startingDeadlineSeconds` (`MissSchedule`), already
   started, or blocked by `concurrencyPolicy: Forbid` (`JobAlreadyActive`); `Replace`
   deletes the active Jobs first (background propagation: the garbage collector
   removes their pods);
5. creates the Job `<cronjob>-<scheduled time in minutes since the epoch>` from
   `jobTemplate` (its labels and annotations, the annotation
   `batch.kubernetes.io/cronjob-scheduled-timestamp` in the CronJob's time zone, a
   controller ownerReference) and records it in `status.active` and
   `lastScheduleTime`;
6. asks to be woken 100 ms after the next schedule time (`nextScheduleTimeDuration`).

The schedule is read in `spec.timeZone`, else in the controller manager's zone, which
is UTC on EKS (and here). Between wake-ups the controller runtime's periodic resync
looks again; each look is idempotent because the Job's name is the lock.

`decide` is the whole decision over plain data; `CronJobController` only reads, creates
and deletes Jobs, writes the status and records the events.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.kube.clock import Clock, parse_time, rfc3339
from sandbox.kube.controllers.replicaset_util import controller_ref, new_controller_ref
from sandbox.kube.controllers.runtime import namespaced_key, object_key
from sandbox.kube.cronschedule import CronSyntaxError, Schedule, parse_standard
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Change, Store

KubeObject = dict[str, Any]

CRONJOBS = "batch/cronjobs"
JOBS = "batch/jobs"
COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA_SECONDS = 0.1  # nextScheduleDelta: a little past the minute (NTP skew)
MANY_MISSED = 100
CONTROLLER_ZONE = UTC  # kube-controller-manager's local zone on EKS
TOO_MANY_MISSED_MESSAGE = (
    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
)


class Missed(Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


class InvalidScheduleError(ValueError):
    """A schedule that parses but never advances (`0 0 30 2 *`): upstream's error text."""


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class CronJobDecision:
    status: KubeObject  # the status to write; the Job to create is added once it exists
    delete: tuple[str, ...] = ()  # Jobs to delete (history limits, Replace)
    create: KubeObject | None = None
    scheduled_time: datetime | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None


# ---- schedule arithmetic (utils.go) ----


def zone_of(cronjob: Mapping[str, Any]) -> tzinfo:
    """`spec.timeZone`, else the controller's zone; ZoneInfoNotFoundError for an unknown one."""
    name = (cronjob.get("spec") or {}).get("timeZone")
    if name is None:
        return CONTROLLER_ZONE
    if not name or name.lower() == "local":
        raise ZoneInfoNotFoundError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ZoneInfoNotFoundError(name) from None


def most_recent_schedule_time(
    cronjob: Mapping[str, Any],
    now: datetime,
    schedule: Schedule,
    zone: tzinfo,
    include_starting_deadline: bool,
) -> tuple[datetime, datetime | None, Missed]:
    """`mostRecentScheduleTime`: (earliest time considered, most recent unmet time or None,
    how many were missed). Raises InvalidScheduleError for a schedule that cannot advance.

    The count is upstream's estimate: the gap between the first two times after the
    earliest, fitted into the time elapsed since the first.

    >>> cj = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}}
    >>> _, recent, missed = most_recent_schedule_time(
    ...     cj, parse_time("2026-01-01T00:03:30Z"), parse_standard("* * * * *"), UTC, True)
    >>> recent.isoformat(), missed.value
    ('2026-01-01T00:03:00+00:00', 'few')
    """
    metadata, spec = cronjob.get("metadata") or {}, cronjob.get("spec") or {}
    status = cronjob.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime") or metadata["creationTimestamp"])
    deadline = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    first = schedule.next_after(earliest, zone)
    second = schedule.next_after(first, zone) if first is not None else None
    if first is not None and now < first:
        return earliest, None, Missed.NONE
    if first is not None and second is not None and now < second:
        return earliest, first, Missed.NONE
    if first is None or second is None or round((second - first).total_seconds()) < 1:
        raise InvalidScheduleError("time difference between two schedules is less than 1 second")
    between = round((second - first).total_seconds())
    missed = int((now - first).total_seconds()) // between + 1
    moment = schedule.next_after(first + timedelta(seconds=(missed - 2) * between), zone)
    recent: datetime | None = None
    while moment is not None and moment <= now:
        recent = moment
        moment = schedule.next_after(moment, zone)
    return earliest, recent, Missed.MANY if missed > MANY_MISSED else Missed.FEW


def next_schedule_seconds(
    cronjob: Mapping[str, Any], now: datetime, schedule: Schedule, zone: tzinfo
) -> float | None:
    """`nextScheduleTimeDuration`: seconds until 100 ms past the next schedule time
    (None when the schedule never comes again)."""
    try:
        earliest, recent, missed = most_recent_schedule_time(cronjob, now, schedule, zone, False)
    except InvalidScheduleError:
        earliest, recent, missed = now, now, Missed.NONE
    if recent is None:
        recent = earliest if missed is Missed.NONE else now
    upcoming = schedule.next_after(recent, zone)
    if upcoming is None:
        return None
    return max(0.0, (upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA_SECONDS)


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    """`getJobName`: minutes since the epoch, so one name per schedule time.

    >>> job_name("gameday", parse_time("2026-01-07T10:00:00Z"))
    'gameday-29463000'
    """
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def go_rfc3339(moment: datetime) -> str:
    """Go's `time.RFC3339` of a zoned time: `Z` for UTC, else the offset.

    >>> go_rfc3339(datetime(2026, 1, 7, 11, 0, tzinfo=ZoneInfo("Europe/Paris")))
    '2026-01-07T11:00:00+01:00'
    """
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_from_template(cronjob: Mapping[str, Any], scheduled: datetime, zone: tzinfo) -> KubeObject:
    """`getJobFromTemplate2`: the Job for one schedule time."""
    metadata = cronjob.get("metadata") or {}
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    template_metadata = template.get("metadata") or {}
    annotations = dict(template_metadata.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = go_rfc3339(scheduled.astimezone(zone))
    job_metadata: KubeObject = {
        "name": job_name(str(metadata.get("name", "")), scheduled),
        "namespace": metadata.get("namespace"),
        "annotations": annotations,
        "ownerReferences": [new_controller_ref(cronjob)],
    }
    labels = dict(template_metadata.get("labels") or {})
    if labels:
        job_metadata["labels"] = labels
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def object_reference(job: Mapping[str, Any]) -> KubeObject:
    """`ref.GetReference` of a Job, as `status.active` lists it."""
    metadata = job.get("metadata") or {}
    return {
        "kind": "Job",
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "apiVersion": "batch/v1",
        "resourceVersion": metadata.get("resourceVersion"),
    }


def rfc1123z(moment: datetime) -> str:
    """Go's `time.RFC1123Z` of a UTC time, as MissSchedule prints it."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


# ---- facts about Jobs ----


def finished_type(job: Mapping[str, Any]) -> str | None:
    """`getFinishedStatus`: "Complete" or "Failed" once that condition is True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _start_order(job: Mapping[str, Any]) -> tuple[int, str, str]:
    """`byJobStartTime`: started Jobs first, oldest first, then by name."""
    start = (job.get("status") or {}).get("startTime")
    name = str((job.get("metadata") or {}).get("name", ""))
    return (0, rfc3339(parse_time(start)), name) if start else (1, "", name)


def history_to_delete(
    spec: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]
) -> list[KubeObject]:
    """`cleanupFinishedJobs`: the oldest finished Jobs beyond each history limit.

    >>> done = [{"metadata": {"name": f"j{i}"}, "status": {"startTime": f"2026-01-0{i}T00:00:00Z",
    ...          "conditions": [{"type": "Complete", "status": "True"}]}} for i in (3, 1, 2)]
    >>> [j["metadata"]["name"] for j in history_to_delete({"successfulJobsHistoryLimit": 1}, done)]
    ['j1', 'j2']
    """
    doomed: list[KubeObject] = []
    for kind, key in (
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ):
        limit = spec.get(key)
        if limit is None:
            continue
        finished = sorted((j for j in jobs if finished_type(j) == kind), key=_start_order)
        doomed += [dict(j) for j in finished[: max(0, len(finished) - int(limit))]]
    return doomed


# ---- the decision ----


@dataclass
class _Sync:
    """What one sync accumulates while it walks through `syncCronJob`."""

    status: KubeObject
    events: list[Event] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def drop_active(self, uid: object) -> None:
        active = [ref for ref in self.status.get("active") or [] if ref.get("uid") != uid]
        if active:
            self.status["active"] = active
        else:
            self.status.pop("active", None)

    def active_uids(self) -> set[object]:
        return {ref.get("uid") for ref in self.status.get("active") or []}

    def decision(self, requeue: float | None = None, **more: Any) -> CronJobDecision:
        return CronJobDecision(
            self.status,
            tuple(self.delete),
            events=tuple(self.events),
            requeue_after=requeue,
            **more,
        )


def _reconcile_active(sync: _Sync, jobs: Sequence[Mapping[str, Any]]) -> None:
    """Step 1: status.active against the Jobs that exist; lastSuccessfulTime."""
    for job in jobs:
        metadata, status = job.get("metadata") or {}, job.get("status") or {}
        uid, name, finished = metadata.get("uid"), metadata.get("name"), finished_type(job)
        found = uid in sync.active_uids()
        if not found and finished is None:
            sync.event(
                "UnexpectedJob",
                f"Saw a job that the controller did not create or forgot: {name}",
                warning=True,
            )
        elif found and finished is not None:
            sync.drop_active(uid)
            sync.event("SawCompletedJob", f"Saw completed job: {name}, status: {finished}")
        elif finished == "Complete" and status.get("completionTime"):
            last = sync.status.get("lastSuccessfulTime")
            if last is None or parse_time(status["completionTime"]) > parse_time(last):
                sync.status["lastSuccessfulTime"] = status["completionTime"]
    existing = {(j.get("metadata") or {}).get("uid") for j in jobs}
    for ref in list(sync.status.get("active") or []):
        if ref.get("uid") not in existing:
            sync.event("MissingJob", f"Active job went missing: {ref.get('name')}")
            sync.drop_active(ref.get("uid"))


def decide(
    cronjob: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], now: datetime
) -> CronJobDecision:
    """One sync of one CronJob over the Jobs it controls.

    >>> cj = {"metadata": {"name": "gd", "namespace": "ns", "uid": "u",
    ...                    "creationTimestamp": "2026-01-01T00:00:00Z"},
    ...       "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {}}}}
    >>> decision = decide(cj, [], parse_time("2026-01-01T00:01:05Z"))
    >>> decision.create["metadata"]["name"], decision.requeue_after
    ('gd-29453761', 55.1)
    """
    spec = cronjob.get("spec") or {}
    sync = _Sync(copy.deepcopy(dict(cronjob.get("status") or {})))
    for job in history_to_delete(spec, jobs):
        sync.delete.append(str(job["metadata"].get("name")))
        sync.drop_active(job["metadata"].get("uid"))
        sync.event("SuccessfulDelete", f"Deleted job {job['metadata'].get('name')}")
    _reconcile_active(sync, jobs)
    if (cronjob.get("metadata") or {}).get("deletionTimestamp"):
        return sync.decision()
    try:
        zone = zone_of(cronjob)
    except ZoneInfoNotFoundError:
        name = spec.get("timeZone")
        sync.event("UnknownTimeZone", f'invalid timeZone: "{name}": unknown time zone {name}', True)
        return sync.decision()
    if spec.get("suspend"):
        return sync.decision()
    try:
        schedule = parse_standard(str(spec.get("schedule", "")))
    except CronSyntaxError as error:
        sync.event(
            "UnparseableSchedule", f'unparseable schedule: "{spec.get("schedule")}" : {error}', True
        )
        return sync.decision()
    return _start(cronjob, sync, schedule, zone, now)


def _start(
    cronjob: Mapping[str, Any], sync: _Sync, schedule: Schedule, zone: tzinfo, now: datetime
) -> CronJobDecision:
    """Steps 3 to 6: whether this sync starts a Job, and when to look again."""
    spec = cronjob.get("spec") or {}
    after = {**cronjob, "status": sync.status}
    try:
        _, scheduled, missed = most_recent_schedule_time(after, now, schedule, zone, True)
    except InvalidScheduleError as error:
        sync.event("InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {error}", True)
        return sync.decision()
    if scheduled is not None and missed is Missed.MANY:
        sync.event("TooManyMissedTimes", TOO_MANY_MISSED_MESSAGE, warning=True)
    requeue = next_schedule_seconds(after, now, schedule, zone)
    if scheduled is None:
        return sync.decision(requeue)
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
        sync.event(
            "MissSchedule", f"Missed scheduled time to start a job: {rfc1123z(scheduled)}", True
        )
        return sync.decision(requeue)
    name = job_name(str(cronjob["metadata"].get("name", "")), scheduled)
    last = sync.status.get("lastScheduleTime")
    started = any(ref.get("name") == name for ref in sync.status.get("active") or [])
    if started or (last is not None and parse_time(last) == scheduled):
        return sync.decision(requeue)
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and sync.status.get("active"):
        sync.event(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        )
        return sync.decision(requeue)
    if policy == "Replace":
        for ref in list(sync.status.get("active") or []):
            sync.delete.append(str(ref.get("name")))
            sync.drop_active(ref.get("uid"))
            sync.event("SuccessfulDelete", f"Deleted job {ref.get('name')}")
    recorded = {**after, "status": {**sync.status, "lastScheduleTime": rfc3339(scheduled)}}
    return sync.decision(
        next_schedule_seconds(recorded, now, schedule, zone),
        create=job_from_template(cronjob, scheduled, zone),
        scheduled_time=scheduled,
    )


# ---- the controller ----


def _owning_cronjob(job: Mapping[str, Any] | None) -> str | None:
    ref = controller_ref(job) if job is not None else None
    return str(ref.get("name", "")) if ref is not None and ref.get("kind") == "CronJob" else None


class CronJobController:
    """Creates and deletes each CronJob's Jobs and writes its status."""

    name = "cronjob"

    def __init__(self, store: Store, clock: Clock, settings: ControlPlaneSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings

    def keys_for(self, change: Change) -> Iterable[Hashable]:
        if change.resource == CRONJOBS:
            return [object_key(change.object)]
        if change.resource != JOBS:
            return []
        namespace, _ = object_key(change.object)
        owners = {_owning_cronjob(change.object), _owning_cronjob(change.old)} - {None}
        return sorted((namespace, str(owner)) for owner in owners)

    def all_keys(self) -> Iterable[Hashable]:
        return sorted(object_key(cronjob) for cronjob in self.store.list(CRONJOBS))

    def reconcile(self, key: Hashable) -> float | None:
        namespace, name = namespaced_key(key)
        cronjob = self.store.find(CRONJOBS, namespace, name)
        if cronjob is None:
            return None
        jobs = [j for j in self.store.snapshot(JOBS, namespace) if _owning_cronjob(j) == name]
        decision = decide(cronjob, jobs, self.clock.now())
        for doomed in decision.delete:
            self._delete_job(namespace, doomed)
        for event in decision.events:
            self._event(cronjob, event.reason, event.message, event.type)
        status = copy.deepcopy(decision.status)
        try:
            if decision.create is not None and decision.scheduled_time is not None:
                self._create_job(cronjob, decision.create, decision.scheduled_time, status)
        finally:
            if status != (cronjob.get("status") or {}):
                self._write_status(namespace, name, status)
        return decision.requeue_after

    def _create_job(
        self, cronjob: KubeObject, job: KubeObject, scheduled: datetime, status: KubeObject
    ) -> None:
        namespace = str(cronjob["metadata"].get("namespace", ""))
        try:
            created = self.store.create(JOBS, job)
        except ApiError as error:
            if error.code != 409:
                self._event(
                    cronjob, "FailedCreate", f"Error creating job: {error.message}", "Warning"
                )
                raise
            created = self.store.find(JOBS, namespace, job["metadata"]["name"]) or {}
            ref = controller_ref(created)
            if ref is None or ref.get("uid") != cronjob["metadata"].get("uid"):
                return  # another actor's Job: it keeps the status up to date
            if any(a.get("uid") == created["metadata"]["uid"] for a in status.get("active") or []):
                return
        else:
            message = f"Created job {created['metadata']['name']}"
            self._event(cronjob, "SuccessfulCreate", message, "Normal")
        status["active"] = [*(status.get("active") or []), object_reference(created)]
        status["lastScheduleTime"] = rfc3339(scheduled)

    def _delete_job(self, namespace: str, name: str) -> None:
        try:
            self.store.delete(JOBS, namespace, name)  # dependents go in the background (GC)
        except ApiError as error:
            if error.code != 404:
                raise

    def _write_status(self, namespace: str, name: str, status: KubeObject) -> None:
        self.store.mutate(
            CRONJOBS,
            namespace,
            name,
            lambda obj: obj.__setitem__("status", status),
            subresource="status",
        )

    def _event(self, cronjob: KubeObject, reason: str, message: str, event_type: str) -> None:
        self.store.record_event(
            cronjob, reason, message, event_type=event_type, component=COMPONENT
        )
