"""CronJobs: the cron parser and the decision by table, the controller on a Store with a
manual clock (no real-time wait), and the API server's defaults and validation."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sandbox.kube.clock import ManualClock, parse_time, rfc3339
from sandbox.kube.controllers.cronjob import (
    CRONJOBS,
    JOBS,
    CronJobController,
    decide,
    job_name,
)
from sandbox.kube.cronschedule import CronSyntaxError, parse_standard
from sandbox.kube.errors import ApiError
from sandbox.kube.settings import ControlPlaneSettings
from sandbox.kube.store import Store
from tests.sandbox.harness import ApiHarness

KubeObject = dict[str, Any]
CREATED = "2026-01-01T00:00:00Z"


# ---- the parser ----


def nexts(spec: str, start: str, count: int = 3, zone: str = "UTC") -> list[str]:
    schedule = parse_standard(spec)
    moment: datetime | None = parse_time(start)
    found = []
    for _ in range(count):
        assert moment is not None
        moment = schedule.next_after(moment, ZoneInfo(zone))
        assert moment is not None
        found.append(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M"))
    return found


@pytest.mark.parametrize(
    ("spec", "start", "expected"),
    [
        pytest.param(
            "* * * * *",
            "2026-01-01T00:00:00Z",
            ["2026-01-01 00:01", "2026-01-01 00:02", "2026-01-01 00:03"],
            id="every-minute-strictly-after",
        ),
        pytest.param(
            "*/20 * * * *",
            "2026-01-01T00:05:30Z",
            ["2026-01-01 00:20", "2026-01-01 00:40", "2026-01-01 01:00"],
            id="step",
        ),
        pytest.param(
            "5,10-12 3 * * *",
            "2026-01-01T00:00:00Z",
            ["2026-01-01 03:05", "2026-01-01 03:10", "2026-01-01 03:11"],
            id="list-and-range",
        ),
        pytest.param(
            "0 10 * * 3",
            "2026-01-01T00:00:00Z",
            ["2026-01-07 10:00", "2026-01-14 10:00", "2026-01-21 10:00"],
            id="the-game-day-wednesdays",
        ),
        pytest.param(
            "0 9 * JAN-FEB mon-FRI",
            "2026-02-26T12:00:00Z",
            ["2026-02-27 09:00", "2027-01-01 09:00", "2027-01-04 09:00"],
            id="names-any-case",
        ),
        pytest.param(
            "0 0 13 * 5",
            "2026-01-01T00:00:00Z",
            ["2026-01-02 00:00", "2026-01-09 00:00", "2026-01-13 00:00"],
            id="day-of-month-or-day-of-week",
        ),
        pytest.param(
            "0 0 */2 * 5",
            "2026-01-01T00:00:00Z",
            ["2026-01-02 00:00", "2026-01-03 00:00", "2026-01-05 00:00"],
            id="a-stepped-star-is-a-restriction",
        ),
        pytest.param(
            "0 0 * * 5",
            "2026-01-01T00:00:00Z",
            ["2026-01-02 00:00", "2026-01-09 00:00", "2026-01-16 00:00"],
            id="star-day-of-month-ands",
        ),
        pytest.param(
            "0 0 29 2 *",
            "2026-01-01T00:00:00Z",
            ["2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"],
            id="leap-day",
        ),
        pytest.param(
            "@weekly",
            "2026-01-01T00:00:00Z",
            ["2026-01-04 00:00", "2026-01-11 00:00", "2026-01-18 00:00"],
            id="weekly-is-sunday-midnight",
        ),
        pytest.param(
            "@monthly",
            "2026-01-15T00:00:00Z",
            ["2026-02-01 00:00", "2026-03-01 00:00", "2026-04-01 00:00"],
            id="monthly",
        ),
        pytest.param("@yearly", "2026-06-01T00:00:00Z", ["2027-01-01 00:00"], id="yearly"),
        pytest.param(
            "@hourly",
            "2026-01-01T00:59:59Z",
            ["2026-01-01 01:00", "2026-01-01 02:00", "2026-01-01 03:00"],
            id="hourly",
        ),
        pytest.param(
            "@every 90m",
            "2026-01-01T00:00:30Z",
            ["2026-01-01 01:30", "2026-01-01 03:00", "2026-01-01 04:30"],
            id="every",
        ),
    ],
)
def test_next_schedule_times(spec: str, start: str, expected: list[str]) -> None:
    assert nexts(spec, start, len(expected)) == expected


def test_a_schedule_is_read_in_its_time_zone_across_daylight_saving() -> None:
    # Europe/Paris springs forward on 2026-03-29 at 02:00: 02:30 that day does not exist
    assert nexts("30 2 * * *", "2026-03-27T12:00:00Z", 3, "Europe/Paris") == [
        "2026-03-28 01:30",  # 02:30 CET
        "2026-03-30 00:30",  # 02:30 CEST; the 29th is skipped
        "2026-03-31 00:30",
    ]


def test_an_impossible_date_never_comes() -> None:
    assert parse_standard("0 0 30 2 *").next_after(parse_time(CREATED), UTC) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("", "empty spec string", id="empty"),
        pytest.param("* * * *", "expected exactly 5 fields, found 4: [* * * *]", id="four"),
        pytest.param(
            "0 * * * * *", "expected exactly 5 fields, found 6: [0 * * * * *]", id="seconds"
        ),
        pytest.param("61 * * * *", "end of range (61) above maximum (59): 61", id="minute"),
        pytest.param("* * 0 * *", "beginning of range (0) below minimum (1): 0", id="dom-0"),
        pytest.param("* * * * 7", "end of range (7) above maximum (6): 7", id="sunday-as-7"),
        pytest.param(
            "5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2", id="order"
        ),
        pytest.param("*/0 * * * *", "step of range should be a positive number: */0", id="step-0"),
        pytest.param("1-2-3 * * * *", "too many hyphens: 1-2-3", id="hyphens"),
        pytest.param("*/2/3 * * * *", "too many slashes: */2/3", id="slashes"),
        pytest.param(
            "x * * * *",
            'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax',
            id="not-a-number",
        ),
        pytest.param("@fortnightly", "unrecognized descriptor: @fortnightly", id="descriptor"),
        pytest.param(
            "@every 10",
            'failed to parse duration @every 10: time: missing unit in duration "10"',
            id="every-without-unit",
        ),
    ],
)
def test_schedules_robfig_refuses(spec: str, message: str) -> None:
    with pytest.raises(CronSyntaxError) as caught:
        parse_standard(spec)
    assert str(caught.value) == message


# ---- the decision ----

NOW = parse_time("2026-01-07T10:00:30Z")  # a Wednesday, 30 s after the game day's time


def make_cronjob(status: KubeObject | None = None, **spec: Any) -> KubeObject:
    body: KubeObject = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "gameday",
            "namespace": "gd",
            "uid": "cj-uid",
            "creationTimestamp": CREATED,
        },
        "spec": {
            "schedule": "0 10 * * 3",
            "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"app": "gd"}, "annotations": {"note": "x"}},
                "spec": {"backoffLimit": 0},
            },
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def make_job(
    name: str, *, finished: str | None = None, start: str = CREATED, uid: str | None = None
) -> KubeObject:
    status: KubeObject = {"startTime": start}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
        if finished == "Complete":
            status["completionTime"] = start
    return {
        "metadata": {"name": name, "namespace": "gd", "uid": uid or f"uid-{name}"},
        "status": status,
    }


def ref(name: str) -> KubeObject:
    return {"kind": "Job", "name": name, "namespace": "gd", "uid": f"uid-{name}"}


def reasons(decision: Any) -> list[str]:
    return [event.reason for event in decision.events]


def test_the_job_for_a_schedule_time_is_named_by_minutes_and_carries_its_template() -> None:
    decision = decide(make_cronjob(timeZone="Europe/Paris", schedule="0 11 * * 3"), [], NOW)
    job = decision.create
    assert job is not None
    assert (
        job["metadata"]["name"]
        == f"gameday-{int(parse_time('2026-01-07T10:00:00Z').timestamp()) // 60}"
    )
    assert job["metadata"]["labels"] == {"app": "gd"}
    assert job["metadata"]["annotations"] == {
        "note": "x",
        "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-01-07T11:00:00+01:00",
    }
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "gameday",
            "uid": "cj-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"] == {"backoffLimit": 0}
    # woken 100 ms after next Wednesday's 11:00 Paris time
    assert decision.requeue_after == pytest.approx(7 * 86400 - 30 + 0.1)


@pytest.mark.parametrize(
    ("cronjob", "jobs", "create", "events", "delete"),
    [
        pytest.param(make_cronjob(), [], True, [], [], id="due-creates"),
        pytest.param(
            make_cronjob(status={"lastScheduleTime": "2026-01-07T10:00:00Z"}),
            [],
            False,
            [],
            [],
            id="already-started-this-time",
        ),
        pytest.param(make_cronjob(suspend=True), [], False, [], [], id="suspended"),
        pytest.param(
            make_cronjob(status={"active": [ref("old")]}, concurrencyPolicy="Forbid"),
            [make_job("old")],
            False,
            ["JobAlreadyActive"],
            [],
            id="forbid-with-one-running",
        ),
        pytest.param(
            make_cronjob(status={"active": [ref("old")]}, concurrencyPolicy="Replace"),
            [make_job("old")],
            True,
            ["SuccessfulDelete"],
            ["old"],
            id="replace-deletes-the-running-one",
        ),
        pytest.param(
            make_cronjob(status={"active": [ref("old")]}),
            [make_job("old")],
            True,
            [],
            [],
            id="allow-runs-beside",
        ),
        pytest.param(
            make_cronjob(status={"active": [ref("old")]}),
            [make_job("old", finished="Complete")],
            True,
            ["SawCompletedJob"],
            [],
            id="a-finished-job-leaves-active",
        ),
        pytest.param(
            make_cronjob(status={"active": [ref("gone")]}, concurrencyPolicy="Forbid"),
            [],
            True,
            ["MissingJob"],
            [],
            id="a-vanished-job-leaves-active",
        ),
        pytest.param(
            make_cronjob(),
            [make_job("manual")],
            True,
            ["UnexpectedJob"],
            [],
            id="kubectl-create-job-from",
        ),
        pytest.param(
            make_cronjob(timeZone="Mars/Olympus"),
            [],
            False,
            ["UnknownTimeZone"],
            [],
            id="unknown-time-zone",
        ),
        pytest.param(
            make_cronjob(schedule="61 * * * *"),
            [],
            False,
            ["UnparseableSchedule"],
            [],
            id="unparseable",
        ),
        pytest.param(
            make_cronjob(schedule="0 0 30 2 *"), [], False, ["InvalidSchedule"], [], id="never"
        ),
        pytest.param(
            make_cronjob(schedule="* * * * *"),
            [],
            True,
            ["TooManyMissedTimes"],
            [],
            id="more-than-100-missed",
        ),
        pytest.param(
            make_cronjob(
                successfulJobsHistoryLimit=1,
                status={"lastScheduleTime": "2026-01-07T10:00:00Z"},
            ),
            [
                make_job("a", finished="Complete", start="2025-12-17T10:00:00Z"),
                make_job("b", finished="Complete", start="2025-12-24T10:00:00Z"),
                make_job("c", finished="Complete", start="2025-12-31T10:00:00Z"),
            ],
            False,
            ["SuccessfulDelete", "SuccessfulDelete"],
            ["a", "b"],
            id="history-keeps-the-newest",
        ),
        pytest.param(
            make_cronjob(
                failedJobsHistoryLimit=0, status={"lastScheduleTime": "2026-01-07T10:00:00Z"}
            ),
            [make_job("f", finished="Failed"), make_job("ok", finished="Complete")],
            False,
            ["SuccessfulDelete"],
            ["f"],
            id="failed-history-zero",
        ),
    ],
)
def test_decide(
    cronjob: KubeObject,
    jobs: list[KubeObject],
    create: bool,
    events: list[str],
    delete: list[str],
) -> None:
    decision = decide(cronjob, jobs, NOW)
    assert (decision.create is not None) == create
    assert reasons(decision) == events
    assert list(decision.delete) == delete


def test_starting_deadline_bounds_how_late_a_missed_time_may_start() -> None:
    late = NOW + timedelta(hours=2)
    assert decide(make_cronjob(startingDeadlineSeconds=3600), [], late).create is None
    assert decide(make_cronjob(startingDeadlineSeconds=3600), [], NOW).create is not None
    # without a deadline the most recent missed time still starts, late
    assert decide(make_cronjob(), [], late).create is not None


def test_a_time_past_its_starting_deadline_is_a_miss_schedule_event() -> None:
    # the controller was down: lastScheduleTime is old and the deadline short
    cronjob = make_cronjob(
        schedule="*/5 * * * *",
        startingDeadlineSeconds=10,
        status={"lastScheduleTime": "2026-01-07T09:55:00Z"},
    )
    decision = decide(cronjob, [], parse_time("2026-01-07T10:00:30Z"))
    assert decision.create is None
    assert decision.requeue_after == pytest.approx(270.1)


def test_last_successful_time_follows_the_newest_completed_job() -> None:
    jobs = [
        make_job("a", finished="Complete", start="2026-01-05T00:00:00Z"),
        make_job("b", finished="Complete", start="2026-01-06T00:00:00Z"),
    ]
    status = decide(make_cronjob(), jobs, NOW).status
    assert status["lastSuccessfulTime"] == "2026-01-06T00:00:00Z"


def test_job_names_are_unique_per_minute() -> None:
    assert job_name("x", parse_time("2026-01-07T10:00:00Z")) != job_name(
        "x", parse_time("2026-01-07T10:01:00Z")
    )
    assert job_name("x", parse_time("2026-01-07T10:00:00Z")) == job_name(
        "x", parse_time("2026-01-07T10:00:00Z")
    )


# ---- the controller on a store, with a clock driven by hand ----


def world(now: datetime) -> tuple[Store, ManualClock, CronJobController]:
    clock = ManualClock(now)
    store = Store(clock)
    store.create("namespaces", {"metadata": {"name": "gd"}})
    return store, clock, CronJobController(store, clock, ControlPlaneSettings())


def every_minute() -> KubeObject:
    body = make_cronjob(schedule="* * * * *", concurrencyPolicy="Forbid")
    body["spec"]["jobTemplate"]["spec"] = {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}],
            }
        }
    }
    del body["metadata"]["uid"], body["metadata"]["creationTimestamp"]
    return body


def test_an_every_minute_cronjob_creates_its_job_at_the_next_minute_boundary() -> None:
    store, clock, controller = world(parse_time("2026-01-07T10:00:20Z"))
    store.create(CRONJOBS, every_minute())
    wait = controller.reconcile(("gd", "gameday"))
    assert store.list(JOBS, "gd") == []
    assert wait == pytest.approx(40.1)  # 100 ms past 10:01:00
    clock.advance(wait or 0)
    controller.reconcile(("gd", "gameday"))
    jobs = store.list(JOBS, "gd")
    assert [j["metadata"]["name"] for j in jobs] == [
        job_name("gameday", parse_time("2026-01-07T10:01:00Z"))
    ]
    cronjob = store.get(CRONJOBS, "gd", "gameday")
    assert cronjob["status"]["lastScheduleTime"] == "2026-01-07T10:01:00Z"
    assert [a["name"] for a in cronjob["status"]["active"]] == [jobs[0]["metadata"]["name"]]
    assert cronjob["status"]["active"][0]["uid"] == jobs[0]["metadata"]["uid"]
    # Forbid: the next minute, with the first still running, starts nothing
    clock.advance(60)
    controller.reconcile(("gd", "gameday"))
    assert len(store.list(JOBS, "gd")) == 1
    events = [e["reason"] for e in store.list("events", "gd")]
    assert "SuccessfulCreate" in events and "JobAlreadyActive" in events


def test_a_finished_job_leaves_active_and_old_ones_are_deleted() -> None:
    store, clock, controller = world(parse_time("2026-01-07T10:00:20Z"))
    body = every_minute()
    body["spec"]["successfulJobsHistoryLimit"] = 1
    store.create(CRONJOBS, body)
    created = []
    for _ in range(3):
        clock.advance(controller.reconcile(("gd", "gameday")) or 0)
        controller.reconcile(("gd", "gameday"))
        name = store.get(CRONJOBS, "gd", "gameday")["status"]["active"][0]["name"]
        created.append(name)
        finished = rfc3339(clock.now())

        def complete(job: KubeObject, at: str = finished) -> None:
            job["status"] = {
                "startTime": at,
                "completionTime": at,
                "conditions": [{"type": "Complete", "status": "True"}],
            }

        store.mutate(JOBS, "gd", name, complete, subresource="status")
        controller.reconcile(("gd", "gameday"))  # SawCompletedJob: active is empty again
    controller.reconcile(("gd", "gameday"))
    assert [j["metadata"]["name"] for j in store.list(JOBS, "gd")] == created[-1:]
    status = store.get(CRONJOBS, "gd", "gameday")["status"]
    assert "active" not in status
    assert status["lastSuccessfulTime"] is not None


def test_a_job_created_by_hand_from_the_cronjob_is_reported_not_adopted() -> None:
    """`kubectl create job --from=cronjob/x`: an ownerReference to the CronJob and the
    annotation cronjob.kubernetes.io/instantiate: manual."""
    store, _, controller = world(parse_time("2026-01-07T10:00:20Z"))
    body = every_minute()
    body["spec"]["schedule"] = "0 0 1 1 *"
    cronjob = store.create(CRONJOBS, body)
    store.create(
        JOBS,
        {
            "metadata": {
                "name": "by-hand",
                "namespace": "gd",
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "gameday",
                        "uid": cronjob["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": every_minute()["spec"]["jobTemplate"]["spec"],
        },
    )
    controller.reconcile(("gd", "gameday"))
    assert [e["reason"] for e in store.list("events", "gd")] == ["UnexpectedJob"]
    assert "active" not in store.get(CRONJOBS, "gd", "gameday")["status"]


# ---- admission ----


def test_cronjob_defaults() -> None:
    """SetDefaults_CronJob, and the job template's pod spec defaulted as a pod's."""
    store, _, _ = world(NOW)
    body = every_minute()
    for key in ("concurrencyPolicy", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        del body["spec"][key]
    spec = store.create(CRONJOBS, body)["spec"]
    assert (
        spec["concurrencyPolicy"],
        spec["suspend"],
        spec["successfulJobsHistoryLimit"],
        spec["failedJobsHistoryLimit"],
    ) == ("Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param(
            {"schedule": "TZ=UTC 0 10 * * 3"},
            "spec.schedule",
            'Invalid value: "TZ=UTC 0 10 * * 3": cannot use TZ or CRON_TZ in schedule, use '
            "timeZone field instead",
            id="tz-in-schedule",
        ),
        pytest.param(
            {"schedule": "61 * * * *"},
            "spec.schedule",
            'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61',
            id="bad-schedule",
        ),
        pytest.param(
            {"timeZone": "Europe/Pariss"},
            "spec.timeZone",
            'Invalid value: "Europe/Pariss": unknown time zone Europe/Pariss',
            id="unknown-zone",
        ),
        pytest.param(
            {"concurrencyPolicy": "Sometimes"},
            "spec.concurrencyPolicy",
            'Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"',
            id="policy",
        ),
        pytest.param(
            {"startingDeadlineSeconds": -1},
            "spec.startingDeadlineSeconds",
            "Invalid value: -1: must be greater than or equal to 0",
            id="deadline",
        ),
    ],
)
def test_cronjob_validation(change: dict[str, Any], field: str, message: str) -> None:
    store, _, _ = world(NOW)
    body = every_minute()
    body["spec"].update(change)
    with pytest.raises(ApiError) as caught:
        store.create(CRONJOBS, body)
    assert caught.value.code == 422
    causes = [(c.field, c.message) for c in caught.value.causes]
    assert (field, message) in causes


# ---- real kubectl against the API server ----


def kubectl(api: ApiHarness, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(api.kubeconfig),
        "KUBECACHEDIR": str(api.directory / "kubecache"),
    }
    return subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    harness = ApiHarness(tmp_path, watch_timeout_seconds=1.0)
    yield harness
    harness.close()


NEEDS_KUBECTL = pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
GAMEDAY = Path(__file__).parents[3] / "deploy" / "gameday"


def apply_game_day(api: ApiHarness) -> None:
    applied = kubectl(
        api,
        "apply",
        "--validate=false",
        *("-f", str(GAMEDAY / "namespace.yaml")),
        *("-f", str(GAMEDAY / "reports-pvc.yaml")),
        *("-f", str(GAMEDAY / "cronjob.yaml")),
    )
    assert applied.returncode == 0, applied.stderr


@NEEDS_KUBECTL
def test_kubectl_serves_the_game_days_cronjob_and_claim(api: ApiHarness) -> None:
    apply_game_day(api)
    listed = kubectl(api, "get", "cj,pvc", "-n", "harmonyflow-gameday", "-o", "name")
    assert listed.stdout.split() == [
        "cronjob.batch/harmonyflow-gameday",
        "persistentvolumeclaim/gameday-reports",
    ]
    claim = api.on_loop(
        lambda: api.store.get("persistentvolumeclaims", "harmonyflow-gameday", "gameday-reports")
    )
    assert claim["spec"]["storageClassName"] == "gp2"


@NEEDS_KUBECTL
def test_kubectl_creates_a_job_from_the_game_days_cronjob(api: ApiHarness) -> None:
    apply_game_day(api)
    created = kubectl(
        api,
        "create",
        "job",
        "--from=cronjob/harmonyflow-gameday",
        "by-hand",
        "-n",
        "harmonyflow-gameday",
    )
    assert created.returncode == 0, created.stderr
    job = api.on_loop(lambda: api.store.get(JOBS, "harmonyflow-gameday", "by-hand"))
    cronjob = api.on_loop(
        lambda: api.store.get(CRONJOBS, "harmonyflow-gameday", "harmonyflow-gameday")
    )
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    template = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["spec"]["template"]["spec"] == template["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == template["activeDeadlineSeconds"]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "CronJob",
        "harmonyflow-gameday",
        cronjob["metadata"]["uid"],
    )
