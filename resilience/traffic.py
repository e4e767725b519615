"""Small, bounded REST traffic through the ingress that keeps score, and its pure verdicts.

The resilience suites need to know, during a fault, whether the service kept
answering and whether it kept what it acknowledged. `SessionTraffic` is one
background thread that alternates a write (`PUT /api/v1/sessions/{id}`, kept in
a ledger once acknowledged) and a read, bounded in requests and in seconds. The
verdicts are pure functions over what it recorded:

- `lost_writes`: every acknowledged write must be visible afterwards;
- `write_gap`: the longest pause between acknowledged writes around a fault;
- `check_error_budget`: failed requests within a fraction of all requests.

`SessionTraffic` is the correctness witness every suite keeps next to its load:
a handful of sessions whose every acknowledged write is checked afterwards. The
load itself is Locust's REST and WebSocket users (resilience.suite_load), behind
the `LoadSession` protocol: start, mark fault windows, stop, judge per window.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from resilience.observe.violations import CheckResult, Violation, format_clock
from resilience.slo import Slo, SloKind

ERROR_BUDGET_LIMIT = "traffic.errorRate"
LOST_WRITES_LIMIT = "traffic.lostWrites"
SESSIONS_PATH = "/api/v1/sessions"
FAILURE_SAMPLES = 5


@dataclass(frozen=True)
class Ack:
    """One write the service acknowledged (HTTP 200 with the new version)."""

    session: str
    version: int
    state: Mapping[str, Any]
    at: float = 0.0  # time.monotonic() of the acknowledgement


@dataclass(frozen=True)
class Failure:
    """One request that did not succeed: status 0 means no HTTP answer at all."""

    wall: float
    method: str
    path: str
    status: int
    reason: str

    def describe(self) -> str:
        answer = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.method} {self.path} at {format_clock(self.wall)}: {answer} {self.reason}"


@dataclass(frozen=True)
class TrafficOutcome:
    """What one traffic run saw: counts, the first failures, and the acknowledged writes."""

    requests: int = 0
    failures: int = 0
    samples: tuple[Failure, ...] = ()
    acked: tuple[Ack, ...] = ()
    seconds: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ErrorBudget:
    """At most `max_error_rate` of the requests may fail, or at most `max_failures` of
    them when set, and never fewer than `min_requests` may have been sent (too little
    traffic proves nothing). `source` names the profile SLO it was read from."""

    max_error_rate: float = 1.0
    min_requests: int = 20
    max_failures: int | None = None
    source: str = ""

    @classmethod
    def from_slo(cls, slo: Slo) -> ErrorBudget:
        """The witness traffic judged by the same number as the load: a `failures` SLO
        gives a count, an `error_rate` SLO a ratio.

        >>> from resilience.slo import SloKind
        >>> ErrorBudget.from_slo(Slo("fault-window-error-budget", SloKind.FAILURES, 0)).describe()
        '0 failed requests (fault-window-error-budget)'
        """
        if slo.kind is SloKind.FAILURES:
            return cls(max_failures=int(slo.limit), source=slo.name)
        if slo.kind is SloKind.ERROR_RATE:
            return cls(max_error_rate=slo.limit, source=slo.name)
        raise ValueError(f"SLO {slo.name} is a {slo.kind.value} SLO, not an error budget")

    def exceeded_by(self, outcome: TrafficOutcome) -> bool:
        if self.max_failures is not None:
            return outcome.failures > self.max_failures
        return outcome.error_rate > self.max_error_rate

    def describe(self) -> str:
        limit = (
            f"{self.max_failures} failed requests"
            if self.max_failures is not None
            else f"{self.max_error_rate:.2%}"
        )
        return f"{limit} ({self.source})" if self.source else limit


def check_error_budget(outcome: TrafficOutcome, budget: ErrorBudget, what: str) -> CheckResult:
    """Failed requests within the budget, with enough requests to tell.

    >>> outcome = TrafficOutcome(requests=200, failures=3)
    >>> check_error_budget(outcome, ErrorBudget(0.01), "rollout").first.message
    'rollout: 3 of 200 requests through the ingress failed (1.50%), more than the budget of 1.00%'
    >>> check_error_budget(outcome, ErrorBudget(0.02), "rollout").ok
    True
    """
    details: dict[str, float | int | str] = {
        "requests": outcome.requests,
        "failures": outcome.failures,
        "error_rate": round(outcome.error_rate, 5),
        "budget": budget.describe(),
    }
    if outcome.requests < budget.min_requests:
        message = (
            f"{what}: only {outcome.requests} requests went out (at least {budget.min_requests} "
            "needed to judge the error budget); the traffic loop could not run"
        )
        return CheckResult(
            "error budget",
            (
                Violation(
                    ERROR_BUDGET_LIMIT, budget.min_requests, outcome.requests, 0.0, -1, message
                ),
            ),
            details,
        )
    if not budget.exceeded_by(outcome):
        return CheckResult("error budget", (), details)
    first = outcome.samples[0] if outcome.samples else None
    message = (
        f"{what}: {outcome.failures} of {outcome.requests} requests through the ingress failed "
        f"({outcome.error_rate:.2%}), more than the budget of {budget.describe()}"
    )
    counted = budget.max_failures
    if outcome.samples:
        message += "; first: " + "; ".join(f.describe() for f in outcome.samples[:3])
    return CheckResult(
        "error budget",
        (
            Violation(
                ERROR_BUDGET_LIMIT,
                budget.max_error_rate if counted is None else counted,
                round(outcome.error_rate, 5) if counted is None else outcome.failures,
                first.wall if first else 0.0,
                -1,
                message,
            ),
        ),
        details,
    )


def write_gap(acked: Iterable[Ack], fault_at: float) -> float | None:
    """The longest pause between acknowledged writes from `fault_at` on, in seconds.

    From the last write acknowledged before the fault to the first one after it,
    wherever in the window the fault actually bit. None when no write was
    acknowledged on one side of `fault_at` (the service never recovered).

    >>> write_gap([Ack("s", 1, {}, 9.5), Ack("s", 2, {}, 10.2), Ack("s", 3, {}, 12.0)], 10.0)
    1.8
    """
    times = sorted(ack.at for ack in acked)
    before = [t for t in times if t <= fault_at]
    after = [t for t in times if t > fault_at]
    if not before or not after:
        return None
    window = [before[-1], *after]
    return round(max(b - a for a, b in itertools.pairwise(window)), 6)


def lost_writes(
    acked: Iterable[Ack], final: Mapping[str, tuple[int, Mapping[str, Any]]]
) -> list[str]:
    """Every acknowledged write must be visible: the final version is at least the acked one,
    and where nothing was written after it, the state is the acked state. A session read
    back as version 0 is gone (versions start at 1), and its creation was acknowledged.

    >>> lost_writes([Ack("a", 2, {"n": 2})], {"a": (1, {"n": 1})})
    ['session a: acknowledged version 2 but the service has version 1']
    """
    latest: dict[str, Ack] = {}
    for ack in acked:
        if ack.session not in latest or ack.version > latest[ack.session].version:
            latest[ack.session] = ack
    findings = [
        f"session {session}: its creation was acknowledged but the service no longer has it"
        for session, (version, _) in sorted(final.items())
        if version == 0 and session not in latest
    ]
    for session, ack in sorted(latest.items()):
        version, state = final.get(session, (0, {}))
        if version < ack.version:
            findings.append(
                f"session {session}: acknowledged version {ack.version} "
                f"but the service has version {version}"
            )
        elif version == ack.version and dict(state) != dict(ack.state):
            findings.append(
                f"session {session}: version {version} holds {dict(state)}, "
                f"acknowledged {dict(ack.state)}"
            )
    return findings


def check_no_lost_writes(
    acked: Sequence[Ack], final: Mapping[str, tuple[int, Mapping[str, Any]]], what: str
) -> CheckResult:
    """`lost_writes` as a check whose violation names how many sessions lost data."""
    lost = lost_writes(acked, final)
    details = {"acknowledged_writes": len(acked), "sessions": len(final)}
    if not lost:
        return CheckResult("acknowledged writes", (), details)
    shown = "; ".join(lost[:FAILURE_SAMPLES]) + (" ..." if len(lost) > FAILURE_SAMPLES else "")
    message = (
        f"{what}: {len(lost)} session(s) lost acknowledged writes "
        f"({len(acked)} writes acknowledged): {shown}"
    )
    return CheckResult(
        "acknowledged writes",
        (Violation(LOST_WRITES_LIMIT, 0, len(lost), time.time(), -1, message),),
        details,
    )


# ---- HTTP, bounded ----


def request(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """One JSON request; (status, body). Status 0 and the reason when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    call = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return int(error.code), json.loads(raw) if raw else None
        except ValueError:
            return int(error.code), raw.decode(errors="replace")[:200]
    except (OSError, ValueError) as error:  # refused, reset, timed out, torn JSON
        return 0, f"{type(error).__name__}: {error}"


