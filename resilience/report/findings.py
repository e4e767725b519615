"""What a step taught us, beyond pass or fail (pure, over the watch states and the load).

A finding is one line a person can act on, with the numbers and the time:

- the experiment's own failures (the strict verdict read from its journal);
- pods left Pending for longer than `PENDING_SECONDS` (e.g. a zone drain under
  `whenUnsatisfiable: DoNotSchedule`, whose replacement pod cannot be placed while
  the drained zone counts in the skew);
- container restarts (a liveness probe or a crash) during the step;
- lost or stale writes (LEDGER) and WebSocket sequence gaps or duplicates;
- the most frequent load error of the fault window;
- watch re-lists, where the timeline may have missed events.

    >>> from resilience.observe.records import PodObservation
    >>> states = [State(wall=t, pods={"p": PodObservation("p", phase=ph)})
    ...           for t, ph in [(0.0, "Running"), (5.0, "Pending"), (50.0, "Running")]]
    >>> pending_pods(states, 0.0, 60.0, 30.0)
    ['pod p Pending for 45 s (from +5 s): not schedulable while the fault lasted']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from resilience.load.requests import RequestTimeline
from resilience.observe.timeline import Mark, State

PENDING_SECONDS = 10.0  # the scheduler places a pod in well under a second
DATA_ENTRIES = {
    ("LEDGER", "stale read"),
    ("LEDGER", "lost write"),
    ("WS", "seq gap"),
    ("WS", "seq duplicate"),
}


@dataclass(frozen=True)
class Finding:
    step: str  # "" for the day as a whole
    kind: str  # journal | pending | restart | data | errors | watch | run
    text: str


def pending_pods(
    states: Sequence[State], start: float, end: float, threshold: float = PENDING_SECONDS
) -> list[str]:
    """Pods that stayed Pending (active, not scheduled or not started) longer than `threshold`."""
    since: dict[str, float] = {}
    spells: list[tuple[str, float, float]] = []
    for state in states:
        if not start <= state.wall <= end:
            continue
        pending_now = {n for n, p in state.pods.items() if p.active and p.phase == "Pending"}
        for name in pending_now - since.keys():
            since[name] = state.wall
        for name in set(since) - pending_now:
            spells.append((name, since.pop(name), state.wall))
    spells += [(name, began, end) for name, began in since.items()]
    return [
        f"pod {name} Pending for {until - began:.0f} s (from +{began - start:.0f} s): "
        "not schedulable while the fault lasted"
        for name, began, until in sorted(spells, key=lambda s: s[1])
        if until - began >= threshold
    ]


def restarts(states: Sequence[State], start: float, end: float) -> list[str]:
    """Container restarts that happened between `start` and `end`, per pod.

    >>> from resilience.observe.records import PodObservation, ContainerObservation
    >>> def pod(n): return {"p": PodObservation("p", containers=(
    ...     ContainerObservation("c", True, n, "running", last_reason="Error"),))}
    >>> restarts([State(wall=1.0, pods=pod(0)), State(wall=2.0, pods=pod(2))], 0.0, 9.0)
    ['pod p restarted 2 time(s) (last: Error)']
    """
    first: dict[str, int] = {}
    last: dict[str, tuple[int, str]] = {}
    for state in states:
        if not start <= state.wall <= end:
            continue
        for name, pod in state.pods.items():
            count = pod.restart_count
            first.setdefault(name, count)
            reason = next((c.last_reason for c in pod.containers if c.last_reason), "")
            last[name] = (count, reason)
    return [
        f"pod {name} restarted {count - first[name]} time(s)"
        + (f" (last: {reason})" if reason else "")
        for name, (count, reason) in sorted(last.items())
        if count > first[name]
    ]


def data_findings(timeline: RequestTimeline, start: float, end: float) -> list[str]:
    """Lost or stale writes and WebSocket sequence faults in [start, end)."""
    counts: dict[tuple[str, str], int] = {}
    for record in timeline.records:
        if record.key in DATA_ENTRIES and start <= record.t + 0.5 < end:
            counts[record.key] = counts.get(record.key, 0) + record.failed
    return [f"{kind} {name}: {count}" for (kind, name), count in sorted(counts.items()) if count]


def top_error(timeline: RequestTimeline, start: float, end: float) -> str | None:
    """The most frequent failure message of [start, end), with its count."""
    counts: dict[str, int] = {}
    for record in timeline.records:
        if start <= record.t + 0.5 < end and record.request_type != "LEDGER":
            for message, count in record.errors.items():
                key = f"{record.request_type} {record.name}: {message}"
                counts[key] = counts.get(key, 0) + count
    if not counts:
        return None
    message, count = max(counts.items(), key=lambda item: (item[1], item[0]))
    return f"most frequent error ({count}x): {message[:200]}"


def relists(marks: Iterable[Mark], start: float, end: float) -> list[str]:
    return [
        f"watch re-listed at +{m.start - start:.0f} s: {m.detail}"
        for m in marks
        if m.name == "watch-relist" and start <= m.start <= end
    ]
