"""What a run needs, derived from what it will run (pure, over parsed experiments).

An experiment's needs are the union of the table rows (`preflight.table`) of its
steady-state probes, method and rollbacks, with their arguments substituted from the
configuration as chaoslib will substitute them, plus its controls'. A game day's are
its steps' (each with the step's variables) plus the watches it starts; a pytest
session's are its resilience tests' fixtures and modules. Every permission keeps who
needs it, for the report and the tests; whatever the table does not know is listed
apart (`Needs.unknown`): a preflight failure of its own.

    >>> experiment = {"configuration": {"namespace": "harmonyflow"}, "method": [
    ...     {"type": "action", "name": "drain", "provider": {"type": "python",
    ...      "module": "resilience.chaos.nodes", "func": "uncordon_zone",
    ...      "arguments": {"zone": "us-west-2a"}}}]}
    >>> sorted(str(p) for p in needs(experiment))
    ['list nodes', 'patch nodes']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.observe.records import ResourceKind
from resilience.preflight.permissions import Call, Permission, resolve
from resilience.preflight.table import (
    ACTIVITIES,
    AWS_ONLY_PREFIXES,
    CONTROLS,
    ON_CLUSTER_LOAD,
    SUITE_FIXTURES,
    SUITES,
    WATCHES,
    Calls,
    SuiteRow,
)

_WHOLE = re.compile(r"^\$\{([^}]+)\}$")
_PART = re.compile(r"\$\{([^}]+)\}")
DESTRUCTIVE = "destructive"


@dataclass(frozen=True)
class Needs:
    """Permissions, each with who needs it, and what the table does not know."""

    by: Mapping[Permission, frozenset[str]] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()

    @property
    def permissions(self) -> frozenset[Permission]:
        return frozenset(self.by)

    def __or__(self, other: Needs) -> Needs:
        merged = {
            p: self.by.get(p, frozenset()) | other.by.get(p, frozenset())
            for p in {*self.by, *other.by}
        }
        return Needs(merged, tuple(dict.fromkeys((*self.unknown, *other.unknown))))


def union(parts: Iterable[Needs]) -> Needs:
    total = Needs()
    for part in parts:
        total = total | part
    return total


def of(permissions: Iterable[Permission], source: str) -> Needs:
    return Needs({p: frozenset({source}) for p in permissions})


# ---- experiments ----


def needs(
    experiment: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> frozenset[Permission]:
    """The permissions `experiment` needs (see `explain` for who needs which)."""
    return explain(experiment, variables, env).permissions


def explain(
    experiment: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "",
) -> Needs:
    """Union over the experiment's hypothesis probes, method, rollbacks and controls.

    `variables` are the run's `--var`s (they win over the configuration); `env` resolves
    `{type: env}` configuration values (absent: their defaults, if any).
    """
    configuration = configured(experiment, variables or {}, env or {})
    prefix = f"{source}: " if source else ""
    found: list[Needs] = []
    for activity in activities(experiment):
        key = activity_key(activity)
        if key is None:
            continue
        rows = _activity_rows(key)
        if rows is None:
            found.append(Needs(unknown=(key,)))
            continue
        provider = activity.get("provider") or {}
        call = Call(substitute(provider.get("arguments") or {}, configuration), configuration)
        found.append(of((p for row in rows for p in resolve(row, call)), prefix + key))
    for module in control_modules(experiment):
        if module not in CONTROLS:
            found.append(Needs(unknown=(f"control {module}",)))
            continue
        call = Call({}, configuration)
        rows = CONTROLS[module]
        found.append(of((p for row in rows for p in resolve(row, call)), f"{prefix}{module}"))
    return union(found)


def unknown(experiment: Mapping[str, Any]) -> list[str]:
    """Activities and controls of `experiment` the table has no row for."""
    return list(explain(experiment).unknown)


def activities(experiment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every activity chaoslib may run: hypothesis probes, method, rollbacks."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    listed = [
        *(hypothesis.get("probes") or []),
        *(experiment.get("method") or []),
        *(experiment.get("rollbacks") or []),
    ]
    return [a for a in listed if isinstance(a, Mapping)]


def control_modules(experiment: Mapping[str, Any]) -> list[str]:
    """Python modules of the experiment's controls and of its activities' own controls."""
    declared = [*(experiment.get("controls") or [])]
    for activity in activities(experiment):
        declared += activity.get("controls") or []
    modules = []
    for control in declared:
        provider = (control or {}).get("provider") or {}
        if provider.get("type", "python") == "python" and provider.get("module"):
            modules.append(str(provider["module"]))
    return list(dict.fromkeys(modules))


def activity_key(activity: Mapping[str, Any]) -> str | None:
    """`module.func` of a python provider; `process PATH` for a process (which may run
    anything, kubectl included, so it is unknown); `http` for an HTTP provider; None for
    a `ref` (the activity it names is counted where it is declared).

    >>> activity_key({"provider": {"type": "python", "module": "m", "func": "f"}})
    'm.f'
    >>> activity_key({"ref": "earlier"}) is None
    True
    """
    if "ref" in activity and "provider" not in activity:
        return None
    provider = activity.get("provider") or {}
    kind = provider.get("type")
    if kind == "python":
        return f"{provider.get('module')}.{provider.get('func')}"
    if kind == "process":
        return f"process {provider.get('path')}"
    return str(kind)


def _activity_rows(key: str) -> tuple[Any, ...] | None:
    if key == "http" or key.startswith(AWS_ONLY_PREFIXES):
        return ()  # an HTTP endpoint, or AWS: IAM is not RBAC
    return ACTIVITIES.get(key)


def configured(
    experiment: Mapping[str, Any], variables: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """The configuration as the activities will see it: `{type: env}` values read from
    `env` (else their `default`; else left out), then `variables` on top.

    >>> configured({"configuration": {"ns": "a", "url": {"type": "env", "key": "U"}}},
    ...            {"ns": "b"}, {"U": "http://x"})
    {'ns': 'b', 'url': 'http://x'}
    """
    values: dict[str, Any] = {}
    for key, value in (experiment.get("configuration") or {}).items():
        if isinstance(value, Mapping) and value.get("type") == "env":
            if value.get("key") in env:
                values[key] = env[str(value["key"])]
            elif "default" in value:
                values[key] = value["default"]
            continue
        values[key] = value
    return {**values, **variables}


def substitute(value: Any, configuration: Mapping[str, Any]) -> Any:
    """`${key}` replaced as chaoslib does: a whole `${key}` keeps the value's type, one
    inside a string is formatted into it; unknown keys stay as they are.

    >>> substitute({"ns": "${namespace}", "n": "${x}-canary", "k": "${k}"},
    ...            {"namespace": "harmonyflow", "x": 1})
    {'ns': 'harmonyflow', 'n': '1-canary', 'k': '${k}'}
    """
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole and whole.group(1) in configuration:
            return configuration[whole.group(1)]
        return _PART.sub(
            lambda m: str(configuration[m.group(1)]) if m.group(1) in configuration else m.group(0),
            value,
        )
    if isinstance(value, Mapping):
        return {k: substitute(v, configuration) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, configuration) for v in value]
    return value


# ---- watches, game days, suites ----


def watch_needs(kinds: Iterable[ResourceKind], namespace: str) -> Needs:
    """The LIST and WATCH of each watched kind (`observe.monitors.watched_kinds`)."""
    call = Call({}, {"namespace": namespace})
    return union(
        of(resolve(WATCHES[kind], call), f"watch of {kind.value} objects") for kind in kinds
    )


def on_cluster_load_needs(namespace: str) -> Needs:
    """What a load run in pods asks in its namespace (`table.ON_CLUSTER_LOAD`); asked only
    when `--on-cluster` or `--load-on-cluster` is given."""
    call = Call({}, {"namespace": namespace})
    return union(of(resolve(row, call), "on-cluster load") for row in ON_CLUSTER_LOAD)


@dataclass(frozen=True)
class SuiteTest:
    """What a selected pytest item runs: its module, fixtures and whether it is destructive."""

    module: str
    fixtures: frozenset[str] = frozenset()
    destructive: bool = False


def suite_needs(
    tests: Iterable[SuiteTest], namespace: str, monitor_kinds: Iterable[ResourceKind]
) -> Needs:
    """The union over the tests' modules (`SUITES`) and fixtures (`SUITE_FIXTURES`, the
    `monitors` fixture's watches from `monitor_kinds`); a module not in the table is
    unknown."""
    found: list[Needs] = []
    config = {"namespace": namespace}
    kinds = tuple(monitor_kinds)
    for test in tests:
        if test.module not in SUITES:
            found.append(Needs(unknown=(f"suite {test.module}",)))
        else:
            found.append(_suite_rows(SUITES[test.module], config, test.module))
        used = set(test.fixtures) | ({DESTRUCTIVE} if test.destructive else set())
        for fixture in sorted(used & set(SUITE_FIXTURES)):
            found.append(_suite_rows(SUITE_FIXTURES[fixture], config, f"fixture {fixture}"))
        if "monitors" in used:
            found.append(watch_needs(kinds, namespace))
    return union(found)


def _suite_rows(rows: Iterable[SuiteRow], configuration: Mapping[str, Any], source: str) -> Needs:
    found: list[Needs] = []
    for row in rows:
        if isinstance(row, Calls):
            arguments = substitute(dict(row.arguments), configuration)
            call = Call(arguments, configuration)
            resolved = [p for r in ACTIVITIES[row.activity] for p in resolve(r, call)]
            found.append(of(resolved, f"{source}: {row.activity}"))
        else:
            found.append(of(resolve(row, Call({}, configuration)), source))
    return union(found)
