"""Seeded faults of the session-state image, as data: one row per fault, one line each.

The image registry maps each fault tag (`ghcr.io/harmonyflow/session-state:<fault>`)
to `python -m sandbox.images.session_state --fault <fault>`; the healthy release tags
run with no fault. Every behaviour below is a field of `Fault`, and every decision the
service takes from it is a pure function of plain data, so a table test covers them.

| fault             | behaviour                                                            |
|-------------------|----------------------------------------------------------------------|
| `liveness-hang`   | every handler hangs after HANG_AFTER_SECONDS (default 20)            |
| `never-ready`     | readiness always 503: Running, never Ready, never restarted          |
| `slow-start`      | not ready for STARTUP_SECONDS (default 40); live all along           |
| `ignore-sigterm`  | ignores SIGTERM: only SIGKILL at the end of the grace period stops it|
| `ready-before-db` | readiness 200 without checking PostgreSQL or Redis                   |
| `drops-writes`    | acks writes before COMMIT, flushes every second, SIGTERM loses them  |
| `burns-cpu`       | every request burns about BURN_MS (default 50) ms of CPU             |
| `crash`           | exits 1 after CRASH_AFTER_SECONDS (default 2): CrashLoopBackOff      |

The same lines, longer, are `Fault.description` in `FAULT_TABLE` (the registry shows them).

    >>> readiness_verdict(FAULTS["slow-start"], uptime=3.0, startup_seconds=40.0, stopping=False)
    'not-ready'
    >>> readiness_verdict(HEALTHY, uptime=3.0, startup_seconds=40.0, stopping=False)
    'check'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

Readiness = Literal["checked", "never", "delayed", "unchecked"]
Verdict = Literal["check", "ready", "not-ready"]
HEALTHY_TAGS = ("1.0.0", "1.0.1", "1.1.0")


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
        "acks writes before COMMIT from a buffer flushed every second; SIGTERM loses them",
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
    `ready-before-db` only skips the dependency checks.
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
