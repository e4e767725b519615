"""experiments/README.md's contract, checked on every experiment file (found by glob).

What the README promises of "every experiment" is what the runner, the game day and the
report rely on: declared variables, the load around the fault, the controls, a
hypothesis, a blast radius and rollbacks that always run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.builders import REPO_ROOT

EXPERIMENTS = sorted((REPO_ROOT / "experiments").glob("*.yaml"))
PROFILES = REPO_ROOT / "loadtests" / "profiles"
REQUIRED_CONTROLS = {
    "interrupts": "resilience.chaos.controls.interrupts",
    "load": "resilience.chaos.controls.fault_windows",
    "interlocks": "resilience.chaos.controls.interlocks",
    "journal": "resilience.chaos.controls.journal",
}
START = "resilience.chaos.experiment_load.start_load"
JUDGE = "resilience.chaos.experiment_load.load_slos_met"
# the actions that disrupt; a release rolled out first (hpa-surge's) is setup, not a fault
DISRUPTIVE_PREFIXES = (
    "resilience.chaos.pods.",
    "resilience.chaos.nodes.",
    "resilience.chaos.zones.",
    "resilience.chaos.database.",
    "resilience.chaos.brokers.",
    "resilience.chaos.chaosmesh.",
    "resilience.chaos.fis.",
    "chaosaws.",
    "chaosk8s.",
)
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _function(activity: dict[str, Any]) -> str:
    provider = activity.get("provider") or {}
    return f"{provider.get('module')}.{provider.get('func')}"


def contract_breaches(experiment: dict[str, Any], text: str) -> list[str]:
    """Each promise of experiments/README.md the experiment breaks, one line each."""
    breaches: list[str] = []
    configuration = experiment.get("configuration") or {}
    undeclared = sorted(set(VARIABLE.findall(text)) - set(configuration))
    if undeclared:
        breaches.append(f"uses undeclared variables {undeclared} (--var could not set them)")
    method = [_function(a) for a in experiment.get("method") or []]
    starts = method.index(START) if START in method else None
    judged = method.index(JUDGE) if JUDGE in method else None
    if starts is None:
        breaches.append("method never runs start-load")
    if judged is None:
        breaches.append("method never runs load-slos-met")
    if starts is not None and judged is not None and judged < starts:
        breaches.append("method judges the load (load-slos-met) before starting it")
    if starts is not None and any(
        f.startswith(DISRUPTIVE_PREFIXES) and i < starts for i, f in enumerate(method)
    ):
        breaches.append("a fault runs before start-load: the load must see it")
    profile = configuration.get("load_profile")
    if not isinstance(profile, str) or not (PROFILES / f"{profile}.yaml").is_file():
        breaches.append(f"load_profile {profile!r} is not a profile in loadtests/profiles/")
    controls = {
        c.get("name"): (c.get("provider") or {}).get("module")
        for c in experiment.get("controls") or []
    }
    for name, module in REQUIRED_CONTROLS.items():
        if controls.get(name) != module:
            breaches.append(f"control {name!r} ({module}) missing")
    probes = (experiment.get("steady-state-hypothesis") or {}).get("probes") or []
    if not any("tolerance" in p for p in probes):
        breaches.append("no steady-state probe with a tolerance")
    if "max_disrupted_pods" not in configuration:
        breaches.append("max_disrupted_pods not declared")
    if ((experiment.get("runtime") or {}).get("rollbacks") or {}).get("strategy") != "always":
        breaches.append("runtime.rollbacks.strategy is not 'always'")
    rollbacks = [_function(a) for a in experiment.get("rollbacks") or []]
    if "resilience.chaos.experiment_load.stop_load" not in rollbacks:
        breaches.append("rollbacks do not stop the load")
    return breaches


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_keeps_the_readmes_contract(path: Path) -> None:
    assert contract_breaches(_load(path), path.read_text()) == []


@pytest.mark.parametrize(
    ("change", "breach"),
    [
        (lambda e: e["method"].pop(0), "method never runs start-load"),
        (lambda e: e["method"].pop(), "method never runs load-slos-met"),
        (lambda e: e["method"].reverse(), "load-slos-met) before starting it"),
        (lambda e: e["method"].insert(0, e["method"][1]), "a fault runs before start-load"),
        (lambda e: e["configuration"].pop("max_disrupted_pods"), "max_disrupted_pods"),
        (lambda e: e["controls"].pop(), "control 'journal'"),
        (lambda e: e["runtime"].update(rollbacks={"strategy": "default"}), "strategy"),
        (lambda e: e["rollbacks"].clear(), "rollbacks do not stop the load"),
        (lambda e: e["configuration"].update(load_profile="nope"), "load_profile 'nope'"),
        (lambda e: e["configuration"].pop("namespace"), "undeclared variables ['namespace']"),
        (
            lambda e: e["steady-state-hypothesis"]["probes"][0].pop("tolerance"),
            "no steady-state probe with a tolerance",
        ),
    ],
)
def test_each_breach_is_named(change: Any, breach: str) -> None:
    path = REPO_ROOT / "experiments" / "pod-kill.yaml"
    experiment = _load(path)
    for probe in experiment["steady-state-hypothesis"]["probes"][1:]:
        probe.pop("tolerance", None)
    assert contract_breaches(experiment, path.read_text()) == []
    change(experiment)
    text = yaml.safe_dump(experiment)
    assert any(breach in line for line in contract_breaches(experiment, text))
