"""Seeded faults of the session-state image, as data: one row per fault, one line each.

The image registry maps each fault tag (`ghcr.io/harmonyflow/session-state:<fault>`)
to `python -m sandbox.images.session_state --fault <fault>`; the healthy release tags
run with no fault. Every behaviour below is a field of `Fault`, and every decision the
service takes from it is a pure function of plain data, so a table test covers them.

| fault                     | behaviour                                                            |
|---------------------------|----------------------------------------------------------------------|
| `liveness-hang`           | every handler hangs after HANG_AFTER_SECONDS (default 20)            |
| `never-ready`             | readiness always 503: Running, never Ready, never restarted          |
| `slow-start`              | not ready for STARTUP_SECONDS (default 40); live all along           |
| `ignore-sigterm`          | ignores SIGTERM: only the SIGKILL after the grace period stops it    |
| `ready-before-db`         | readiness 200 without checking PostgreSQL or Redis                   |
| `drops-writes`            | acks writes before COMMIT, flushes every 3 s, SIGTERM loses them     |
| `burns-cpu`               | every request burns about BURN_MS (default 50) ms of CPU             |
| `crash`                   | exits 1 after CRASH_AFTER_SECONDS (default 2): CrashLoopBackOff      |
| `slow-responses`          | every `/api/` request answers SLOW_MS (300) ms late; probes are fast |
| `errors`                  | one `/api/` request in ERROR_EVERY (5) answers 500 as JSON           |
| `drops-events`            | the outbox relay marks events published without publishing them      |
| `abrupt-exit`             | exits at once on SIGTERM: no drain, no close frame, sockets reset    |
| `no-db-reconnect`         | a PostgreSQL connection the server closed is never replaced: 503s    |
| `ws-resume-from-head`     | a WebSocket resuming with `since` > 0 skips to the newest event      |
| `no-request-timeout`      | no timeout on PostgreSQL or Redis calls: a black hole hangs them     |
| `no-redis-timeout`        | no timeout on Redis calls only: a partition toward Redis hangs them  |
| `readiness-ignores-redis` | readiness checks PostgreSQL only: still Ready with Redis down        |
| `slow-shutdown`           | holds requests SLOW_SHUTDOWN_SECONDS (45) after SIGTERM: SIGKILLed   |
| `trusts-stale-cache`      | serves a cached session without asking the database for its version  |
| `never-rebalances`        | WS_MAX_AGE_SECONDS read but never enforced: sockets never move       |

The same lines, longer, are `Fault.description` in `FAULT_TABLE` (the registry shows them).

    >>> readiness_verdict(FAULTS["slow-start"], uptime=3.0, startup_seconds=40.0, stopping=False)
    'not-ready'
    >>> readiness_verdict(HEALTHY, uptime=3.0, startup_seconds=40.0, stopping=False)
    'check'
    >>> [seeded_error(FAULTS["errors"], n) for n in range(1, 6)]
    [False, False, False, False, True]
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal

Readiness = Literal["checked", "never", "delayed", "unchecked", "postgresql-only"]
Dependency = Literal["postgresql", "redis"]
Verdict = Literal["check", "ready", "not-ready"]
SlotState = Literal["empty", "open", "closed"]  # a pool slot: never connected, or its connection
HEALTHY_TAGS = ("1.0.0", "1.0.1", "1.1.0", "1.2.0")
# Release 1.2.0 ages sockets out (`socket_max_age`): after 60 s +/-10 % a socket is closed
# with 1012 and its client reconnects within its backoff (a browser's second or two: the
# session is connected over 95 % of the time), and a minute after a scale-out the
# sockets are spread over every pod. `never-rebalances` has the same setting, ignored.
REBALANCING_MAX_AGE_SECONDS = 60
REBALANCING_TAGS = ("1.2.0", "never-rebalances")
API_PREFIX = "/api/"
HEALTH_PREFIX = "/health/"
DEPENDENCIES: tuple[Dependency, ...] = ("postgresql", "redis")
SLOW_MS = 300.0  # well above any latency SLO the certification profiles set
ERROR_EVERY = 5  # 20 % of API requests: far over any error budget
# gRPC's MAX_CONNECTION_AGE jitter (grpc-go internal/transport/http2_server.go,
# `getJitter`: +/-10 %): sockets opened together are not all closed together, so an age
# limit does not turn every reconnect storm into another one, max_age seconds later.
MAX_AGE_JITTER = 0.1


@dataclass(frozen=True)
class Fault:
    """What a variant does differently from the healthy service."""

    name: str
    description: str
    hangs: bool = False
    readiness: Readiness = "checked"
    ignores_sigterm: bool = False
    write_behind: bool = False
    burns_cpu: bool = False
    crashes: bool = False
    api_delay_ms: float = 0.0
    api_error_every: int = 0
    drops_events: bool = False
    exits_abruptly: bool = False
    keeps_dead_connections: bool = False
    resumes_from_head: bool = False
    # the dependencies whose calls get no timeout (`no-request-timeout`, `no-redis-timeout`)
    unbounded: tuple[Dependency, ...] = ()
    drains_slowly: bool = False
    trusts_cache: bool = False  # a cached session is served as is, its version unchecked
    ignores_max_age: bool = False  # WS_MAX_AGE_SECONDS is read but no socket is ever aged out


HEALTHY = Fault("", "the reference service: no seeded fault")

FAULT_TABLE: tuple[Fault, ...] = (
    Fault(
        "liveness-hang",
        "every handler hangs after HANG_AFTER_SECONDS (default 20): liveness must catch it",
        hangs=True,
    ),
    Fault(
        "never-ready",
        "readiness always answers 503: Running, never Ready, never restarted",
        readiness="never",
    ),
    Fault(
        "slow-start",
        "not ready for STARTUP_SECONDS (default 40); live all along",
        readiness="delayed",
    ),
    Fault(
        "ignore-sigterm",
        "ignores SIGTERM: only SIGKILL at the end of the grace period stops it",
        ignores_sigterm=True,
    ),
    Fault(
        "ready-before-db",
        "readiness answers 200 without checking PostgreSQL or Redis",
        readiness="unchecked",
    ),
    Fault(
        "drops-writes",
        "acks writes before COMMIT from a buffer flushed every 3 s; SIGTERM loses them",
        write_behind=True,
    ),
    Fault(
        "burns-cpu",
        "every request burns about BURN_MS (default 50) ms of CPU",
        burns_cpu=True,
    ),
    Fault(
        "crash",
        "exits with code 1 CRASH_AFTER_SECONDS (default 2) after it starts: CrashLoopBackOff",
        crashes=True,
    ),
    Fault(
        "slow-responses",
        f"every /api/ request answers {SLOW_MS:.0f} ms late; health probes stay fast and Ready",
        api_delay_ms=SLOW_MS,
    ),
    Fault(
        "errors",
        f"one /api/ request in {ERROR_EVERY} answers 500 as JSON; health probes stay Ready",
        api_error_every=ERROR_EVERY,
    ),
    Fault(
        "drops-events",
        "the outbox relay marks session events published without publishing them to AMQP",
        drops_events=True,
    ),
    Fault(
        "abrupt-exit",
        "exits at once on SIGTERM: readiness never fails, no drain, no WebSocket close frame;"
        " open connections are reset and in-flight requests cut",
        exits_abruptly=True,
    ),
    Fault(
        "no-db-reconnect",
        "the PostgreSQL pool never replaces a connection the server closed: after a restart,"
        " a failover or pg_terminate_backend, requests needing the database answer 503"
        " until the process restarts",
        keeps_dead_connections=True,
    ),
    Fault(
        "ws-resume-from-head",
        "a WebSocket client resubscribing with since=<the last seq it saw> is resumed from"
        " the newest event: the events it missed are silently skipped",
        resumes_from_head=True,
    ),
    Fault(
        "no-request-timeout",
        "no timeout on PostgreSQL or Redis calls (DB_TIMEOUT_SECONDS and REDIS_TIMEOUT_SECONDS"
        " ignored): a black-holed dependency hangs requests for as long as the client waits",
        unbounded=DEPENDENCIES,
    ),
    Fault(
        "no-redis-timeout",
        "no timeout on Redis calls (REDIS_TIMEOUT_SECONDS ignored; PostgreSQL keeps"
        " DB_TIMEOUT_SECONDS): a partitioned Redis, its packets dropped, hangs every request"
        " that calls it (a session read, every write); a Redis that stops or refuses still"
        " fails fast",
        unbounded=("redis",),
    ),
    Fault(
        "readiness-ignores-redis",
        "readiness checks PostgreSQL only: with Redis down the pod stays Ready",
        readiness="postgresql-only",
    ),
    Fault(
        "slow-shutdown",
        "after SIGTERM fails readiness but holds requests and WebSockets open for"
        " SLOW_SHUTDOWN_SECONDS (default 45) before draining: past the 30 s grace period,"
        " so SIGKILL cuts them",
        drains_slowly=True,
    ),
    Fault(
        "trusts-stale-cache",
        "serves a session from the Redis cache without checking its version against"
        " PostgreSQL: a cache update lost to a Redis failover leaves an older entry, and"
        " other replicas read it (a stale read of an acknowledged write)",
        trusts_cache=True,
    ),
    Fault(
        "never-rebalances",
        "reads WS_MAX_AGE_SECONDS (its image sets it, as 1.2.0's does) but never closes a"
        " socket for its age: sockets stay on the pod they first reached, so after a"
        " scale-out the new pods stay nearly empty while the old ones stay hot",
        ignores_max_age=True,
    ),
)
FAULTS: dict[str, Fault] = {fault.name: fault for fault in FAULT_TABLE}


def fault_named(name: str) -> Fault:
    """`""` is the healthy service; an unknown name is a `KeyError` naming the choices."""
    if not name:
        return HEALTHY
    try:
        return FAULTS[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r}; choose one of {', '.join(FAULTS)}") from None


def readiness_verdict(
    fault: Fault, uptime: float, startup_seconds: float, stopping: bool
) -> Verdict:
    """Whether `/health/ready` checks the dependencies, or answers without looking.

    Shutting down always fails readiness, so that the pod leaves the endpoints at once;
    `ready-before-db` only skips the dependency checks (`readiness_dependencies` says
    which ones `"check"` means).
    """
    if stopping or fault.readiness == "never":
        return "not-ready"
    if fault.readiness == "unchecked":
        return "ready"
    if fault.readiness == "delayed" and uptime < startup_seconds:
        return "not-ready"
    return "check"


def is_hanging(fault: Fault, uptime: float, hang_after: float) -> bool:
    """`liveness-hang` hangs every handler once the process is `hang_after` seconds old."""
    return fault.hangs and uptime >= hang_after


def should_crash(fault: Fault, uptime: float, crash_after: float) -> bool:
    return fault.crashes and uptime >= crash_after


def burn_cpu(milliseconds: float) -> int:
    """Spin on the CPU for `milliseconds` (at most 5 s); returns the iterations run."""
    deadline = time.perf_counter() + max(0.0, min(milliseconds, 5000.0)) / 1000
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return spins


def is_api_request(path: str) -> bool:
    """The seeded latency and errors hit the API only: probes, /metrics and /ws stay healthy,
    so the pods stay Ready and a rollout to the bad image completes (as a bad release would)."""
    return path.startswith(API_PREFIX)


def seeded_error(fault: Fault, api_request_number: int) -> bool:
    """Whether the `api_request_number`-th API request (counted from 1) of a process fails.

    Every `api_error_every`-th one does: an exact, repeatable fraction, no randomness.
    """
    every = fault.api_error_every
    return every > 0 and api_request_number % every == 0


def readiness_dependencies(fault: Fault) -> tuple[str, ...]:
    """The dependencies a `"check"` verdict looks at.

    The healthy service is Ready only when it can serve as designed, cache and fan-out
    included. `readiness-ignores-redis` counts Redis as optional, since requests are
    still answered without it, so a replica that lost Redis stays in the endpoints and
    the outage never reaches the probes: only reads (all from PostgreSQL now) and
    WebSocket delivery (polling now) feel it.

        >>> readiness_dependencies(FAULTS["readiness-ignores-redis"])
        ('postgresql',)
    """
    if fault.readiness == "postgresql-only":
        return DEPENDENCIES[:1]
    return DEPENDENCIES


def opens_connection(fault: Fault, slot: SlotState) -> bool:
    """Whether acquiring a pool slot connects first, rather than handing out what it holds.

    A connection the server closed (a restart, a failover, pg_terminate_backend) is
    replaced on the next acquire by asyncpg's pool, which the healthy service uses;
    `no-db-reconnect` connects a slot once and never again, so every connection the
    server dropped stays in the pool, failing each request it is handed to.

        >>> [opens_connection(HEALTHY, s) for s in ("empty", "open", "closed")]
        [True, False, True]
        >>> [opens_connection(FAULTS["no-db-reconnect"], s) for s in ("empty", "open", "closed")]
        [True, False, False]
    """
    return slot == "empty" or (slot == "closed" and not fault.keeps_dead_connections)


def dependency_timeout(fault: Fault, dependency: Dependency, configured: float) -> float | None:
    """The bound on one call to `dependency`: `None` (the client libraries' defaults: wait
    as long as the socket stays open) for the dependencies the fault leaves unbounded,
    which is what a service gets that never set one.

    `no-redis-timeout` leaves only Redis unbounded. Redis stopping or refusing closes or
    resets its connections, which fails a call at once with or without a timeout; only
    silence (a partition, a host that went dark) shows the missing bound, so only a
    network fault reveals this tag, where `no-request-timeout` already shows in an RDS
    failover.

        >>> dependency_timeout(HEALTHY, "redis", 0.5)
        0.5
        >>> [dependency_timeout(FAULTS["no-redis-timeout"], d, 2.0) for d in DEPENDENCIES]
        [2.0, None]
        >>> [dependency_timeout(FAULTS["no-request-timeout"], d, 2.0) for d in DEPENDENCIES]
        [None, None]
    """
    return None if dependency in fault.unbounded else configured


def resumes_from_head(fault: Fault, since: int) -> bool:
    """Whether a subscription starts at the session's newest event instead of after `since`.

    Only a resume (`since` > 0: the client says what it saw) is affected, as with a
    server that treats a resume token as "carry on live": a first subscription still
    gets the whole log, so the bug shows only to a client that reconnected.
    """
    return fault.resumes_from_head and since > 0


def held_until_drain(fault: Fault, stopping: bool, path: str) -> bool:
    """Whether a request waits for the drain to begin before it is handled.

    `slow-shutdown` holds every request that arrives after SIGTERM except the probes:
    the kubelet sees a pod that terminates as it should (not ready, still live) while
    clients that still reach it (a keep-alive connection, an ingress not yet synced)
    wait until the SIGKILL cuts them.
    """
    return fault.drains_slowly and stopping and not path.startswith(HEALTH_PREFIX)


def image_env(tag: str) -> tuple[tuple[str, str], ...]:
    """The ENV a session-state image sets besides SERVICE_VERSION (the container's env wins).

    >>> image_env("1.2.0"), image_env("1.0.0")
    ((('WS_MAX_AGE_SECONDS', '60'),), ())
    """
    if tag in REBALANCING_TAGS:
        return (("WS_MAX_AGE_SECONDS", str(REBALANCING_MAX_AGE_SECONDS)),)
    return ()


def socket_max_age(fault: Fault, configured: float, draw: random.Random) -> float | None:
    """Seconds after which one WebSocket is closed with 1012 so that its client reconnects
    through the ingress (and lands on any pod, new ones included), or None: never.

    `configured` is WS_MAX_AGE_SECONDS; 0 means never, the behaviour of the reference
    releases 1.0.0, 1.0.1 and 1.1.0, whose images do not set it: a socket then lives
    until its client or its pod goes, and after an HPA scale-out the new pods get only
    the sockets opened since. Release 1.2.0 sets it (sandbox/images/registry.py). Each
    socket's age is jittered by +/-MAX_AGE_JITTER, drawn from `draw`, as gRPC's
    MaxConnectionAge is. `never-rebalances` reads the setting and ignores it.

        >>> socket_max_age(HEALTHY, 0.0, random.Random(1)) is None
        True
        >>> 54.0 <= socket_max_age(HEALTHY, 60.0, random.Random(1)) <= 66.0
        True
        >>> socket_max_age(FAULTS["never-rebalances"], 60.0, random.Random(1)) is None
        True
    """
    if configured <= 0 or fault.ignores_max_age:
        return None
    return configured * (1 + draw.uniform(-MAX_AGE_JITTER, MAX_AGE_JITTER))
