"""CronJob schedules: the standard five-field cron syntax, parsed and stepped like upstream's.

Kubernetes parses `spec.schedule` with `robfig/cron/v3`'s `ParseStandard` (the API
server's validation and the CronJob controller alike), and the sandbox accepts and
refuses what it does, with its error messages:

- five space-separated fields: minute (0-59), hour (0-23), day of month (1-31), month
  (1-12 or jan-dec), day of week (0-6 or sun-sat; 7 is refused, as upstream);
- in each field `*` or `?`, a value, a range `a-b`, a step `*/n`, `a/n` (from a to the
  maximum) or `a-b/n`, and comma-separated lists of those; names are case-insensitive;
- the descriptors `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
  (`@midnight`), `@hourly` and `@every <Go duration>`.

`next_after` is robfig's `SpecSchedule.Next`: the first matching minute strictly after
the given time, in the schedule's time zone, searched at most five years ahead (None
after that, as robfig's zero time). Day of month and day of week are ORed when both are
restricted and ANDed when either is `*` / `?` (robfig's `dayMatches` and its star bit;
`*/2` is a restriction, `*/1` is not). Around daylight-saving changes the sandbox uses
wall-clock minutes: a minute the clocks skip does not fire, and a repeated hour fires
once (its first occurrence).

A `TZ=` / `CRON_TZ=` prefix is not parsed here: the API server refuses it in new
CronJobs (`validateScheduleFormat`), `spec.timeZone` names the zone instead.

    >>> schedule = parse_standard("0 10 * * 3")  # Wednesdays at 10:00
    >>> schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC), UTC).isoformat()
    '2026-01-07T10:00:00+00:00'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from sandbox.kube.goduration import DurationError, parse_go_duration

SEARCH_YEARS = 5  # robfig: "if no time is found within five years, return zero"


class CronSyntaxError(ValueError):
    """The schedule is not standard cron; the message is robfig/cron's."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is value low + i


