"""Service-level objectives and their evaluation: pure functions over plain data.

An SLO names a set of requests (by Locust request type and name), a time window of
the run (`all`, or `baseline` / `fault` / `recovery` around the chaos marks) and a
limit. Latency is computed **on successful requests only**: Locust counts failures
as requests and their (often 1 ms "connection refused") times drag its percentiles
down exactly when the service is failing (see ../shared/reference/locust.md §4.2).
Errors are judged apart, as a budget: failures / requests in the window.

    >>> get = EndpointStats(ok=9, failed=1, latency_ms={5.0: 8, 40.0: 1})
    >>> stats = {Window.ALL: WindowStats(seconds=10.0, endpoints={("GET", "/s"): get})}
    >>> slo = Slo("p90", SloKind.LATENCY, limit=30.0, percentile=90.0)
    >>> evaluate([slo], stats)[0].line()
    'FAIL p90: p90 latency (successful requests) in window all = 40 ms, limit <= 30 ms'

Verdicts are one line each, naming the SLO and the observed value: a release
manager reads them in CI logs, and `resilience certify` exits 1 when one fails.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from resilience.slo.result import CheckResult, Violation

SLO_LIMIT_PREFIX = "load.slo."  # a failed SLO is the violation of limit load.slo.<name>
RUN_LIMIT = "load.run"  # the load run itself failed: no SLO could be judged


class Window(enum.Enum):
    """Phases of a run, cut by the chaos timeline's fault marks."""

    ALL = "all"
    BASELINE = "baseline"  # before the first fault starts (the whole run if none)
    FAULT = "fault"  # while any fault is active
    RECOVERY = "recovery"  # after a fault ended, while none is active


class SloKind(enum.Enum):
    LATENCY = "latency"  # percentile of successful response times <= limit (ms)
    ERROR_RATE = "error_rate"  # failures / requests <= limit (a ratio: the error budget)
    FAILURES = "failures"  # number of failures <= limit (e.g. 0 stale reads)
    EVENTS = "events"  # number of matching entries, failed or not, <= limit (0 sockets lost)
    THROUGHPUT = "throughput"  # successful requests per second >= limit


