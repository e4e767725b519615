"""Chart data: every series of the report on one time axis (pure).

Two sources, one clock (Unix seconds): the load timeline (per second, from Locust)
and the watch timeline (per event, from the Kubernetes API). Load series are one
value per second; cluster series are step functions, one point per change.

- traffic: requests/s, error ratio and p95 of successes (ms), LEDGER checks left out;
- websocket: connects/s, reconnects/s, disconnects/s and sockets open (connects
  minus disconnects, cumulative: an estimate, Locust reports no gauge);
- db_writes: successful POST /api/v1/sessions and PUT /api/v1/sessions/[id] per
  second: every one of them is a committed row in PostgreSQL;
- ready_by_zone: Ready pods of the Deployment per zone;
- replicas: the Deployment's desired replicas (spec), its ready replicas, and the
  HPA's desired and current replicas.

    >>> from resilience.load.requests import parse_lines
    >>> t = parse_lines(['{"kind":"requests","t":5,"type":"PUT","name":"/api/v1/sessions/[id]",'
    ...                  '"ok":3,"fail":1,"lat":{"10":3}}'])
    >>> traffic(t)[0], db_writes(t)[0]
    (TrafficPoint(t=5, rps=4, error_ratio=0.25, p95_ms=10.0), (5, 3))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from resilience.load.requests import RequestTimeline, per_second
from resilience.observe.recovery import ready_spread
from resilience.observe.timeline import State
from resilience.policy import IntendedPolicy

WRITES = frozenset({("POST", "/api/v1/sessions"), ("PUT", "/api/v1/sessions/[id]")})
NOT_TRAFFIC = frozenset({"LEDGER"})


@dataclass(frozen=True)
class TrafficPoint:
    t: int
    rps: int
    error_ratio: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class SocketPoint:
    t: int
    connects: int
    reconnects: int
    disconnects: int
    open: int


@dataclass(frozen=True)
class ReplicaPoint:
    t: float
    spec: int
    ready: int
    hpa_desired: int | None
    hpa_current: int | None


@dataclass(frozen=True)
class ZonePoint:
    t: float
    ready: tuple[tuple[str, int], ...]  # (zone, Ready pods), zones in order


def traffic(timeline: RequestTimeline) -> list[TrafficPoint]:
    return [
        TrafficPoint(
            s.t,
            s.ok + s.failed,
            (s.failed / (s.ok + s.failed)) if s.ok + s.failed else None,
            s.p95_ms,
        )
        for s in per_second(timeline, exclude_types=NOT_TRAFFIC)
        if s.ok + s.failed
    ]


def db_writes(timeline: RequestTimeline) -> list[tuple[int, int]]:
    """(second, successful writes) for every second with a write."""
    counts: dict[int, int] = {}
    for record in timeline.records:
        if record.key in WRITES:
            counts[record.t] = counts.get(record.t, 0) + record.ok
    return sorted(counts.items())


def websocket(timeline: RequestTimeline) -> list[SocketPoint]:
    """Per second: WSCONN connect successes, WSRECONN reconnect successes, WS disconnects.

    >>> from resilience.load.requests import parse_lines
    >>> t = parse_lines([
    ...   '{"kind":"requests","t":1,"type":"WSCONN","name":"connect","ok":4,"fail":0}',
    ...   '{"kind":"requests","t":2,"type":"WS","name":"disconnect","ok":0,"fail":1}',
    ...   '{"kind":"requests","t":3,"type":"WSRECONN","name":"reconnect","ok":1,"fail":0}',
    ...   '{"kind":"requests","t":3,"type":"WSCONN","name":"connect","ok":1,"fail":0}'])
    >>> [(p.t, p.open) for p in websocket(t)]
    [(1, 4), (2, 3), (3, 4)]
    """
    per: dict[int, list[int]] = {}
    for record in timeline.records:
        slot = per.setdefault(record.t, [0, 0, 0])
        if record.key == ("WSCONN", "connect"):
            slot[0] += record.ok
        elif record.key == ("WSRECONN", "reconnect"):
            slot[1] += record.ok
        elif record.key == ("WS", "disconnect"):
            slot[2] += record.failed + record.ok
    points: list[SocketPoint] = []
    open_now = 0
    for t in sorted(per):
        connects, reconnects, disconnects = per[t]
        if not (connects or reconnects or disconnects) and not points:
            continue
        open_now = max(0, open_now + connects - disconnects)
        points.append(SocketPoint(t, connects, reconnects, disconnects, open_now))
    return points


def replicas(states: Iterable[State], deployment: str) -> list[ReplicaPoint]:
    """The Deployment's spec and ready replicas and the HPA's desired/current, on change."""
    points: list[ReplicaPoint] = []
    for state in states:
        observed = state.deployments.get(deployment)
        if observed is None:
            continue
        hpa = next((h for h in state.hpas.values() if h.target.endswith(deployment)), None)
        point = ReplicaPoint(
            state.wall,
            observed.spec_replicas,
            observed.ready,
            # 0 is "no decision yet" (the HPA has not synced): not a target to draw
            hpa.desired_replicas if hpa and hpa.desired_replicas else None,
            hpa.current_replicas if hpa and hpa.current_replicas else None,
        )
        if not points or _values(points[-1]) != _values(point):
            points.append(point)
    return points


def ready_by_zone(states: Iterable[State], policy: IntendedPolicy) -> list[ZonePoint]:
    """Ready pods per zone, on change."""
    points: list[ZonePoint] = []
    for state in states:
        spread = ready_spread(state, policy)
        point = ZonePoint(state.wall, tuple(sorted(spread.zones.items())))
        if not points or points[-1].ready != point.ready:
            points.append(point)
    return points


def _values(point: ReplicaPoint) -> tuple[int, int, int | None, int | None]:
    return (point.spec, point.ready, point.hpa_desired, point.hpa_current)


@dataclass(frozen=True)
class Band:
    """A chaos event drawn across every chart: a step, a fault action inside it, or a
    network fault while it was in place (from AllInjected until its object was gone)."""

    name: str
    start: float
    end: float
    kind: str  # "step" | "action" | "network"


def span_of(bands: Sequence[Band], *times: Iterable[float]) -> tuple[float, float] | None:
    """The common time axis: everything any chart or band shows."""
    values = [b.start for b in bands] + [b.end for b in bands]
    for series in times:
        values.extend(series)
    return (min(values), max(values)) if values else None
