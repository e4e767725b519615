"""A reconnect storm, judged: the bound on reconnect time, the distribution printed, the
pods that stayed, and what the ingress refused (suites/test_ws_storm.py).

Every decision is a pure function of plain data: the profile, the load's timeline
records, the pods' watch history, the lines of the ingress's error log.

The reconnect bound (`reconnect_bound`) comes from the profile, never from the test.
A socket of the killed pod is closed with 1001 once the pod's drain delay is over, and
by then the pod has left the ingress's upstreams (that is what the drain delay is
for, suite-pod-kill.yaml says why), so every reconnect lands on a pod that stayed, one
that is Ready already: no replacement has to start for it. From the close on, the
client (loadtests/harmonyflow/users.py) reconnects at its next task, at most
HF_WAIT_MAX seconds later (its backoff: uniform in [HF_WAIT_MIN, HF_WAIT_MAX], which is
what spreads the storm), and the reconnect is a handshake, a resubscription and the
replay of what it missed, which the client gives up on after HF_TIMEOUT seconds. So a
reconnect that takes longer than HF_WAIT_MAX + HF_TIMEOUT spent more than one client
timeout in the remaining pods' queues: the storm was not absorbed.

    >>> reconnect_bound({"HF_WAIT_MAX": "20", "HF_TIMEOUT": "5"}).seconds
    25.0
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from resilience.load.requests import RequestRecord
from resilience.observe.probes import PodHistory
from resilience.slo.objectives import merge_histograms, percentile
from resilience.slo.result import CheckResult, Violation

# loadtests/harmonyflow/users.py defaults, for a profile that does not set them
CLIENT_DEFAULTS = {"HF_WAIT_MIN": 0.5, "HF_WAIT_MAX": 1.5, "HF_TIMEOUT": 10.0}
RECONNECT = ("WSRECONN", "reconnect")
CONNECT = ("WSCONN", "connect")
RECONNECT_LIMIT = "storm.reconnect_p99_seconds"
SURVIVOR_LIMIT = "storm.survivor_restarts"
INGRESS_LIMIT = "storm.ingress_refusals"


@dataclass(frozen=True)
class Bound:
    seconds: float
    why: str


def _client_setting(env: Mapping[str, str], name: str) -> float:
    text = str(env.get(name, "")).strip()
    return float(text) if text else CLIENT_DEFAULTS[name]


def reconnect_bound(env: Mapping[str, str]) -> Bound:
    """The p99 reconnect time a storm may take: the client's backoff plus one client
    timeout (module docstring), from the profile's `load.env`."""
    wait_max = max(_client_setting(env, "HF_WAIT_MIN"), _client_setting(env, "HF_WAIT_MAX"))
    timeout = _client_setting(env, "HF_TIMEOUT")
    return Bound(
        wait_max + timeout,
        f"HF_WAIT_MAX {wait_max:g}s (the client's backoff before it reconnects) + HF_TIMEOUT "
        f"{timeout:g}s (what it allows the handshake, resubscription and replay)",
    )


# ---- distributions ----


@dataclass(frozen=True)
class Distribution:
    """A histogram of milliseconds, summarised: count, percentiles, max."""

    histogram: Mapping[float, int]

    @property
    def count(self) -> int:
        return sum(self.histogram.values())

    def quantile(self, q: float) -> float | None:
        return percentile(self.histogram, q)

    def describe(self, unit: float = 1000.0, suffix: str = "s") -> str:
        """`n=3 p50=1.2s p90=... p99=... max=...` (`unit` ms per printed unit).

        >>> Distribution({1000.0: 2, 3000.0: 1}).describe()
        'n=3 p50=1s p90=3s p99=3s max=3s'
        """
        if not self.count:
            return "n=0"
        shown = [f"n={self.count}"]
        for label, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
            value = self.quantile(q)
            shown.append(f"{label}={(value or 0) / unit:.3g}{suffix}")
        return " ".join(shown)

    def bars(self, edges_ms: Sequence[float], width: int = 40) -> list[str]:
        """One text bar per bucket `(previous edge, edge]`, the last one open-ended.

        >>> print("\\n".join(Distribution({500.0: 3, 1500.0: 1}).bars([1000.0], width=6)))
             <= 1s      3 ######
              > 1s      1 ##
        """
        counts = [0] * (len(edges_ms) + 1)
        for value, count in self.histogram.items():
            index = next((i for i, edge in enumerate(edges_ms) if value <= edge), len(edges_ms))
            counts[index] += count
        most = max(counts) or 1
        labels = [f"<= {edge / 1000:g}s" for edge in edges_ms] + [f"> {edges_ms[-1] / 1000:g}s"]
        return [
            f"{label:>10} {count:>6} {'#' * round(width * count / most)}".rstrip()
            for label, count in zip(labels, counts, strict=True)
        ]


