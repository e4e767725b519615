"""The game-day plan: which experiments, in which order, with which variables and bounds.

A plan is YAML, checked here before anything touches a cluster, so a typo costs a
second and not a half-finished game day. Every mistake is one line naming the file
and the field (`plan.yaml: steps[2].experiment: unknown experiment 'pod-kil'`).

    name: standard                 # a slug; reports compare runs of the same name
    description: ...
    load_profile: chaos            # loadtests/profiles/<name>.yaml, for the whole day
    warmup_seconds: 20             # baseline load before the first step
    pause_seconds: 20              # recovery pause after each step
    steady_state_timeout: 120      # wait at most this long for a steady cluster
    recovery_budget_seconds: 120   # default time-to-recovery budget of a step (score)
    steps:
      - experiment: pod-kill       # experiments/pod-kill.yaml (or a path to a .yaml)
        vars: {recovery_timeout: 120}
        timeout: 300               # past it the step is interrupted (its rollbacks run)
      - experiment: hpa-surge
        optional: true             # skipped, not refused, when the file does not exist
      - experiment: az-drain
        expect_alerts: [SessionStateTooFewReadyPods]  # must fire by the end of its recovery
        stop_conditions: [SessionStateHighErrorRate]  # firing: the fault stops at once

The game day passes `load_profile=external` to every experiment that declares
`load_profile` (the day's own load runs across all steps); a step's `vars` win.

    >>> plan = parse_plan({"name": "p", "steps": [{"experiment": "pod-kill"}]}, "p.yaml",
    ...                   {"pod-kill": Experiment("pod-kill", Path("pod-kill.yaml"), ("seed",))})
    >>> [(s.name, s.timeout) for s in plan.steps]
    [('pod-kill', 600.0)]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resilience.errors import InvalidInputError
from resilience.paths import PROJECT_ROOT as REPO_ROOT
from resilience.slo.alert_rules import load_alert_rules

EXPERIMENTS_DIR = REPO_ROOT / "experiments"
DEFAULT_PLAN = EXPERIMENTS_DIR / "gameday" / "standard.yaml"
EXTERNAL_LOAD = "external"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PLAN_KEYS = {
    "name",
    "description",
    "load_profile",
    "warmup_seconds",
    "pause_seconds",
    "steady_state_timeout",
    "recovery_budget_seconds",
    "steps",
}
_STEP_KEYS = {
    "experiment",
    "name",
    "vars",
    "timeout",
    "optional",
    "recovery_budget_seconds",
    "expect_alerts",
    "stop_conditions",
}
_ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Experiment:
    """What the plan needs to know of an experiment file: where, and what it declares."""

    name: str
    path: Path
    declared: tuple[str, ...]  # its configuration keys: the only legal --var names


@dataclass(frozen=True)
class Step:
    name: str
    experiment: str
    path: Path | None  # None: optional and missing, so skipped
    variables: Mapping[str, str] = field(default_factory=dict)  # --var, load_profile included
    timeout: float = 600.0
    recovery_budget: float = 120.0
    expect_alerts: tuple[str, ...] = ()  # Prometheus alert names
    stop_conditions: tuple[str, ...] = ()  # alerts that stop the step's fault when they fire

    @property
    def skipped(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class Plan:
    name: str
    source: Path
    steps: tuple[Step, ...]
    description: str = ""
    load_profile: str = "chaos"
    warmup_seconds: float = 20.0
    pause_seconds: float = 20.0
    steady_state_timeout: float = 120.0

    def bound_seconds(self) -> float:
        """The longest the day can take: warm-up, every step's timeout and pause, and a
        steady-state wait before each step (what the load's own bound must cover)."""
        runnable = [s for s in self.steps if not s.skipped]
        per_step = sum(s.timeout + self.pause_seconds + self.steady_state_timeout for s in runnable)
        return self.warmup_seconds + per_step


def parse_plan(
    data: Any, source: str | Path, experiments: Mapping[str, Experiment], base_dir: Path = Path()
) -> Plan:
    """A validated plan from parsed YAML (pure: `experiments` are the known files by name).

    `base_dir` resolves step experiments given as paths (`./mine.yaml`).
    """
    where = str(source)
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where}: a plan is a mapping with name and steps")
    _unknown_keys(data, _PLAN_KEYS, where, "")
    name = data.get("name")
    if not isinstance(name, str) or not _SLUG.match(name):
        raise InvalidInputError(
            f"{where}: name: expected a lowercase slug like 'standard', got {name!r}"
        )
    defaults = {
        "warmup_seconds": _seconds(data, "warmup_seconds", 20.0, where, "", allow_zero=True),
        "pause_seconds": _seconds(data, "pause_seconds", 20.0, where, "", allow_zero=True),
        "steady_state_timeout": _seconds(data, "steady_state_timeout", 120.0, where, ""),
    }
    budget = _seconds(data, "recovery_budget_seconds", 120.0, where, "")
    profile = data.get("load_profile", "chaos")
    if not isinstance(profile, str) or not profile:
        raise InvalidInputError(f"{where}: load_profile: expected a profile name, got {profile!r}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidInputError(f"{where}: steps: expected a non-empty list of steps")
    steps = [
        _step(raw, f"steps[{index}]", where, experiments, base_dir, budget)
        for index, raw in enumerate(raw_steps)
    ]
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if step.name in seen:
            raise InvalidInputError(
                f"{where}: steps[{index}].name: {step.name!r} is used twice; give one a name"
            )
        seen.add(step.name)
    description = data.get("description", "")
    return Plan(
        name=name,
        source=Path(source),
        steps=tuple(steps),
        description=str(description or "").strip(),
        load_profile=profile,
        **defaults,
    )


def _step(
    raw: Any,
    at: str,
    where: str,
    experiments: Mapping[str, Experiment],
    base_dir: Path,
    default_budget: float,
) -> Step:
    if isinstance(raw, str):
        raw = {"experiment": raw}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: {at}: expected a mapping with an experiment")
    _unknown_keys(raw, _STEP_KEYS, where, at + ".")
    reference = raw.get("experiment")
    if not isinstance(reference, str) or not reference:
        raise InvalidInputError(f"{where}: {at}.experiment: expected an experiment name")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise InvalidInputError(f"{where}: {at}.optional: expected true or false")
    name = raw.get("name", Path(reference).stem)
    if not isinstance(name, str) or not _SLUG.match(name):
        raise InvalidInputError(f"{where}: {at}.name: expected a lowercase slug, got {name!r}")
    timeout = _seconds(raw, "timeout", 600.0, where, at + ".")
    budget = _seconds(raw, "recovery_budget_seconds", default_budget, where, at + ".")
    alerts = _alert_names(raw.get("expect_alerts", []), where, at)
    stops = _alert_names(raw.get("stop_conditions", []), where, at, "stop_conditions")
    experiment = _resolve(reference, experiments, base_dir)
    if experiment is None:
        if optional:
            return Step(name, reference, None, {}, timeout, budget, alerts, stops)
        known = ", ".join(sorted(experiments)) or "none"
        raise InvalidInputError(
            f"{where}: {at}.experiment: unknown experiment {reference!r} (known: {known})"
        )
    variables = _variables(raw.get("vars", {}), experiment, where, at)
    return Step(name, reference, experiment.path, variables, timeout, budget, alerts, stops)


def _alert_names(raw: Any, where: str, at: str, key: str = "expect_alerts") -> tuple[str, ...]:
    """`expect_alerts` / `stop_conditions`: Prometheus alert names (the rules' `alert:`)."""
    if not isinstance(raw, list):
        raise InvalidInputError(f"{where}: {at}.{key}: expected a list of alert names")
    for index, name in enumerate(raw):
        if not isinstance(name, str) or not _ALERT_NAME.match(name):
            raise InvalidInputError(
                f"{where}: {at}.{key}[{index}]: expected an alert name like "
                f"'SessionStateTooFewReadyPods', got {name!r}"
            )
    known = load_alert_rules()
    for index, name in enumerate(raw):
        if name not in known:
            raise InvalidInputError(
                f"{where}: {at}.{key}[{index}]: no alert {name!r} in "
                f"deploy/monitoring/rules (known: {', '.join(sorted(known))})"
            )
    return tuple(dict.fromkeys(raw))


def _variables(raw: Any, experiment: Experiment, where: str, at: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: {at}.vars: expected a mapping of names to values")
    variables: dict[str, str] = {}
    if "load_profile" in experiment.declared:
        variables["load_profile"] = EXTERNAL_LOAD
    for key, value in raw.items():
        if key not in experiment.declared:
            declared = ", ".join(experiment.declared) or "none"
            raise InvalidInputError(
                f"{where}: {at}.vars.{key}: not declared by {experiment.path.name}"
                f" (declared: {declared})"
            )
        if isinstance(value, Mapping | list) or value is None:
            raise InvalidInputError(f"{where}: {at}.vars.{key}: expected a number, word or bool")
        variables[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return variables


def _resolve(
    reference: str, experiments: Mapping[str, Experiment], base_dir: Path
) -> Experiment | None:
    if reference in experiments:
        return experiments[reference]
    if reference.endswith((".yaml", ".yml", ".json")):
        for candidate in (base_dir / reference, Path(reference)):
            if candidate.is_file():
                return read_experiment(candidate)
    return None


def _seconds(
    data: Mapping[str, Any], key: str, default: float, where: str, at: str, allow_zero: bool = False
) -> float:
    value = data.get(key, default)
    number_like = isinstance(value, int | float) and not isinstance(value, bool)
    if not number_like or value < 0 or (value == 0 and not allow_zero):
        wanted = "a number of seconds >= 0" if allow_zero else "a positive number of seconds"
        raise InvalidInputError(f"{where}: {at}{key}: expected {wanted}, got {value!r}")
    return float(value)


def _unknown_keys(data: Mapping[str, Any], known: set[str], where: str, at: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InvalidInputError(
            f"{where}: {at}{unknown[0]}: unknown field (known: {', '.join(sorted(known))})"
        )


# ---- I/O ----


def experiment_document(path: Path) -> dict[str, Any]:
    """The experiment document (YAML or JSON), as chaoslib will read it; a file that is
    not one is bad input, in one line."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError(
            f"{path}: cannot read the experiment: {_first_line(error)}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidInputError(f"{path}: not an experiment (expected a mapping)")
    return document


def read_experiment(path: Path) -> Experiment:
    """The experiment's declared configuration keys (a light read; chaoslib validates later)."""
    document = experiment_document(path)
    configuration = document.get("configuration") or {}
    declared = (
        tuple(sorted(str(k) for k in configuration)) if isinstance(configuration, Mapping) else ()
    )
    return Experiment(path.stem, path.resolve(), declared)


def known_experiments(directory: Path = EXPERIMENTS_DIR) -> dict[str, Experiment]:
    """Every experiment file of `directory` by name (game-day plans live below it)."""
    found: dict[str, Experiment] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            found[path.stem] = read_experiment(path)
        except InvalidInputError:
            continue  # a broken experiment is refused when a plan names it
    return found


def load_plan(path: Path, experiments_dir: Path = EXPERIMENTS_DIR) -> Plan:
    """Read and validate a plan file; every problem is one line (InvalidInputError)."""
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such plan file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InvalidInputError(f"{path}: not valid YAML: {_first_line(error)}") from None
    return parse_plan(data, path, known_experiments(experiments_dir), path.parent)


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def step_names(steps: Sequence[Step]) -> list[str]:
    return [s.name for s in steps]
