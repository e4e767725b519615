"""One shared timeline: every watch event, in arrival order, and the world after each.

Watch threads call `Timeline.record`; checkers read `states()`. An event gets
an index (its position), a wall-clock time (`time.time()`, millisecond
precision in reports, comparable across machines and with server timestamps)
and a monotonic time (for durations that NTP steps cannot bend).

Events of different watches are ordered by arrival, not causally: a pod event
can arrive before the event of the ReplicaSet that created it. Checkers that
need a consistent count (rollout limits, PDB) therefore count from one watch
(pods) and use the others only for context; see their docstrings.

Marks are annotations added by callers (a chaos action, a load phase): a name,
a start and, once known, an end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from resilience.observe.records import (
    DeploymentObservation,
    EndpointsObservation,
    EventType,
    HpaObservation,
    NodeObservation,
    Observation,
    PdbObservation,
    PodObservation,
    ResourceKind,
    RsObservation,
)


class Clock(Protocol):
    def wall(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class TimelineEvent:
    index: int
    wall: float
    mono: float
    type: EventType
    kind: ResourceKind
    observation: Observation
    # True when the event was produced by a re-list after 410 Gone: events
    # between the last one seen and the re-list may have been missed.
    relisted: bool = False

    @property
    def name(self) -> str:
        return self.observation.name


@dataclass(frozen=True)
class Mark:
    """A caller's annotation: `kill-pod` from start to end (end None while running)."""

    id: int
    name: str
    start: float
    start_mono: float
    end: float | None = None
    end_mono: float | None = None
    detail: str = ""

    def covers(self, wall: float) -> bool:
        return self.start <= wall and (self.end is None or wall <= self.end)


@dataclass(frozen=True)
class State:
    """The world after event `index` (-1: before any event). Treat the mappings as read-only."""

    index: int = -1
    wall: float = 0.0
    mono: float = 0.0
    event: TimelineEvent | None = None
    pods: Mapping[str, PodObservation] = field(default_factory=dict)
    replicasets: Mapping[str, RsObservation] = field(default_factory=dict)
    deployments: Mapping[str, DeploymentObservation] = field(default_factory=dict)
    endpoint_slices: Mapping[str, EndpointsObservation] = field(default_factory=dict)
    hpas: Mapping[str, HpaObservation] = field(default_factory=dict)
    nodes: Mapping[str, NodeObservation] = field(default_factory=dict)
    pdbs: Mapping[str, PdbObservation] = field(default_factory=dict)

    def apply(self, event: TimelineEvent) -> State:
        """A new state with the event applied; this one is left untouched."""
        moved = replace(self, index=event.index, wall=event.wall, mono=event.mono, event=event)
        attribute = _STATE_ATTRIBUTE.get(event.kind)
        if attribute is None:  # core Events: timeline only
            return moved
        objects: dict[str, Observation] = dict(getattr(self, attribute))
        if event.type is EventType.DELETED:
            objects.pop(event.name, None)
        else:
            objects[event.name] = event.observation
        changes: dict[str, Any] = {attribute: objects}
        return replace(moved, **changes)

    def zone_of(self, pod: PodObservation) -> str | None:
        if pod.zone is not None:
            return pod.zone
        node = self.nodes.get(pod.node or "")
        return None if node is None else node.zone

    def pods_matching(self, selector: Mapping[str, str]) -> list[PodObservation]:
        """Pods whose labels match a matchLabels selector, in name order."""
        return [
            pod
            for name, pod in sorted(self.pods.items())
            if all(pod.labels.get(key) == value for key, value in selector.items())
        ]

    def deployment_selector(
        self, deployment: str, fallback: Mapping[str, str]
    ) -> Mapping[str, str]:
        observed = self.deployments.get(deployment)
        return observed.selector if observed is not None and observed.selector else fallback


_STATE_ATTRIBUTE: Mapping[ResourceKind, str] = {
    ResourceKind.POD: "pods",
    ResourceKind.REPLICASET: "replicasets",
    ResourceKind.DEPLOYMENT: "deployments",
    ResourceKind.ENDPOINTSLICE: "endpoint_slices",
    ResourceKind.HPA: "hpas",
    ResourceKind.NODE: "nodes",
    ResourceKind.PDB: "pdbs",
}


def fold(events: Sequence[TimelineEvent], initial: State | None = None) -> list[State]:
    """The state after each event; pure, for checkers and tests."""
    states: list[State] = []
    state = initial or State()
    for event in events:
        state = state.apply(event)
        states.append(state)
    return states