def entry_distribution(
    records: Iterable[RequestRecord], key: tuple[str, str], since: float, until: float
) -> tuple[Distribution, int]:
    """The successes of entry `key` that began in [since, until) as a distribution, and
    how many of them failed.

    >>> from resilience.load.requests import RequestRecord as R
    >>> rows = [R(9, "WSRECONN", "reconnect", 1, 0, {100.0: 1}),
    ...         R(10, "WSRECONN", "reconnect", 2, 1, {2000.0: 2})]
    >>> found, failed = entry_distribution(rows, RECONNECT, 10.0, 20.0)
    >>> found.describe(), failed
    ('n=2 p50=2s p90=2s p99=2s max=2s', 1)
    """
    chosen = [r for r in records if r.key == key and since <= r.t < until]
    histogram = merge_histograms(r.latency_ms for r in chosen)
    return Distribution(histogram), sum(r.failed for r in chosen)


def check_reconnect_time(found: Distribution, bound: Bound, what: str) -> CheckResult:
    """The storm's p99 reconnect time within `bound`; no reconnect at all is a failure too
    (the storm did not happen, so nothing was shown)."""
    p99 = found.quantile(99)
    details: dict[str, float | int | str] = {"reconnects": found.count, "bound": bound.seconds}
    if p99 is None:
        message = f"{what}: no socket reconnected, so no storm was observed"
        violation = Violation(RECONNECT_LIMIT, bound.seconds, 0, 0.0, -1, message)
        return CheckResult("reconnect storm", (violation,), details)
    details["p99_seconds"] = p99 / 1000
    if p99 / 1000 <= bound.seconds:
        return CheckResult("reconnect storm", (), details)
    message = (
        f"{what}: p99 reconnect time {p99 / 1000:.3g}s over {found.count} reconnects, limit "
        f"{RECONNECT_LIMIT} <= {bound.seconds:g}s ({bound.why})"
    )
    violation = Violation(RECONNECT_LIMIT, bound.seconds, p99 / 1000, 0.0, -1, message)
    return CheckResult("reconnect storm", (violation,), details)


# ---- the pods that stayed ----


def check_survivors_steady(
    histories: Mapping[str, PodHistory], survivors: Iterable[str], since: float
) -> CheckResult:
    """Every pod that stayed was restarted never and Ready throughout, from `since` on.

    A restart of a pod that took the storm is what a liveness probe starved by it does
    (the probe's 1 s timeout on a pod busy accepting sockets); a Ready condition gone
    false takes the pod out of the endpoints and pushes its sockets into the storm too.
    """
    violations = []
    for pod in sorted(survivors):
        history = histories.get(pod)
        if history is None:
            continue
        for restart in history.restarts_after(since):
            message = (
                f"{pod} restarted during the storm (restartCount {restart.restart_count}, "
                f"{restart.reason or 'no reason'}, exit {restart.exit_code}): limit "
                f"{SURVIVOR_LIMIT} = 0"
            )
            violations.append(
                Violation(SURVIVOR_LIMIT, 0, restart.restart_count, restart.wall, -1, message)
            )
        for transition in history.transitions:
            if transition.wall >= since and not transition.ready:
                message = f"{pod} stopped being Ready during the storm: a pod that stayed must"
                violations.append(
                    Violation(SURVIVOR_LIMIT, 0, 1, transition.wall, transition.index, message)
                )
    return CheckResult("pods that stayed", tuple(violations), {"pods": len(histories)})


# ---- what the ingress refused ----

