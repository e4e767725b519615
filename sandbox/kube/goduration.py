"""Go's `time.ParseDuration` and `Duration.String`, which Kubernetes-side Go code uses for
every duration it reads and prints.

Chaos Mesh parses `spec.duration`, `delay.latency` and `delay.jitter` with it
(`api/v1alpha1/common_webhook.go` `Duration.Validate`, `pkg/netem/convert.go`), so the
sandbox accepts and refuses exactly what Go does: a sequence of decimal numbers each
with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), an optional sign, and the
bare `0`. `"1h30m"`, `"1.5s"` and `"-2ms"` parse; `"10"`, `"1S"`, `""` and `"1d"` do not.
"""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """The string is not a Go duration; the message is Go's."""


def parse_go_duration(text: str) -> float:
    """Seconds in `text`, or `DurationError` with the message Go's parser gives.

    >>> parse_go_duration("1h30m"), parse_go_duration("100ms"), parse_go_duration("0")
    (5400.0, 0.1, 0.0)
    >>> try:
    ...     parse_go_duration("10")
    ... except DurationError as error:
    ...     print(error)
    time: missing unit in duration "10"
    """
    body = text
    sign = 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise DurationError(f"time: invalid duration {_quote(text)}")
    total, position = 0.0, 0
    while position < len(body):
        match = _TERM.match(body, position)
        if match is None:
            number = re.match(r"\d+\.?\d*|\.\d+", body[position:])
            if number is None:
                raise DurationError(f"time: invalid duration {_quote(text)}")
            rest = body[position + number.end() :]
            unit = re.match(r"[^0-9.]*", rest)
            if not rest or unit is None or not unit.group():
                raise DurationError(f"time: missing unit in duration {_quote(text)}")
            unknown = _quote(unit.group())
            raise DurationError(f"time: unknown unit {unknown} in duration {_quote(text)}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sign * total


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String: `1h30m0s`, `1.5s`, `100ms`, `0s`.

    >>> [format_go_duration(n) for n in (0, 5400 * 10**9, 1_500_000_000, 100_000_000, 1500, -2)]
    ['0s', '1h30m0s', '1.5s', '100ms', '1.5µs', '-2ns']
    """
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if value == 0:
        return "0s"
    if value < 10**9:
        for unit, scale in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if value >= scale:
                return f"{sign}{_fraction(value, scale)}{unit}"
    hours, rest = divmod(value, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_fraction(rest, 10**9)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, scale: int) -> str:
    whole, fraction = divmod(value, scale)
    digits = str(fraction).rjust(len(str(scale)) - 1, "0").rstrip("0") if fraction else ""
    return f"{whole}.{digits}" if digits else str(whole)
