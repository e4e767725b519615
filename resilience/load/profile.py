"""Certification profiles: YAML files naming the load to run and the SLOs to meet.

`loadtests/profiles/<name>.yaml`; the schema, by example (every key is checked; an
unknown key, a wrong type or a bad value is an `InvalidInputError` whose one line
names the file and the field, e.g. `smoke.yaml: slos[1].max_ratio: expected a number
between 0 and 1, got 'low'`):

    description: what the profile certifies (free text)
    load:
      locustfiles: [sessions_rest.py, sessions_ws.py]   # relative to loadtests/
      users: 10                 # without a shape: Locust's -u
      spawn_rate: 5             # -r
      run_time: 30s             # -t: seconds, or 90s / 5m / 1h; with a shape: its bound
      shape: spike              # optional: baseline | step | spike | soak | hpa
      shape_params: {spike_users: 40}   # HF_SHAPE_* (loadtests/harmonyflow/stages.py)
      processes: 1              # > 1: locust --processes N on this machine
      workers: 0                # > 0: a master and N worker processes (--master/--worker)
      env: {HF_WAIT_MIN: "0.2"} # more environment for the locustfiles
      user_classes: []          # optional: run only these user classes
    capacity:                   # optional: the target as production figures, not users
      peak_rps: 1000            # (resilience/load/capacity.py): it replaces users,
      sockets: 10000            # spawn_rate, run_time and shape by a ramp and a hold
      write_share: 0.2
    slos:
      - name: rest-p95          # unique; the name printed on failure
        kind: latency           # latency | error_rate | failures | events | throughput
        percentile: 95          # latency only (successful requests only)
        max_ms: 250             # latency: max_ms; error_rate: max_ratio;
                                # failures: max_failures; events (matching entries,
                                # failed or not): max_events; throughput: min_rps
        window: all             # all | baseline | fault | recovery
        types: [GET, PUT]       # optional selectors of Locust entries (type, name)
        names: []
        exclude_types: []
        exclude_names: []
        min_requests: 1         # fewer matching requests: the SLO fails (no evidence)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resilience.errors import InvalidInputError
from resilience.load.capacity import CAPACITY_KEYS, Capacity, capacity_from
from resilience.slo.objectives import RequestSelector, Slo, SloKind, Window

SHAPES = ("baseline", "step", "spike", "soak", "hpa")
# The HF_SHAPE_* knobs of loadtests/harmonyflow/stages.py:ShapeParams (a test keeps
# the two lists equal: loadtests/ cannot import resilience, and the reverse would
# drag Locust into this process).
SHAPE_PARAMS = (
    "users",
    "spawn_rate",
    "duration",
    "step_users",
    "step_seconds",
    "max_users",
    "spike_users",
    "spike_at",
    "spike_seconds",
    "ramp_seconds",
    "peak_users",
    "warm_seconds",
    "hold_seconds",
    "cooldown_seconds",
)
LIMIT_KEYS = {
    SloKind.LATENCY: "max_ms",
    SloKind.ERROR_RATE: "max_ratio",
    SloKind.FAILURES: "max_failures",
    SloKind.EVENTS: "max_events",
    SloKind.THROUGHPUT: "min_rps",
}
_COMMON_SLO_KEYS = frozenset(
    {"name", "kind", "window", "types", "names", "exclude_types", "exclude_names", "min_requests"}
)
_LOAD_KEYS = frozenset(
    {
        "locustfiles",
        "users",
        "spawn_rate",
        "run_time",
        "shape",
        "shape_params",
        "processes",
        "workers",
        "env",
        "user_classes",
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class LoadSpec:
    locustfiles: tuple[str, ...]
    users: int = 10
    spawn_rate: float = 5.0
    run_time: float = 30.0
    shape: str | None = None
    shape_params: Mapping[str, float] = field(default_factory=dict)
    processes: int = 1
    workers: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    user_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limit:
    """A number a suite judges with besides the load's SLOs (a recovery time, a write gap),
    kept beside them with the reasoning that gives it."""

    name: str
    value: float
    why: str


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    load: LoadSpec
    slos: tuple[Slo, ...]
    limits: Mapping[str, Limit] = field(default_factory=dict)
    capacity: Capacity | None = None

    def limit(self, name: str) -> float:
        """The value of `limits.<name>`; a profile without it is bad input, named."""
        try:
            return self.limits[name].value
        except KeyError:
            raise InvalidInputError(
                f"{self.path}: limits.{name}: missing (have: {', '.join(self.limits) or 'none'})"
            ) from None

    def slo(self, name: str) -> Slo:
        """The SLO of that name; a profile without it is bad input, named."""
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise InvalidInputError(f"{self.path}: slos: no SLO named {name!r}")


class _Problem(Exception):
    """A field's problem, before the file name is put in front."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


