"""What the users felt of a fault, read from the load alone (pure).

A database, cache or broker fault touches no pod, so a recovery time measured from the
Deployment's pods reads 0 s while users see errors. These measures come from the load's
per-second records instead, at their one-second resolution:

- the error window: from the first to the end of the last second with a failed request,
  from the fault's start on;
- the write gap: the longest stretch with no acknowledged write (a successful POST, PUT
  or PATCH), from the last write acknowledged before the fault to the first after it;
- back to baseline: from the fault's start until the error ratio per second stays at or
  below the baseline's for the rest of the step.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from resilience.load.requests import RequestRecord

REQUEST_TYPES = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
WRITE_TYPES = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class ClientImpact:
    error_window_s: float | None  # None: no request failed from the fault on
    write_gap_s: float | None  # None: no write acknowledged on one side of the fault
    back_to_baseline_s: float | None  # None: still above the baseline at the step's end


def client_impact(
    records: Iterable[RequestRecord], fault_start: float, until: float, baseline_ratio: float
) -> ClientImpact:
    """The three measures over [fault_start, until), REST requests only.

    >>> from resilience.load.requests import RequestRecord as R
    >>> load = [R(t, "PUT", "/s", ok, failed, {}) for t, ok, failed in
    ...         [(9, 3, 0), (10, 1, 2), (11, 0, 3), (12, 0, 3), (13, 3, 0), (14, 3, 0)]]
    >>> client_impact(load, 10.0, 15.0, baseline_ratio=0.0)
    ClientImpact(error_window_s=3.0, write_gap_s=3.0, back_to_baseline_s=3.0)
    """
    seconds: dict[int, list[int]] = {}
    writes: dict[int, int] = {}
    for record in records:
        if record.request_type not in REQUEST_TYPES or not record.t < until:
            continue
        slot = seconds.setdefault(record.t, [0, 0])
        slot[0] += record.ok
        slot[1] += record.failed
        if record.request_type in WRITE_TYPES and record.ok:
            writes[record.t] = writes.get(record.t, 0) + record.ok
    start = int(fault_start)
    failing = sorted(t for t, (_, failed) in seconds.items() if failed and t >= start)
    window = float(failing[-1] + 1 - failing[0]) if failing else None
    return ClientImpact(window, _write_gap(writes, start), _back(seconds, start, baseline_ratio))


def _write_gap(writes: dict[int, int], start: int) -> float | None:
    before = [t for t in writes if t < start]
    after = sorted(t for t in writes if t >= start)
    if not before or not after:
        return None
    moments = [max(before), *after]
    return float(max(b - a for a, b in itertools.pairwise(moments)))


def _back(seconds: dict[int, list[int]], start: int, baseline_ratio: float) -> float | None:
    above = [
        t
        for t, (ok, failed) in seconds.items()
        if t >= start and ok + failed and failed / (ok + failed) > baseline_ratio
    ]
    if not above:
        return 0.0
    last = max(above)
    if not any(t > last for t in seconds):
        return None
    return float(last + 1 - start)
