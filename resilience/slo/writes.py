"""Acknowledged writes: what the service said it kept must still be there, and when.

Pure verdicts over the writes a witness (`resilience.traffic.SessionTraffic`, the
load's ledger) saw acknowledged:

- `lost_writes` / `check_no_lost_writes`: every acknowledged write is visible
  afterwards; a violation of `traffic.lostWrites` names how many sessions lost data;
- `write_gap`: the longest pause between acknowledged writes around a fault.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.slo.result import CheckResult, Violation

LOST_WRITES_LIMIT = "traffic.lostWrites"
SESSIONS_SHOWN = 5


@dataclass(frozen=True)
class Ack:
    """One write the service acknowledged (HTTP 200 with the new version)."""

    session: str
    version: int
    state: Mapping[str, Any]
    at: float = 0.0  # time.monotonic() of the acknowledgement


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
    shown = "; ".join(lost[:SESSIONS_SHOWN]) + (" ..." if len(lost) > SESSIONS_SHOWN else "")
    message = (
        f"{what}: {len(lost)} session(s) lost acknowledged writes "
        f"({len(acked)} writes acknowledged): {shown}"
    )
    return CheckResult(
        "acknowledged writes",
        (Violation(LOST_WRITES_LIMIT, 0, len(lost), time.time(), -1, message),),
        details,
    )