def create_sessions(base: str, count: int, owner: str = "resilience-suite") -> list[str]:
    """Create `count` sessions; raises TrafficError naming the answer when one fails."""
    ids = []
    for index in range(count):
        status, body = request(base, "POST", SESSIONS_PATH, {"owner": owner, "state": {"i": index}})
        if status != 201 or not isinstance(body, dict):
            raise TrafficError(f"POST {base}{SESSIONS_PATH} answered {status}: {body}")
        ids.append(str(body["id"]))
    return ids


READ_BACK_UNAVAILABLE_SECONDS = 60.0  # a 503 is "not now", not "lost": wait this long for it


def read_back(
    base: str,
    sessions: Iterable[str],
    unavailable_seconds: float = READ_BACK_UNAVAILABLE_SECONDS,
) -> dict[str, tuple[int, Mapping[str, Any]]]:
    """The final (version, state) of every session, (0, {}) for one the service lost (404);
    raises TrafficError when one is unreadable. A 503 (no ready endpoint yet after a
    fault) is asked again, for at most `unavailable_seconds`: whether a write was lost
    is not whether the service answers at this very moment."""
    final: dict[str, tuple[int, Mapping[str, Any]]] = {}
    deadline = time.monotonic() + unavailable_seconds
    for session in sessions:
        status, body = request(base, "GET", f"{SESSIONS_PATH}/{session}")
        while status == 503 and time.monotonic() < deadline:
            time.sleep(1.0)
            status, body = request(base, "GET", f"{SESSIONS_PATH}/{session}")
        if status == 404:
            final[session] = (0, {})
            continue
        if status != 200 or not isinstance(body, dict):
            raise TrafficError(f"GET {SESSIONS_PATH}/{session} answered {status}: {body}")
        final[session] = (int(body["version"]), dict(body["state"]))
    return final


