"""`resilience chaos run`: Chaos Toolkit's own engine, with the suite's strictness.

What the stock `chaos run` lets through is refused or failed here:
- a `--var` the experiment does not declare (chaoslib ignores it silently);
- a configuration value read from an unset environment variable, named up front;
- an invalid experiment, an unreachable cluster, a refused production context, or
  credentials lacking a permission the experiment needs (the preflight,
  `resilience.preflight`): one line each, before anything runs (exit 2);
- a failed action or a deviation during the method (`chaos run` exits 0): the
  verdict reads the journal (see `verdict`).
The hypothesis is checked continuously, and rollbacks always run (Ctrl-C and
SIGTERM included: chaoslib turns both into an interrupted run, then rolls back).
Every run carries the dead-man switch (`--dead-man-seconds`, see
`controls.dead_man`), and `--stop-on-alert` adds stop conditions to any experiment
(`controls.stop_conditions`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resilience.errors import InvalidInputError, ResilienceError
from resilience.safety.refusals import InterlockRefused

log = logging.getLogger(__name__)
DEFAULT_HYPOTHESIS_FREQUENCY = 2.0
# Long enough that an API server's leader election or a brief network blip (a few
# seconds) does not end the run, short enough that a fault does not outlive the
# runner's sight of it by more than half a minute (FIS checks its alarms as often).
DEFAULT_DEAD_MAN_SECONDS = 30.0
DEAD_MAN_MODULE = "resilience.chaos.controls.dead_man"
STOP_CONDITIONS_MODULE = "resilience.chaos.controls.stop_conditions"


@dataclass(frozen=True)
class ChaosRun:
    experiment: Path
    variables: Mapping[str, str] = field(default_factory=dict)
    var_files: Sequence[Path] = ()
    kube_context: str | None = None
    allow_production: str | None = None
    journal_path: Path | None = None
    hypothesis_frequency: float = DEFAULT_HYPOTHESIS_FREQUENCY
    dead_man_seconds: float = DEFAULT_DEAD_MAN_SECONDS  # 0: no dead-man switch
    stop_alerts: Sequence[str] = ()  # Prometheus alerts added as stop conditions


def load(path: Path, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment, validated by chaoslib; its complaint becomes one line.

    chaoslib's validation reads every `{type: env}` configuration value, so a value
    given with `--var` stands in for its environment variable, and one missing from
    both is named first (with the variable to set).
    """
    from chaoslib.exceptions import ChaosException  # noqa: PLC0415 - chaoslib is heavy
    from chaoslib.experiment import ensure_experiment_is_valid  # noqa: PLC0415
    from chaoslib.loader import load_experiment  # noqa: PLC0415

    if not path.is_file():
        raise InvalidInputError(f"{path}: no such experiment file")
    given = dict(variables or {})
    try:
        experiment: dict[str, Any] = load_experiment(str(path))
    except ChaosException as error:
        raise InvalidInputError(f"{path}: invalid experiment: {_one_line(error)}") from None
    missing = missing_environment(experiment, given, os.environ)
    if missing:
        raise InvalidInputError(f"{path}: missing variable: {'; '.join(missing)}")
    checked = {**experiment, "configuration": {**(experiment.get("configuration") or {}), **given}}
    try:
        ensure_experiment_is_valid(checked)
    except ChaosException as error:
        raise InvalidInputError(f"{path}: invalid experiment: {_one_line(error)}") from None
    return experiment


def undeclared(experiment: Mapping[str, Any], variables: Mapping[str, Any]) -> list[str]:
    """`--var` keys the experiment's configuration does not declare (sorted).

    >>> undeclared({"configuration": {"zone": "a"}}, {"zone": "b", "zoen": "c"})
    ['zoen']
    """
    declared = set((experiment.get("configuration") or {}).keys())
    return sorted(set(variables) - declared)


