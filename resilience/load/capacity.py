"""The capacity model: a release manager's figures -> the Locust run that drives them.

A certification profile may state its target as what a release manager knows about
production instead of as Locust users (`capacity:` in the profile):

    capacity:
      peak_rps: 1000        # REST requests/s the service answers at peak (reads + writes)
      sockets: 10000        # concurrent WebSocket sessions
      write_share: 0.2      # the part of those requests that are writes (POST/PUT/DELETE)
      ramp_seconds: 300     # reach the target in this time...
      hold_seconds: 600     # ...then hold it this long; the hold is what is certified

plus the model's assumptions (each has a default, see `Capacity`). `plan_capacity`
derives, as pure arithmetic, how many users of each kind to run, their wait times and
the spawn rate; `achieved_load` reads back from the run's timeline what the hold
actually carried, and `shortfalls` names every figure that fell short, so that a load
generator too weak for the target cannot certify it.

The users (loadtests/sessions_rest.py, sessions_ws.py; loadtests/harmonyflow/users.py):

- a WebSocket user holds one socket (a session): it is one of `sockets`. Its tasks are
  a ping (weight 2, no REST request) and a fan-out (weight 1, one PUT), one task per
  `socket_task_seconds` on average: its REST rate is 1 / (3 x socket_task_seconds).
- a REST user runs, per cycle of tasks, `read_weight` reads, 3 replaces, 1 create and
  1 delete. Writes per cycle: 5 (the 3 PUTs, the create's POST, or a PUT once it holds
  HF_SESSIONS_PER_USER = 3 sessions, and the delete's DELETE, or a POST when it holds
  fewer than 2). Reads per cycle: `read_weight`, plus the GET after a real delete, which
  happens in 4 cycles of 5: the sessions held walk 1 -> 2 -> 3 under creates and back
  under deletes, whose stationary distribution is (1/5, 2/5, 2/5) and a delete is real
  from 2 or 3. Its task rate is 1 / (wait + task_seconds).

So with R the REST requests/s and W the write share: the sockets' fan-outs write
S / (3 T) of the W R writes; the REST users carry the rest, and their read weight is
chosen so that their own write share w' gives it: w' = 5 / (read_weight + 5.8).

    >>> plan = plan_capacity(Capacity(peak_rps=1000, sockets=10000, write_share=0.2))
    >>> plan.rest_users, plan.ws_users, plan.read_weight, round(plan.spawn_rate, 1)
    (893, 10000, 44, 36.3)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from resilience.errors import InvalidInputError
from resilience.load.requests import RequestTimeline

REST_TYPES = frozenset({"GET", "POST", "PUT", "DELETE"})
WRITE_TYPES = frozenset({"POST", "PUT", "DELETE"})
WS_TASKS_PER_PUT = 3  # sessions_ws.py: ping (2) + fan-out (1), a PUT per fan-out
REST_WRITES_PER_CYCLE = 5.0  # sessions_rest.py: replace 3, create 1, delete 1 (see above)
REST_TASKS_BESIDE_READS = 5  # replace 3 + create 1 + delete 1
GETS_AFTER_DELETE = 0.8  # stationary P(holding 2 or 3 sessions) at HF_SESSIONS_PER_USER=3
WAIT_JITTER = 0.5  # between(mean x (1 - j), mean x (1 + j)), as users.py's 0.5..1.5 s
MAX_READ_WEIGHT = 1000


@dataclass(frozen=True)
class Capacity:
    """The target and the model's assumptions. Defaults (loadtests/README.md, "Capacity"):

    - `sockets` 10,000: the concurrent sessions issue 20 sizes the service and its
      ingress for (the storm of a third of them after a pod kill); an assumption about
      production, which the seed does not state.
    - `peak_rps` 1,000 and `write_share` 0.2: assumptions, stated as such (the seed
      gives no traffic figure); a release manager overrides them with production's.
    - `rest_wait_seconds` 1.0: users.py's default pacing (HF_WAIT_MIN/MAX 0.5..1.5 s).
    - `socket_task_seconds` 30: an assumption of an idle-heavy session (a browser tab
      that acts twice a minute), which production has (issue 20).
    - `task_seconds` 0.02: what one REST task takes besides its wait (its requests'
      latency), an assumption well inside the release profile's p95 budget of 200 ms.
    - `ramp_seconds` 300, `hold_seconds` 600: an assumption; the hold is at least the
      HPA's 5-minute scale-down stabilisation (kubernetes-semantics.md), so a scale
      event inside it is seen whole.
    - `tolerance` 0.05: the achieved requests/s and sockets may fall short of the
      target by this fraction, the write share by this much (absolute), for Locust's
      random waits; anything more fails the certificate.
    """

    peak_rps: float = 1000.0
    sockets: int = 10000
    write_share: float = 0.2
    ramp_seconds: float = 300.0
    hold_seconds: float = 600.0
    rest_wait_seconds: float = 1.0
    socket_task_seconds: float = 30.0
    task_seconds: float = 0.02
    tolerance: float = 0.05


@dataclass(frozen=True)
class CapacityPlan:
    """The Locust run a `Capacity` asks for: users, waits, spawn rate, run time."""

    rest_users: int
    ws_users: int
    read_weight: int
    rest_wait: tuple[float, float]
    ws_wait: tuple[float, float]
    spawn_rate: float
    run_time: float
    planned_rps: float
    planned_write_share: float

    @property
    def users(self) -> int:
        return self.rest_users + self.ws_users

    def env(self) -> dict[str, str]:
        """The locustfiles' knobs (loadtests/harmonyflow/users.py)."""
        return {
            "HF_REST_USERS": str(self.rest_users),
            "HF_WS_USERS": str(self.ws_users),
            "HF_REST_READ_WEIGHT": str(self.read_weight),
            "HF_WAIT_MIN": f"{self.rest_wait[0]:g}",
            "HF_WAIT_MAX": f"{self.rest_wait[1]:g}",
            "HF_WS_WAIT_MIN": f"{self.ws_wait[0]:g}",
            "HF_WS_WAIT_MAX": f"{self.ws_wait[1]:g}",
        }