def resolve_profile(name_or_path: str, profiles_dir: Path) -> Path:
    """`smoke` -> `<profiles_dir>/smoke.yaml`; a path to a file is taken as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise InvalidInputError(f"{candidate}: no such profile file")
        return candidate
    path = profiles_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        raise InvalidInputError(
            f"no profile {name_or_path!r} in {profiles_dir} (have: {', '.join(known) or 'none'})"
        )
    return path


SUITE_PREFIX = "suite-"


def suite_profile_path(fault: str, profiles_dir: Path) -> Path | None:
    """`suite-<fault>.yaml`, the SLOs a suite and a game-day step judge that fault by, if
    the fault has its own."""
    own = profiles_dir / f"{SUITE_PREFIX}{fault}.yaml"
    return own if own.is_file() else None


def load_profile(path: Path) -> Profile:
    """Read and check one profile file; `InvalidInputError` names the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise InvalidInputError(f"{path}: invalid YAML{where}: {problem}") from None
    try:
        return parse_profile(path.stem, path, data)
    except _Problem as problem:
        raise InvalidInputError(f"{path}: {problem}") from None


def parse_profile(name: str, path: Path, data: Any) -> Profile:
    document = _mapping(data, "(top level)")
    _known_keys(document, frozenset({"description", "load", "slos", "limits", "capacity"}), "")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise _Problem("description", f"expected text, got {_show(description)}")
    if "load" not in document:
        raise _Problem("load", "missing")
    load = parse_load(document["load"])
    raw_slos = document.get("slos")
    if not isinstance(raw_slos, list) or not raw_slos:
        raise _Problem("slos", f"expected a non-empty list, got {_show(raw_slos)}")
    slos = tuple(parse_slo(item, f"slos[{i}]") for i, item in enumerate(raw_slos))
    seen: set[str] = set()
    for index, slo in enumerate(slos):
        if slo.name in seen:
            raise _Problem(f"slos[{index}].name", f"duplicate name {slo.name!r}")
        seen.add(slo.name)
    limits = parse_limits(document.get("limits", {}))
    capacity = parse_capacity(document["capacity"]) if "capacity" in document else None
    return Profile(name, path, description, load, slos, limits, capacity)


def parse_capacity(data: Any) -> Capacity:
    """`capacity:`: every key optional (its default is the model's stated assumption)."""
    entry = _mapping(data, "capacity")
    _known_keys(entry, CAPACITY_KEYS, "capacity.")
    values: dict[str, float] = {}
    for key, value in entry.items():
        where = f"capacity.{key}"
        if key == "sockets":
            values[key] = _integer(value, where, minimum=0)
            continue
        number = _number(value, where, minimum=0)
        if key in ("write_share", "tolerance") and number > 1:
            raise _Problem(where, f"expected a number between 0 and 1, got {_show(value)}")
        if key in ("peak_rps", "ramp_seconds", "hold_seconds", "rest_wait_seconds") and not (
            number > 0
        ):
            raise _Problem(where, f"expected a positive number, got {_show(value)}")
        values[key] = number
    capacity = capacity_from(values)
    if capacity.sockets > 0 and capacity.socket_task_seconds <= 0:
        raise _Problem("capacity.socket_task_seconds", "expected a positive number with sockets")
    return capacity


def parse_limits(data: Any) -> dict[str, Limit]:
    """`limits: {recovery_seconds: {value: 120, why: "..."}}`: every limit says why."""
    limits = {}
    for key, item in _mapping(data, "limits").items():
        where = f"limits.{key}"
        entry = _mapping(item, where)
        _known_keys(entry, frozenset({"value", "why"}), f"{where}.")
        why = entry.get("why")
        if not isinstance(why, str) or not why.strip():
            raise _Problem(f"{where}.why", "missing: say where the number comes from")
        if "value" not in entry:
            raise _Problem(f"{where}.value", "missing")
        limits[str(key)] = Limit(str(key), _number(entry["value"], f"{where}.value", 0), why)
    return limits