# nginx's own words when it runs short (src/event/ngx_event_accept.c, ngx_event_connect.c,
# src/core/ngx_connection.c `ngx_get_connection`), and the errno of a descriptor limit.
_EXHAUSTION = (
    ("worker_connections", re.compile(r"worker_connections are not enough")),
    ("open files", re.compile(r"\(24: Too many open files\)")),
    ("ephemeral ports", re.compile(r"\(99: Cannot assign requested address\)")),
)
_CLIENT_MECHANISMS = (
    ("503 no ready endpoints", re.compile(r"\b503\b")),
    ("502 bad gateway", re.compile(r"\b502\b")),
    ("500 internal error", re.compile(r"\b500\b")),
    ("504 gateway timeout", re.compile(r"\b504\b")),
    ("timeout", re.compile(r"timed? ?out", re.IGNORECASE)),
    ("refused", re.compile(r"refused", re.IGNORECASE)),
    ("reset", re.compile(r"reset|broken pipe", re.IGNORECASE)),
    # nginx with no connection left for an accepted socket closes it before answering
    ("closed unanswered", re.compile(r"disconnected|lost|closed|EOF", re.IGNORECASE)),
)


def exhaustion_in_log(lines: Iterable[str]) -> Counter[str]:
    """nginx error-log lines that say it ran short of connections, by mechanism.

    >>> exhaustion_in_log([
    ...     "2026/12/07 03:20:01 [alert] 7#7: 1024 worker_connections are not enough",
    ...     "2026/12/07 03:20:01 [crit] 7#7: accept4() failed (24: Too many open files)",
    ...     "2026/12/07 03:20:02 [notice] 7#7: signal process started"])
    Counter({'worker_connections': 1, 'open files': 1})
    """
    found: Counter[str] = Counter()
    for line in lines:
        for mechanism, pattern in _EXHAUSTION:
            if pattern.search(line):
                found[mechanism] += 1
                break
    return found


def refusals_by_mechanism(errors: Iterable[tuple[str, int]]) -> Counter[str]:
    """Failed connects the clients saw (`(error text, count)`), by what refused them.

    >>> refusals_by_mechanism([("WebSocketBadStatusException: Handshake status 503", 4),
    ...                        ("ConnectionResetError: [Errno 104] reset by peer", 1)])
    Counter({'503 no ready endpoints': 4, 'reset': 1})
    """
    found: Counter[str] = Counter()
    for text, count in errors:
        mechanism = next((m for m, p in _CLIENT_MECHANISMS if p.search(text)), "other")
        found[mechanism] += count
    return found


def connect_errors(records: Iterable[RequestRecord], since: float) -> list[tuple[str, int]]:
    """The error texts of failed WebSocket connects that began at `since` or later."""
    found: Counter[str] = Counter()
    for record in records:
        if record.key == CONNECT and record.t >= since:
            found.update(record.errors)
    return sorted(found.items())


def check_ingress_refused_nothing(
    log_exhaustion: Mapping[str, int], client_refusals: Mapping[str, int], log_read: bool
) -> CheckResult:
    """No connection refused for want of connections: nginx said nothing of running short
    (when its log could be read), and no client's connect failed at all (a 503 or a reset
    during the storm is a session that could not come back, whatever the cause)."""
    violations = []
    for mechanism, count in sorted(log_exhaustion.items()):
        message = (
            f"the ingress ran short of {mechanism} {count} time(s) (nginx error log): "
            f"limit {INGRESS_LIMIT} = 0"
        )
        violations.append(Violation(INGRESS_LIMIT, 0, count, 0.0, -1, message))
    refused = sum(client_refusals.values())
    if refused:
        shown = ", ".join(f"{m} x{n}" for m, n in sorted(client_refusals.items()))
        message = f"{refused} WebSocket connects refused ({shown}): limit {INGRESS_LIMIT} = 0"
        violations.append(Violation(INGRESS_LIMIT, 0, refused, 0.0, -1, message))
    details: dict[str, float | int | str] = {
        "error_log": "read" if log_read else "not available",
        "refused": refused,
    }
    return CheckResult("ingress refusals", tuple(violations), details)