def plan_capacity(capacity: Capacity) -> CapacityPlan:
    """Users of each kind, waits and spawn rate that reach the target in the ramp and
    hold it. `InvalidInputError` names a target no mix of these users can give."""
    c = capacity
    ws_puts = c.sockets / (WS_TASKS_PER_PUT * c.socket_task_seconds)
    writes = c.write_share * c.peak_rps
    if ws_puts > writes:
        raise InvalidInputError(
            f"capacity: {c.sockets} sockets acting every {c.socket_task_seconds:g}s write "
            f"{ws_puts:.0f}/s, more than write_share x peak_rps = {writes:.0f}/s; "
            "raise socket_task_seconds or write_share"
        )
    rest_writes = writes - ws_puts
    rest_reads = c.peak_rps - writes
    rest_rps = rest_writes + rest_reads
    read_weight = _read_weight(rest_writes / rest_rps if rest_rps > 0 else 1.0)
    per_cycle = read_weight + GETS_AFTER_DELETE + REST_WRITES_PER_CYCLE
    requests_per_task = per_cycle / (read_weight + REST_TASKS_BESIDE_READS)
    per_user = requests_per_task / (c.rest_wait_seconds + c.task_seconds)
    rest_users = math.ceil(rest_rps / per_user - 1e-9) if rest_rps > 0 else 0
    rest_share = REST_WRITES_PER_CYCLE / per_cycle
    planned_rps = rest_users * per_user + ws_puts
    planned_writes = rest_users * per_user * rest_share + ws_puts
    users = rest_users + c.sockets
    return CapacityPlan(
        rest_users=rest_users,
        ws_users=c.sockets,
        read_weight=read_weight,
        rest_wait=_jittered(c.rest_wait_seconds),
        ws_wait=_jittered(c.socket_task_seconds),
        spawn_rate=users / c.ramp_seconds,
        run_time=c.ramp_seconds + c.hold_seconds,
        planned_rps=planned_rps,
        planned_write_share=planned_writes / planned_rps if planned_rps > 0 else 0.0,
    )


def _read_weight(rest_write_share: float) -> int:
    """The read task weight whose cycle has that write share: 5 / (weight + 5.8)."""
    if rest_write_share <= 0:
        raise InvalidInputError(
            "capacity: the sockets' fan-outs already make every write; a REST user always "
            "writes too: lower sockets or raise socket_task_seconds or write_share"
        )
    per_cycle = REST_WRITES_PER_CYCLE / rest_write_share
    weight = round(per_cycle - GETS_AFTER_DELETE - REST_WRITES_PER_CYCLE)
    if weight > MAX_READ_WEIGHT:
        raise InvalidInputError(f"capacity: write_share too small for the REST users ({weight})")
    return max(1, weight)


def _jittered(mean: float) -> tuple[float, float]:
    return (mean * (1 - WAIT_JITTER), mean * (1 + WAIT_JITTER))


@dataclass(frozen=True)
class AchievedLoad:
    """What the hold carried, from the load's own timeline."""

    seconds: float
    rps: float
    sockets: int
    write_share: float | None