def parse_load(data: Any) -> LoadSpec:
    load = _mapping(data, "load")
    _known_keys(load, _LOAD_KEYS, "load.")
    files = _strings(load.get("locustfiles"), "load.locustfiles", required=True)
    for index, file in enumerate(files):
        if not file.endswith(".py") or file.startswith("/") or ".." in Path(file).parts:
            raise _Problem(
                f"load.locustfiles[{index}]", f"expected a .py file under loadtests/, got {file!r}"
            )
    shape = load.get("shape")
    if shape is not None and shape not in SHAPES:
        raise _Problem("load.shape", f"expected one of {', '.join(SHAPES)}, got {_show(shape)}")
    params = _mapping(load.get("shape_params", {}), "load.shape_params")
    for key, value in params.items():
        if key not in SHAPE_PARAMS:
            raise _Problem(
                f"load.shape_params.{key}", f"unknown; expected one of {', '.join(SHAPE_PARAMS)}"
            )
        _number(value, f"load.shape_params.{key}", minimum=0)
    env = _mapping(load.get("env", {}), "load.env")
    for key, value in env.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise _Problem(f"load.env.{key}", "expected an upper-case variable name")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _Problem(f"load.env.{key}", f"expected text or a number, got {_show(value)}")
    return LoadSpec(
        locustfiles=tuple(files),
        users=_integer(load.get("users", 10), "load.users", minimum=1),
        spawn_rate=_number(load.get("spawn_rate", 5.0), "load.spawn_rate", minimum=0.01),
        run_time=profile_seconds(load.get("run_time", 30), "load.run_time"),
        shape=shape,
        shape_params={k: float(v) for k, v in params.items()},
        processes=_integer(load.get("processes", 1), "load.processes", minimum=1),
        workers=_integer(load.get("workers", 0), "load.workers", minimum=0),
        env={k: str(v) for k, v in env.items()},
        user_classes=tuple(_strings(load.get("user_classes", []), "load.user_classes")),
    )


def parse_slo(data: Any, where: str) -> Slo:
    item = _mapping(data, where)
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise _Problem(f"{where}.name", f"expected a name like rest-p95, got {_show(name)}")
    kinds = [k.value for k in SloKind]
    try:
        kind = SloKind(item.get("kind"))
    except ValueError:
        raise _Problem(
            f"{where}.kind", f"expected one of {', '.join(kinds)}, got {_show(item.get('kind'))}"
        ) from None
    limit_key = LIMIT_KEYS[kind]
    allowed = (
        _COMMON_SLO_KEYS | {limit_key} | ({"percentile"} if kind is SloKind.LATENCY else set())
    )
    _known_keys(item, frozenset(allowed), f"{where}.")
    if limit_key not in item:
        raise _Problem(f"{where}.{limit_key}", f"missing (a {kind.value} SLO needs it)")
    limit = _number(item[limit_key], f"{where}.{limit_key}", minimum=0)
    if kind is SloKind.ERROR_RATE and limit > 1:
        raise _Problem(
            f"{where}.{limit_key}",
            f"expected a number between 0 and 1, got {_show(item[limit_key])}",
        )
    windows = [w.value for w in Window]
    try:
        window = Window(item.get("window", "all"))
    except ValueError:
        raise _Problem(
            f"{where}.window",
            f"expected one of {', '.join(windows)}, got {_show(item.get('window'))}",
        ) from None
    percentile = _number(item.get("percentile", 95), f"{where}.percentile", minimum=0.001)
    if percentile > 100:
        raise _Problem(
            f"{where}.percentile", f"expected at most 100, got {_show(item['percentile'])}"
        )
    selector = RequestSelector(
        types=frozenset(_strings(item.get("types", []), f"{where}.types")),
        names=frozenset(_strings(item.get("names", []), f"{where}.names")),
        exclude_types=frozenset(_strings(item.get("exclude_types", []), f"{where}.exclude_types")),
        exclude_names=frozenset(_strings(item.get("exclude_names", []), f"{where}.exclude_names")),
    )
    min_requests = _integer(item.get("min_requests", 1), f"{where}.min_requests", minimum=0)
    return Slo(name, kind, limit, window, selector, percentile, min_requests)


def profile_seconds(value: Any, where: str) -> float:
    """30 / 30.5 / "30s" / "5m" / "1h" -> seconds (> 0)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise _Problem(
            where, f"expected seconds or a duration like 90s, 5m, 1h, got {_show(value)}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise _Problem(where, f"expected a positive duration, got {_show(value)}")
    return seconds


# ---- small checkers: each raises a _Problem naming the field ----


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Problem(where, f"expected a mapping, got {_show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _Problem(where, f"keys must be text, got {_show(key)}")
    return value


def _known_keys(mapping: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise _Problem(
                f"{prefix}{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )


def _number(value: Any, where: str, minimum: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _Problem(where, f"expected a number, got {_show(value)}")
    if value < minimum:
        raise _Problem(where, f"expected at least {minimum:g}, got {_show(value)}")
    return float(value)


def _integer(value: Any, where: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Problem(where, f"expected an integer, got {_show(value)}")
    if value < minimum:
        raise _Problem(where, f"expected at least {minimum}, got {value}")
    return value


def _strings(value: Any, where: str, required: bool = False) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        wanted = "a non-empty list of text" if required else "a list of text"
        raise _Problem(where, f"expected {wanted}, got {_show(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _Problem(f"{where}[{index}]", f"expected text, got {_show(item)}")
    return list(value)


def _show(value: Any) -> str:
    """A value as the user wrote it, short and on one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