class Status(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIPPED = "SKIP"  # the window did not happen (no fault was marked): nothing to judge


@dataclass(frozen=True)
class RequestSelector:
    """Which Locust entries an SLO covers; an empty set means "any"."""

    types: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    exclude_types: frozenset[str] = frozenset()
    exclude_names: frozenset[str] = frozenset()

    def matches(self, request_type: str, name: str) -> bool:
        return (
            (not self.types or request_type in self.types)
            and (not self.names or name in self.names)
            and request_type not in self.exclude_types
            and name not in self.exclude_names
        )

    def describe(self) -> str:
        parts = []
        if self.types:
            parts.append("types " + ",".join(sorted(self.types)))
        if self.names:
            parts.append("names " + ",".join(sorted(self.names)))
        if self.exclude_types:
            parts.append("not types " + ",".join(sorted(self.exclude_types)))
        if self.exclude_names:
            parts.append("not names " + ",".join(sorted(self.exclude_names)))
        return "; ".join(parts) or "all requests"


@dataclass(frozen=True)
class Slo:
    name: str
    kind: SloKind
    limit: float
    window: Window = Window.ALL
    requests: RequestSelector = field(default_factory=RequestSelector)
    percentile: float = 95.0  # latency only
    min_requests: int = 1  # below this many matching requests the verdict fails (no evidence)


@dataclass(frozen=True)
class EndpointStats:
    """One Locust entry in one window: successes, failures, success-only latency histogram.

    `latency_ms` maps a bucketed response time (ms) to how many successes took it.
    """

    ok: int = 0
    failed: int = 0
    latency_ms: Mapping[float, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return self.ok + self.failed


@dataclass(frozen=True)
class WindowStats:
    seconds: float
    endpoints: Mapping[tuple[str, str], EndpointStats]  # (request type, name) -> stats


@dataclass(frozen=True)
class Verdict:
    slo: Slo
    status: Status
    observed: float | None
    detail: str

    def line(self) -> str:
        """One line: status, SLO name, what was observed against which limit."""
        return f"{self.status.value} {self.slo.name}: {self.detail}"

    @property
    def passed(self) -> bool:
        return self.status is not Status.FAIL

    def violation(self, message: str, wall: float) -> Violation:
        """This verdict in the suite's one result type: limit `load.slo.<name>`, the SLO's
        limit, the observed value (-1 when nothing could be measured), `message`."""
        observed = self.observed if self.observed is not None else -1.0
        return Violation(
            SLO_LIMIT_PREFIX + self.slo.name, self.slo.limit, observed, wall, -1, message
        )


def slo_check(
    verdicts: Sequence[Verdict],
    what: str,
    errors: Sequence[tuple[str, str, int]] = (),
    problems: Sequence[str] = (),
    figures: dict[str, float | int | str] | None = None,
) -> CheckResult:
    """The load's SLO verdicts as one check: a violation per failed SLO or run problem.

    A violation reads "<what>: load SLO <name> failed (window <w>): <observed vs limit>",
    followed by the most frequent errors, so the on-call engineer sees which SLO, in
    which window, by how much, and what the users got back.

    >>> slo = Slo("fault-window-error-budget", SloKind.ERROR_RATE, 0.02, Window.FAULT)
    >>> verdict = Verdict(slo, Status.FAIL, 0.1, "error rate in window fault = 0.1000 (4/40), "
    ...                   "limit <= 0.02")
    >>> print(slo_check([verdict], "kill of pod-a").first.message)
    kill of pod-a: load SLO fault-window-error-budget failed (window fault): error rate in \
window fault = 0.1000 (4/40), limit <= 0.02
    """
    shown = "; ".join(f"{entry}: {message} (x{count})" for entry, message, count in errors)
    suffix = f"; most frequent errors: {shown}" if shown else ""
    violations = [
        Violation(
            RUN_LIMIT, 0, 1, time.time(), -1, f"{what}: the load run itself failed: {problem}"
        )
        for problem in problems
    ]
    for verdict in verdicts:
        if verdict.status is not Status.FAIL:
            continue
        slo = verdict.slo
        message = (
            f"{what}: load SLO {slo.name} failed (window {slo.window.value}): {verdict.detail}"
        )
        violations.append(verdict.violation(message + suffix, time.time()))
    details = dict(figures or {})
    details["slos"] = ", ".join(f"{v.slo.name} {v.status.value}" for v in verdicts)
    return CheckResult("load SLOs", tuple(violations), details)


def percentile(histogram: Mapping[float, int], q: float) -> float | None:
    """Nearest-rank percentile `q` (0 < q <= 100) of a value -> count histogram.

    The smallest value with at least ceil(q/100 * n) samples at or below it; None when
    empty. The same rank rule as Locust's `calculate_response_time_percentile`.

        >>> percentile({1.0: 50, 2.0: 45, 9.0: 5}, 95), percentile({1.0: 50, 2.0: 45, 9.0: 5}, 96)
        (2.0, 9.0)
    """
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def merge_histograms(histograms: Iterable[Mapping[float, int]]) -> dict[float, int]:
    merged: dict[float, int] = {}
    for histogram in histograms:
        for value, count in histogram.items():
            merged[value] = merged.get(value, 0) + count
    return merged


def select(stats: WindowStats, selector: RequestSelector) -> EndpointStats:
    """The matching entries of a window, summed into one."""
    chosen = [s for (kind, name), s in stats.endpoints.items() if selector.matches(kind, name)]
    return EndpointStats(
        ok=sum(s.ok for s in chosen),
        failed=sum(s.failed for s in chosen),
        latency_ms=merge_histograms(s.latency_ms for s in chosen),
    )


def evaluate(slos: Sequence[Slo], windows: Mapping[Window, WindowStats]) -> list[Verdict]:
    """One verdict per SLO, in order. A window absent from `windows` did not happen."""
    return [evaluate_one(slo, windows.get(slo.window)) for slo in slos]


def evaluate_one(slo: Slo, stats: WindowStats | None) -> Verdict:
    where = f"in window {slo.window.value}"
    if stats is None:
        return Verdict(slo, Status.SKIPPED, None, f"window {slo.window.value} did not occur")
    chosen = select(stats, slo.requests)
    if slo.kind is SloKind.FAILURES:
        return _at_most(slo, float(chosen.failed), f"failures {where} = {chosen.failed}")
    if slo.kind is SloKind.EVENTS:
        detail = f"{slo.requests.describe()} {where} = {chosen.requests}"
        return _at_most(slo, float(chosen.requests), detail)
    if chosen.requests < slo.min_requests:
        detail = (
            f"only {chosen.requests} request(s) {where} ({slo.requests.describe()}), "
            f"need {slo.min_requests} to judge"
        )
        return Verdict(slo, Status.FAIL, float(chosen.requests), detail)
    if slo.kind is SloKind.ERROR_RATE:
        ratio = chosen.failed / chosen.requests
        detail = f"error rate {where} = {ratio:.4f} ({chosen.failed}/{chosen.requests})"
        return _at_most(slo, ratio, detail, unit="")
    if slo.kind is SloKind.THROUGHPUT:
        rps = chosen.ok / stats.seconds if stats.seconds > 0 else 0.0
        detail = f"successful requests/s {where} = {rps:.2f}"
        status = Status.PASS if rps >= slo.limit else Status.FAIL
        return Verdict(slo, status, rps, f"{detail}, limit >= {_number(slo.limit)}")
    return _latency(slo, chosen, where)


def _latency(slo: Slo, chosen: EndpointStats, where: str) -> Verdict:
    label = f"p{_number(slo.percentile)} latency (successful requests) {where}"
    value = percentile(chosen.latency_ms, slo.percentile)
    if value is None:
        return Verdict(slo, Status.FAIL, None, f"{label}: no successful request")
    return _at_most(slo, value, f"{label} = {_number(value)} ms", unit=" ms")


def _at_most(slo: Slo, observed: float, detail: str, unit: str = "") -> Verdict:
    status = Status.PASS if observed <= slo.limit else Status.FAIL
    return Verdict(slo, status, observed, f"{detail}, limit <= {_number(slo.limit)}{unit}")


def _number(value: float) -> str:
    """12.0 -> '12', 0.015 -> '0.015': no trailing noise in one-line verdicts."""
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