def achieved_load(timeline: RequestTimeline, start: float, end: float) -> AchievedLoad:
    """REST requests/s (answered or not: a refused request was still sent) and the
    write share in [start, end); sockets: the most held at once, counted as connects
    minus losses (`WSCONN connect` successes minus `WS disconnect`s) from the run's
    start, at the end of each second of the hold."""
    first, last = math.ceil(start), math.floor(end)
    sent = writes = 0
    changes: dict[int, int] = {}
    for record in timeline.records:
        if first <= record.t < last and record.request_type in REST_TYPES:
            sent += record.ok + record.failed
            if record.request_type in WRITE_TYPES:
                writes += record.ok + record.failed
        if (record.request_type, record.name) == ("WSCONN", "connect"):
            changes[record.t] = changes.get(record.t, 0) + record.ok
        elif (record.request_type, record.name) == ("WS", "disconnect"):
            changes[record.t] = changes.get(record.t, 0) - record.ok - record.failed
    held = sum(change for t, change in changes.items() if t < first)  # what the ramp opened
    most = held if first < last else 0
    for t in sorted(t for t in changes if first <= t < last):
        held += changes[t]
        most = max(most, held)
    seconds = max(0, last - first)
    return AchievedLoad(
        seconds=float(seconds),
        rps=sent / seconds if seconds else 0.0,
        sockets=most,
        write_share=writes / sent if sent else None,
    )


def hold_span(capacity: Capacity, load_span: tuple[float, float]) -> tuple[float, float]:
    """The hold: from the end of the ramp to the end of the load."""
    start, end = load_span
    return (min(end, start + capacity.ramp_seconds), end)


def shortfalls(capacity: Capacity, achieved: AchievedLoad) -> list[str]:
    """One line per figure the hold fell short of, naming it, the target and the
    achieved value; none when the load reached the target."""
    c, a = capacity, achieved
    problems = []
    floor = 1 - c.tolerance
    if a.rps < c.peak_rps * floor:
        problems.append(
            f"capacity peak_rps: achieved {a.rps:.1f} requests/s < target {c.peak_rps:g} "
            f"(-{c.tolerance:.0%} allowed) over the {a.seconds:.0f}s hold"
        )
    if a.sockets < c.sockets * floor:
        problems.append(
            f"capacity sockets: achieved {a.sockets} concurrent sockets < target {c.sockets} "
            f"(-{c.tolerance:.0%} allowed)"
        )
    if a.write_share is None or a.write_share < c.write_share - c.tolerance:
        shown = "none" if a.write_share is None else f"{a.write_share:.3f}"
        problems.append(
            f"capacity write_share: achieved {shown} < target {c.write_share:g} "
            f"(-{c.tolerance:g} allowed)"
        )
    return problems


def certified_figures(
    capacity: Capacity, plan: CapacityPlan, achieved: AchievedLoad
) -> dict[str, object]:
    """The certificate's `capacity` section: target, plan and achieved, figure by figure."""
    return {
        "target": {
            "peak_rps": capacity.peak_rps,
            "sockets": capacity.sockets,
            "write_share": capacity.write_share,
        },
        "achieved": {
            "peak_rps": round(achieved.rps, 3),
            "sockets": achieved.sockets,
            "write_share": None if achieved.write_share is None else round(achieved.write_share, 4),
            "hold_seconds": achieved.seconds,
        },
        "plan": {
            "rest_users": plan.rest_users,
            "ws_users": plan.ws_users,
            "read_weight": plan.read_weight,
            "rest_wait_seconds": list(plan.rest_wait),
            "ws_wait_seconds": list(plan.ws_wait),
            "spawn_rate": round(plan.spawn_rate, 3),
            "run_time": plan.run_time,
            "planned_rps": round(plan.planned_rps, 3),
            "planned_write_share": round(plan.planned_write_share, 4),
        },
        "assumptions": {
            "rest_wait_seconds": capacity.rest_wait_seconds,
            "socket_task_seconds": capacity.socket_task_seconds,
            "task_seconds": capacity.task_seconds,
            "ramp_seconds": capacity.ramp_seconds,
            "hold_seconds": capacity.hold_seconds,
            "tolerance": capacity.tolerance,
        },
    }


CAPACITY_KEYS = frozenset(Capacity.__dataclass_fields__)


def capacity_from(values: Mapping[str, float]) -> Capacity:
    """A `Capacity` from checked numbers (profile.py checks their types and ranges)."""
    fields = {k: (int(v) if k == "sockets" else float(v)) for k, v in values.items()}
    return Capacity(**fields)  # type: ignore[arg-type]