MINUTES = _Bounds(0, 59)
HOURS = _Bounds(0, 23)
DAYS_OF_MONTH = _Bounds(1, 31)
MONTHS = _Bounds(
    1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
DAYS_OF_WEEK = _Bounds(0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class Field:
    values: frozenset[int]
    star: bool  # `*` or `?` (with no step above 1): robfig's starBit


@dataclass(frozen=True)
class CronSchedule:
    minutes: Field
    hours: Field
    days_of_month: Field
    months: Field
    days_of_week: Field

    def day_matches(self, day: date) -> bool:
        """robfig `dayMatches`: AND when either day field is a star, OR otherwise."""
        dom = day.day in self.days_of_month.values
        dow = (day.weekday() + 1) % 7 in self.days_of_week.values  # Go: Sunday is 0
        if self.days_of_month.star or self.days_of_week.star:
            return dom and dow
        return dom or dow

    def next_after(self, moment: datetime, zone: tzinfo) -> datetime | None:
        """The first scheduled minute strictly after `moment`, in `zone` (None: not within
        five years, e.g. `0 0 30 2 *`)."""
        local = moment.astimezone(zone)
        start = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        day = start.date()
        limit = date(min(local.year + SEARCH_YEARS, 9999), 12, 31)
        hours = sorted(self.hours.values)
        minutes = sorted(self.minutes.values)
        while day <= limit:
            if day.month in self.months.values and self.day_matches(day):
                found = self._first_on(day, start, moment, zone, hours, minutes)
                if found is not None:
                    return found
            day += timedelta(days=1)
        return None

    @staticmethod
    def _first_on(
        day: date,
        start: datetime,
        moment: datetime,
        zone: tzinfo,
        hours: list[int],
        minutes: list[int],
    ) -> datetime | None:
        for hour in hours:
            for minute in minutes:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                if wall < start:
                    continue
                candidate = wall.replace(tzinfo=zone)
                if candidate.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
                    continue  # a minute the clocks skip (spring forward)
                if candidate <= moment:
                    continue  # the repeated hour's second pass, already behind
                return candidate
        return None


@dataclass(frozen=True)
class EverySchedule:
    """`@every <duration>`: robfig's ConstantDelaySchedule, whole seconds, at least one."""

    seconds: int

    def next_after(self, moment: datetime, zone: tzinfo) -> datetime | None:
        truncated = moment.replace(microsecond=0)
        return (truncated + timedelta(seconds=self.seconds)).astimezone(zone)


Schedule = CronSchedule | EverySchedule


def parse_standard(spec: str) -> Schedule:
    """robfig/cron/v3 `ParseStandard`.

    >>> parse_standard("*/15 9-17 * * mon-fri").hours.values == frozenset(range(9, 18))
    True
    >>> parse_standard("61 * * * *")
    Traceback (most recent call last):
    ...
    sandbox.kube.cronschedule.CronSyntaxError: end of range (61) above maximum (59): 61
    """
    if not spec:
        raise CronSyntaxError("empty spec string")
    if spec.startswith("@"):
        return _descriptor(spec)
    fields = spec.split()
    if len(fields) != 5:
        raise CronSyntaxError(
            f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
        )
    minute, hour, dom, month, dow = fields
    return CronSchedule(
        _field(minute, MINUTES),
        _field(hour, HOURS),
        _field(dom, DAYS_OF_MONTH),
        _field(month, MONTHS),
        _field(dow, DAYS_OF_WEEK),
    )


def _descriptor(spec: str) -> Schedule:
    if spec in DESCRIPTORS:
        parsed = parse_standard(DESCRIPTORS[spec])
        assert isinstance(parsed, CronSchedule)
        return parsed
    every = "@every "
    if spec.startswith(every):
        text = spec[len(every) :]
        try:
            seconds = parse_go_duration(text)
        except DurationError as error:
            raise CronSyntaxError(f"failed to parse duration {spec}: {error}") from None
        return EverySchedule(max(1, math.floor(seconds)))
    raise CronSyntaxError(f"unrecognized descriptor: {spec}")


def _field(text: str, bounds: _Bounds) -> Field:
    values: set[int] = set()
    star = False
    for expression in text.split(","):
        part, part_star = _range(expression, bounds)
        values |= part
        star = star or part_star
    return Field(frozenset(values), star)


def _range(expression: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """robfig `getRange`: one `*`, `a`, `a-b`, with an optional `/step`."""
    range_and_step = expression.split("/")
    if len(range_and_step) > 2:
        raise CronSyntaxError(f"too many slashes: {expression}")
    start, end, star, single = _span(range_and_step[0], expression, bounds)
    step = 1
    if len(range_and_step) == 2:
        step = _int(range_and_step[1])
        end = bounds.high if single else end
        star = star and step <= 1
    if start < bounds.low:
        raise CronSyntaxError(
            f"beginning of range ({start}) below minimum ({bounds.low}): {expression}"
        )
    if end > bounds.high:
        raise CronSyntaxError(f"end of range ({end}) above maximum ({bounds.high}): {expression}")
    if start > end:
        raise CronSyntaxError(
            f"beginning of range ({start}) beyond end of range ({end}): {expression}"
        )
    if step == 0:
        raise CronSyntaxError(f"step of range should be a positive number: {expression}")
    return set(range(start, end + 1, step)), star


def _span(text: str, expression: str, bounds: _Bounds) -> tuple[int, int, bool, bool]:
    """(start, end, star, single value) of the part before the `/`."""
    low_and_high = text.split("-")
    single = len(low_and_high) == 1
    if low_and_high[0] in ("*", "?"):
        return bounds.low, bounds.high, True, single
    start = _int_or_name(low_and_high[0], bounds)
    if single:
        return start, start, False, single
    if len(low_and_high) == 2:
        return start, _int_or_name(low_and_high[1], bounds), False, single
    raise CronSyntaxError(f"too many hyphens: {expression}")


def _int_or_name(text: str, bounds: _Bounds) -> int:
    lowered = text.lower()
    if lowered in bounds.names:
        return bounds.low + bounds.names.index(lowered)
    return _int(text)


def _int(text: str) -> int:
    """Go's strconv.Atoi (an optional sign, ASCII digits), then robfig's negative check."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        raise CronSyntaxError(
            f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'
        )
    number = int(text)
    if number < 0:
        raise CronSyntaxError(f"negative number ({number}) not allowed: {text}")
    return number
