"""CronJob defaults and validation, as the API server applies them (batch/v1).

Defaults are `SetDefaults_CronJob` (pkg/apis/batch/v1/defaults.go): concurrencyPolicy
Allow, suspend false, successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1.
Validation follows `ValidateCronJobCreate` / `ValidateCronJobSpec`
(pkg/apis/batch/validation/validation.go): the name at most 52 characters (the Job's
name adds 11), a schedule `cron.ParseStandard` accepts and without `TZ=` / `CRON_TZ=`
(`validateScheduleFormat` on create: "use timeZone field instead"), a time zone
`time.LoadLocation` knows (`validateTimeZone`), a known concurrencyPolicy, and
non-negative startingDeadlineSeconds and history limits. The job template's pod spec is
checked by admission.py like a Job's.
"""

from __future__ import annotations

import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.kube.cronschedule import CronSyntaxError, parse_standard
from sandbox.kube.errors import Cause

KubeObject = dict[str, Any]
MAX_NAME_LENGTH = 52  # validation.go: "must be no more than 52 characters"
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_TIME_ZONE_PART = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")  # validTimeZoneCharacters


def default_cronjob(cronjob: KubeObject) -> None:
    spec = cronjob.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    spec.setdefault("jobTemplate", {}).setdefault("spec", {})


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {detail}", path)


def schedule_causes(schedule: Any) -> list[Cause]:
    """`validateScheduleFormat` on create.

    >>> [c.message for c in schedule_causes("CRON_TZ=UTC 0 * * * *")][-1]
    'Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'
    """  # noqa: E501
    path = "spec.schedule"
    if not schedule:
        return [Cause("FieldValueRequired", "Required value", path)]
    text = str(schedule)
    causes = []
    try:
        parse_standard(text)
    except CronSyntaxError as error:
        causes.append(_invalid(path, text, str(error)))
    if "TZ" in text:
        causes.append(
            _invalid(path, text, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
        )
    return causes


def time_zone_causes(time_zone: Any) -> list[Cause]:
    """`validateTimeZone`: an IANA name the zone database has.

    >>> [c.message for c in time_zone_causes("Europe/Pariss")]
    ['Invalid value: "Europe/Pariss": unknown time zone Europe/Pariss']
    """
    path = "spec.timeZone"
    if time_zone is None:
        return []
    text = str(time_zone)
    if not text:
        return [_invalid(path, text, "timeZone must be nil or non-empty string")]
    for part in text.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.match(part):
            return [_invalid(path, text, f"unknown time zone {text}")]
    if text == "Local":
        return [
            _invalid(
                path,
                text,
                "timeZone must be an explicit time zone as defined in "
                "https://www.iana.org/time-zones",
            )
        ]
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [_invalid(path, text, f"unknown time zone {text}")]
    return []


def cronjob_causes(cronjob: KubeObject) -> list[Cause]:
    """Everything but the job template's pod spec (admission.py checks that)."""
    name = str((cronjob.get("metadata") or {}).get("name") or "")
    spec = cronjob.get("spec") or {}
    causes: list[Cause] = []
    if len(name) > MAX_NAME_LENGTH:
        causes.append(
            _invalid("metadata.name", name, f"must be no more than {MAX_NAME_LENGTH} characters")
        )
    causes += schedule_causes(spec.get("schedule"))
    causes += time_zone_causes(spec.get("timeZone"))
    policy = spec.get("concurrencyPolicy")
    if policy not in CONCURRENCY_POLICIES:
        supported = ", ".join(f'"{value}"' for value in CONCURRENCY_POLICIES)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f"Unsupported value: {json.dumps(policy)}: supported values: {supported}",
                "spec.concurrencyPolicy",
            )
        )
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(_invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    return causes