class Timeline:
    """Thread-safe, append-only record of events and marks, with the state after each event."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Condition()
        self._events: list[TimelineEvent] = []
        self._states: list[State] = []
        self._current = State()
        self._marks: dict[int, Mark] = {}
        self._synced_index: int | None = None

    # ---- writing ----

    def record(
        self, type_: EventType, observation: Observation, *, relisted: bool = False
    ) -> TimelineEvent:
        with self._lock:
            observation = self._enrich(observation)
            event = TimelineEvent(
                index=len(self._events),
                wall=self._clock.wall(),
                mono=self._clock.monotonic(),
                type=type_,
                kind=observation.KIND,
                observation=observation,
                relisted=relisted,
            )
            self._append(event)
            return event

    def extend(self, events: Sequence[TimelineEvent]) -> None:
        """Append events recorded elsewhere (an import), renumbering nothing."""
        with self._lock:
            for event in events:
                if event.index != len(self._events):
                    raise ValueError(f"event {event.index} out of order at {len(self._events)}")
                self._append(event)

    def begin_mark(self, name: str, detail: str = "") -> Mark:
        with self._lock:
            mark = Mark(
                id=len(self._marks),
                name=name,
                start=self._clock.wall(),
                start_mono=self._clock.monotonic(),
                detail=detail,
            )
            self._marks[mark.id] = mark
            return mark

    def end_mark(self, mark: Mark) -> Mark:
        with self._lock:
            ended = replace(
                self._marks[mark.id], end=self._clock.wall(), end_mono=self._clock.monotonic()
            )
            self._marks[mark.id] = ended
            return ended

    def add_mark(self, mark: Mark) -> Mark:
        """Store a mark as given (an import, or times known after the fact); a new id."""
        with self._lock:
            stored = replace(mark, id=len(self._marks))
            self._marks[stored.id] = stored
            return stored

    @contextlib.contextmanager
    def mark(self, name: str, detail: str = "") -> Iterator[Mark]:
        """`with timeline.mark("kill-pod"): ...` -- the end is set even on an exception."""
        started = self.begin_mark(name, detail)
        try:
            yield started
        finally:
            self.end_mark(started)

    def set_synced(self) -> None:
        """Every watcher has listed once: states from here on describe the whole world."""
        with self._lock:
            self._synced_index = len(self._events) - 1

    def restore_synced(self, index: int) -> None:
        """Set the sync point of an imported timeline."""
        with self._lock:
            self._synced_index = index

    # ---- reading ----

    @property
    def synced_index(self) -> int | None:
        with self._lock:
            return self._synced_index

    @property
    def events(self) -> tuple[TimelineEvent, ...]:
        with self._lock:
            return tuple(self._events)

    @property
    def marks(self) -> tuple[Mark, ...]:
        with self._lock:
            return tuple(self._marks.values())

    def marks_named(self, name: str) -> tuple[Mark, ...]:
        return tuple(m for m in self.marks if m.name == name)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def state_after(self, index: int) -> State:
        """The world after event `index`; -1 is the empty world before the first event."""
        with self._lock:
            return State() if index < 0 else self._states[index]

    @property
    def current(self) -> State:
        with self._lock:
            return self._current

    def states(self, start: int | None = None) -> list[State]:
        """States after each event from `start` on (default: the state right after sync).

        Before sync the world is partial (pods listed, their Deployment not yet),
        so checkers start from the synced state unless told otherwise.
        """
        with self._lock:
            if start is None:
                start = 0 if self._synced_index is None else max(self._synced_index, 0)
            return self._states[start:]

    def wait_for(
        self, predicate: Callable[[State], bool], timeout: float, what: str = "a condition"
    ) -> State:
        """Block until the current state satisfies `predicate`; bounded, raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self._current):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout:g}s waiting for {what} "
                        f"(last event {self._current.index})"
                    )
                self._lock.wait(min(remaining, 1.0))
            return self._current

    # ---- internals ----

    def _append(self, event: TimelineEvent) -> None:
        self._events.append(event)
        self._current = self._current.apply(event)
        self._states.append(self._current)
        self._lock.notify_all()

    def _enrich(self, observation: Observation) -> Observation:
        if isinstance(observation, PodObservation) and observation.zone is None:
            zone = self._current.zone_of(observation)
            if zone is not None:
                return replace(observation, zone=zone)
        return observation