class TrafficError(RuntimeError):
    """The traffic helper could not set up or read back (not a verdict on the service)."""


class LoadSession(Protocol):
    """What the suites need from load: start it, mark each fault, stop it, judge it.

    `fault(name)` marks its block as a fault window; `check(what)` judges the load's
    SLOs per window (baseline / fault / recovery) once it is stopped, each violation
    naming the SLO, the window and the observed value. resilience.suite_load's
    `LocustLoad` is the implementation.
    """

    def start(self) -> LoadSession: ...
    def stop(self) -> TrafficOutcome: ...
    def outcome(self) -> TrafficOutcome: ...
    def fault(self, name: str) -> AbstractContextManager[None]: ...
    def check(self, what: str) -> CheckResult: ...
    def witness_budget(self) -> ErrorBudget: ...
    def limit(self, name: str) -> float: ...
    def __enter__(self) -> LoadSession: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@dataclass
class SessionTraffic:
    """One thread: write a session, read one, repeat, until stopped or a bound is hit.

    Bounded by `max_requests` and `max_seconds`; each request by `timeout`. A
    failed request waits `backoff` before the next one, so an outage does not
    turn into a busy loop.
    """

    base: str
    sessions: Sequence[str]
    max_requests: int = 20_000
    max_seconds: float = 300.0
    interval: float = 0.02
    backoff: float = 0.1
    timeout: float = 3.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _requests: int = 0
    _failures: int = 0
    _samples: list[Failure] = field(default_factory=list, repr=False)
    _acked: list[Ack] = field(default_factory=list, repr=False)
    _began: float = 0.0
    _ended: float | None = None

    def start(self) -> SessionTraffic:
        if not self.sessions:
            raise TrafficError("SessionTraffic needs at least one session")
        if self._thread is not None:
            raise TrafficError("traffic already started")
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="traffic-sessions", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> TrafficOutcome:
        """Stop and join (within one request timeout plus a second); the outcome so far."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1.0 if timeout is None else timeout)
            if self._thread.is_alive():
                raise TrafficError("the traffic thread did not stop in time")
        if self._ended is None:
            self._ended = time.monotonic()
        return self.outcome()

    def outcome(self) -> TrafficOutcome:
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return TrafficOutcome(
                requests=self._requests,
                failures=self._failures,
                samples=tuple(self._samples),
                acked=tuple(self._acked),
                seconds=round(end - self._began, 3) if self._began else 0.0,
            )

    def acked_since(self, moment: float) -> int:
        """Writes acknowledged after `moment` (time.monotonic())."""
        with self._lock:
            return sum(1 for ack in self._acked if ack.at > moment)

    def __enter__(self) -> SessionTraffic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        for counter in itertools.count(1):
            if self._stop.is_set() or counter > self.max_requests:
                break
            if time.monotonic() >= deadline:
                break
            session = self.sessions[(counter // 2) % len(self.sessions)]
            ok = self._write(session, counter) if counter % 2 else self._read(session)
            self._stop.wait(self.interval if ok else self.backoff)
        with self._lock:
            self._ended = time.monotonic()

    def _write(self, session: str, counter: int) -> bool:
        state = {"n": counter}
        path = f"{SESSIONS_PATH}/{session}"
        status, body = request(self.base, "PUT", path, {"state": state}, timeout=self.timeout)
        if status == 200 and isinstance(body, dict) and "version" in body:
            self._record(None, Ack(session, int(body["version"]), state, time.monotonic()))
            return True
        self._record(Failure(time.time(), "PUT", path, status, _reason(body)), None)
        return False

    def _read(self, session: str) -> bool:
        path = f"{SESSIONS_PATH}/{session}"
        status, body = request(self.base, "GET", path, timeout=self.timeout)
        if status == 200:
            self._record(None, None)
            return True
        self._record(Failure(time.time(), "GET", path, status, _reason(body)), None)
        return False

    def _record(self, failure: Failure | None, ack: Ack | None) -> None:
        with self._lock:
            self._requests += 1
            if ack is not None:
                self._acked.append(ack)
            if failure is not None:
                self._failures += 1
                if len(self._samples) < FAILURE_SAMPLES:
                    self._samples.append(failure)


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:160]
    return str(body)[:160]
