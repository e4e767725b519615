"""JSON lines for a timeline: one header, then one line per event and per mark.

Reports and post-mortems read timelines long after the run, so the format is
plain JSON with the record types spelled out (`"kind": "Pod"`), and a reader
rebuilds the same frozen records. The (de)serialiser is generic over the
frozen dataclasses of `records` and `timeline`, driven by their type hints, so
a new field needs no codec change.

    {"format": "harmonyflow-timeline", "version": 1, "synced_index": 12}
    {"event": {"index": 0, "wall": ..., "type": "LISTED", "kind": "Node", "observation": {...}}}
    {"mark": {"id": 0, "name": "kill-pod", "start": ..., "end": ...}}
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar, Union

from resilience.errors import InvalidInputError
from resilience.observe.records import OBSERVATION_TYPES, EventType, ResourceKind
from resilience.observe.timeline import Mark, Timeline, TimelineEvent

FORMAT = "harmonyflow-timeline"
VERSION = 1

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """Frozen records -> JSON values (tuples become lists, enums their value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(cls: type[T], data: Any) -> T:
    """JSON values -> an instance of the frozen dataclass `cls`, by its type hints."""
    return typing.cast(T, _decode(cls, data))


def event_to_json(event: TimelineEvent) -> dict[str, Any]:
    body: dict[str, Any] = to_jsonable(event)
    body["observation"]["kind"] = event.kind.value
    return body


def event_from_json(body: Mapping[str, Any]) -> TimelineEvent:
    observation = dict(body["observation"])
    kind = ResourceKind(observation.pop("kind"))
    return TimelineEvent(
        index=int(body["index"]),
        wall=float(body["wall"]),
        mono=float(body["mono"]),
        type=EventType(body["type"]),
        kind=kind,
        observation=from_jsonable(OBSERVATION_TYPES[kind], observation),
        relisted=bool(body.get("relisted", False)),
    )


def write_jsonl(timeline: Timeline, out: IO[str]) -> int:
    """Write the whole timeline; returns the number of lines written."""
    lines = 0
    for line in iter_jsonl(timeline):
        out.write(line + "\n")
        lines += 1
    return lines


def iter_jsonl(timeline: Timeline) -> Iterator[str]:
    yield json.dumps({"format": FORMAT, "version": VERSION, "synced_index": timeline.synced_index})
    for event in timeline.events:
        yield json.dumps({"event": event_to_json(event)}, separators=(",", ":"))
    for mark in timeline.marks:
        yield json.dumps({"mark": to_jsonable(mark)}, separators=(",", ":"))


def export_jsonl(timeline: Timeline, path: Path | str) -> Path:
    target = Path(path)
    with target.open("w", encoding="utf-8") as out:
        write_jsonl(timeline, out)
    return target


def read_jsonl(lines: Iterable[str], source: str = "<timeline>") -> Timeline:
    """Rebuild a timeline (events, states, marks, sync point) from its JSON lines."""
    timeline = Timeline()
    events: list[TimelineEvent] = []
    synced: int | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
            if number == 1:
                if body.get("format") != FORMAT:
                    raise InvalidInputError(f"{source}: not a {FORMAT} file (line 1: {line[:80]})")
                synced = body.get("synced_index")
            elif "event" in body:
                events.append(event_from_json(body["event"]))
            elif "mark" in body:
                timeline.add_mark(from_jsonable(Mark, body["mark"]))
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(
                f"{source}:{number}: unreadable timeline line: {error}"
            ) from error
    timeline.extend(events)
    if synced is not None:
        timeline.restore_synced(synced)
    return timeline


def load_jsonl(path: Path | str) -> Timeline:
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"{source}: no such timeline file")
    with source.open(encoding="utf-8") as lines:
        return read_jsonl(lines, str(source))


def _decode(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if data is None:
            return None
        return _decode(options[0], data) if len(options) == 1 else data
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_decode(item, v) for v in data)
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        return dict(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint) if f.init}
        return hint(**{k: _decode(hints[k], v) for k, v in data.items() if k in fields})
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(data)
    if hint is float and isinstance(data, int):
        return float(data)
    return data
