"""Small, bounded REST traffic through the ingress that keeps score.

The resilience suites need to know, during a fault, whether the service kept
answering and whether it kept what it acknowledged. `SessionTraffic` is one
background thread that alternates a write (`PUT /api/v1/sessions/{id}`, kept in
a ledger once acknowledged) and a read, bounded in requests and in seconds. The
verdicts over what it recorded live with the other SLO checks:

- `resilience.slo.writes`: `lost_writes` (every acknowledged write must be
  visible afterwards) and `write_gap` (the longest pause between acknowledged
  writes around a fault);
- `resilience.slo.error_budget`: `check_error_budget` (failed requests within the
  budget a profile's SLO sets).

`SessionTraffic` is the correctness witness every suite keeps next to its load:
a handful of sessions whose every acknowledged write is checked afterwards. The
load itself is Locust's REST and WebSocket users (resilience.load.session), behind
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

from resilience.slo.error_budget import ErrorBudget, Failure, TrafficOutcome
from resilience.slo.result import CheckResult
from resilience.slo.writes import Ack

SESSIONS_PATH = "/api/v1/sessions"
FAILURE_SAMPLES = 5


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
    naming the SLO, the window and the observed value. resilience.load.session's
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