def missing_environment(
    experiment: Mapping[str, Any], variables: Mapping[str, Any], env: Mapping[str, str]
) -> list[str]:
    """Configuration keys read from an unset environment variable with no default.

    >>> missing_environment({"configuration": {"url": {"type": "env", "key": "U"}}}, {}, {})
    ['url (environment variable U)']
    """
    missing = []
    for name, value in (experiment.get("configuration") or {}).items():
        if not isinstance(value, dict) or value.get("type") != "env" or name in variables:
            continue
        if "default" not in value and value.get("key") not in env:
            missing.append(f"{name} (environment variable {value.get('key')})")
    return missing


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs; a malformed one is named.

    >>> parse_variables(["zone=us-west-2b"])
    {'zone': 'us-west-2b'}
    """
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--var {pair!r}: expected KEY=VALUE")
        parsed[key] = value
    return parsed


def typed_like_defaults(
    experiment: Mapping[str, Any], variables: Mapping[str, str]
) -> dict[str, Any]:
    """`--var` strings converted to the type of the value the experiment declares.

    `chaos run` passes them on as strings, so `--var recovery_timeout=15` would reach
    an activity as "15"; here it becomes 15 because the declared default is a number.

    >>> typed_like_defaults({"configuration": {"t": 180, "z": "a"}}, {"t": "15", "z": "b"})
    {'t': 15, 'z': 'b'}
    """
    declared = experiment.get("configuration") or {}
    typed: dict[str, Any] = {}
    for name, text in variables.items():
        default = declared.get(name)
        kind = type(default) if isinstance(default, (bool, int, float)) else str
        try:
            typed[name] = _convert(kind, text)
        except ValueError:
            raise InvalidInputError(
                f"--var {name}={text}: expected a {kind.__name__} like its default {default!r}"
            ) from None
    return typed


def _convert(kind: type, text: str) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    return kind(text)


def with_safeguards(
    experiment: Mapping[str, Any], dead_man_seconds: float, stop_alerts: Sequence[str] = ()
) -> dict[str, Any]:
    """The experiment with the dead-man switch and the extra stop-condition alerts.

    The switch is added unless `dead_man_seconds` is 0; one the experiment declares gets
    the runner's bound. Extra alerts join a declared stop-conditions control, or make one.
    Added controls go first, so that their journal entries are there when the `journal`
    control writes it.

    >>> ran = with_safeguards({"title": "t"}, 30, ["A"])
    >>> [(c["name"], c["provider"]["arguments"]) for c in ran["controls"]]
    [('stop-conditions', {'alerts': ['A']}), ('dead-man', {'seconds': 30})]
    """
    controls = [dict(c) for c in experiment.get("controls") or []]

    def declared(module: str) -> dict[str, Any] | None:
        for control in controls:
            if (control.get("provider") or {}).get("module") == module:
                control["provider"] = dict(control["provider"])
                return control
        return None

    if dead_man_seconds > 0:
        dead_man = declared(DEAD_MAN_MODULE)
        if dead_man is None:
            controls.insert(0, _control("dead-man", DEAD_MAN_MODULE, {"seconds": dead_man_seconds}))
        else:
            arguments = dict(dead_man["provider"].get("arguments") or {})
            dead_man["provider"]["arguments"] = {**arguments, "seconds": dead_man_seconds}
    else:
        controls = [
            c for c in controls if (c.get("provider") or {}).get("module") != DEAD_MAN_MODULE
        ]
    if stop_alerts:
        stop = declared(STOP_CONDITIONS_MODULE)
        if stop is None:
            controls.insert(
                0,
                _control("stop-conditions", STOP_CONDITIONS_MODULE, {"alerts": list(stop_alerts)}),
            )
        else:
            arguments = dict(stop["provider"].get("arguments") or {})
            alerts = list(dict.fromkeys([*(arguments.get("alerts") or []), *stop_alerts]))
            stop["provider"]["arguments"] = {**arguments, "alerts": alerts}
    return {**experiment, "controls": controls}


def _control(name: str, module: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "provider": {"type": "python", "module": module, "arguments": arguments}}


def prepare(run: ChaosRun) -> dict[str, Any]:
    """Everything checked that can be checked before touching the cluster."""
    experiment = load(run.experiment, run.variables)
    typed_like_defaults(experiment, run.variables)
    unknown = undeclared(experiment, run.variables)
    if unknown:
        declared = ", ".join(sorted((experiment.get("configuration") or {}).keys())) or "none"
        raise InvalidInputError(
            f"--var {', '.join(unknown)}: not declared in {run.experiment}'s configuration"
            f" (declared: {declared})"
        )
    return experiment


@contextmanager
def target_environment(run: ChaosRun) -> Iterator[None]:
    """The context and production confirmation, as the activities and controls read them."""
    from resilience.chaos.controls.interlocks import CONFIRMATION_ENV  # noqa: PLC0415

    changes = {"KUBERNETES_CONTEXT": run.kube_context, CONFIRMATION_ENV: run.allow_production}
    saved = {key: os.environ.get(key) for key in changes}
    for key, value in changes.items():
        if value is not None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_target(experiment: Mapping[str, Any], run: ChaosRun) -> str:
    """The interlocks and a reachability check, as exit-2 mistakes (nothing ran yet)."""
    from resilience.chaos.controls.interlocks import check_target as interlock  # noqa: PLC0415

    namespace = (experiment.get("configuration") or {}).get("namespace")
    namespace = run.variables.get("namespace", namespace)
    try:
        return interlock(str(namespace) if isinstance(namespace, str) else None)
    except InterlockRefused as refusal:
        hint = ""
        if any(r.rule == "production" for r in refusal.refusals):
            hint = " (with this command: --allow-production CONTEXT-NAME)"
        raise InvalidInputError(f"{refusal}{hint}") from None
    except ResilienceError as refusal:
        raise InvalidInputError(str(refusal)) from None


def check_permissions(
    experiment: Mapping[str, Any], run: ChaosRun, warn: Callable[[str], None]
) -> None:
    """The permissions preflight (`resilience.preflight`): every request the experiment,
    its safeguards and its controls will make, asked of the API server with the
    activities' own credentials before anything runs; missing ones refused in one line
    (exit 2). Variables from `--var` and `--var-file` count, as they will in the run."""
    from chaoslib import merge_vars  # noqa: PLC0415 - chaoslib is heavy

    from resilience.chaos.kube import api_client  # noqa: PLC0415
    from resilience.preflight import review  # noqa: PLC0415
    from resilience.preflight.needs import explain  # noqa: PLC0415

    variables, _ = merge_vars(
        typed_like_defaults(experiment, run.variables), [str(p) for p in run.var_files]
    )
    guarded = with_safeguards(experiment, run.dead_man_seconds, run.stop_alerts)
    needs = explain(guarded, variables, os.environ)
    api = api_client()
    try:
        review.check(api, needs, warn)
    finally:
        api.close()  # type: ignore[no-untyped-call]


def execute(experiment: dict[str, Any], run: ChaosRun) -> dict[str, Any]:
    """Run it on this (main) thread and return the journal; written to `journal_path`."""
    from chaoslib import merge_vars  # noqa: PLC0415
    from chaoslib.experiment import run_experiment  # noqa: PLC0415
    from chaoslib.types import Schedule, Strategy  # noqa: PLC0415

    # Ctrl-C must interrupt (and so roll back) even when started from a script whose
    # shell ignored SIGINT for its background jobs; SIGTERM is chaoslib's own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    variables = typed_like_defaults(experiment, run.variables)
    experiment = with_safeguards(experiment, run.dead_man_seconds, run.stop_alerts)
    experiment_vars = merge_vars(variables, [str(p) for p in run.var_files])
    journal: dict[str, Any] = run_experiment(
        experiment,
        settings={"runtime": {"rollbacks": {"strategy": "always"}}},
        experiment_vars=experiment_vars,
        strategy=Strategy.CONTINUOUS,
        schedule=Schedule(continuous_hypothesis_frequency=run.hypothesis_frequency),
    )
    if run.journal_path is not None:
        from resilience.chaos.controls.journal import scrub  # noqa: PLC0415

        run.journal_path.parent.mkdir(parents=True, exist_ok=True)
        run.journal_path.write_text(json.dumps(scrub(journal), indent=2, default=str))
    return journal


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
