"""The plan schema: every mistake is one line naming the file and field; the CLI exits 2."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from resilience.errors import InvalidInputError
from resilience.gameday.plan import DEFAULT_PLAN, EXPERIMENTS_DIR, Experiment, load_plan, parse_plan
from tests.builders import REPO_ROOT
from tests.cli import run_resilience

KNOWN = {
    "pod-kill": Experiment(
        "pod-kill", Path("/e/pod-kill.yaml"), ("load_profile", "recovery_timeout", "seed")
    ),
    "rds-failover": Experiment("rds-failover", Path("/e/rds-failover.yaml"), ("recovery_timeout",)),
}


def plan(**fields: Any) -> dict[str, Any]:
    return {"name": "p", "steps": [{"experiment": "pod-kill"}], **fields}


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("not a mapping", ["pod-kill"], "p.yaml: a plan is a mapping"),
        (
            "no name",
            {"steps": [{"experiment": "pod-kill"}]},
            "p.yaml: name: expected a lowercase slug",
        ),
        ("bad name", plan(name="Standard Day"), "name: expected a lowercase slug"),
        ("unknown field", plan(stpes=[]), "p.yaml: stpes: unknown field"),
        ("no steps", plan(steps=[]), "steps: expected a non-empty list"),
        ("steps not a list", plan(steps="pod-kill"), "steps: expected a non-empty list"),
        (
            "negative pause",
            plan(pause_seconds=-1),
            "pause_seconds: expected a number of seconds >= 0",
        ),
        ("zero timeout", plan(steady_state_timeout=0), "steady_state_timeout: expected a positive"),
        ("bool seconds", plan(warmup_seconds=True), "warmup_seconds: expected"),
        ("bad profile", plan(load_profile=3), "load_profile: expected a profile name"),
        (
            "unknown experiment",
            plan(steps=[{"experiment": "pod-kil"}]),
            "steps[0].experiment: unknown experiment 'pod-kil' (known: pod-kill, rds-failover)",
        ),
        ("step not a mapping", plan(steps=[3]), "steps[0]: expected a mapping"),
        (
            "unknown step field",
            plan(steps=[{"experiment": "pod-kill", "var": {}}]),
            "steps[0].var: unknown field",
        ),
        (
            "undeclared var",
            plan(steps=[{"experiment": "rds-failover", "vars": {"zone": "a"}}]),
            "steps[0].vars.zone: not declared by rds-failover.yaml (declared: recovery_timeout)",
        ),
        (
            "vars not a mapping",
            plan(steps=[{"experiment": "pod-kill", "vars": ["a"]}]),
            "steps[0].vars: expected a mapping",
        ),
        (
            "nested var",
            plan(steps=[{"experiment": "pod-kill", "vars": {"seed": [1]}}]),
            "steps[0].vars.seed: expected a number, word or bool",
        ),
        (
            "duplicate steps",
            plan(steps=["pod-kill", "pod-kill"]),
            "steps[1].name: 'pod-kill' is used twice",
        ),
        (
            "bad optional",
            plan(steps=[{"experiment": "pod-kill", "optional": "yes"}]),
            "steps[0].optional: expected true or false",
        ),
        (
            "negative step timeout",
            plan(steps=[{"experiment": "pod-kill", "timeout": -5}]),
            "steps[0].timeout: expected a positive number",
        ),
    ],
)
def test_plan_mistakes_are_one_line(name: str, data: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        parse_plan(data, "p.yaml", KNOWN)
    assert message in str(error.value), name
    assert "\n" not in str(error.value)


def test_a_valid_plan() -> None:
    parsed = parse_plan(
        plan(
            steps=[
                "pod-kill",
                {
                    "experiment": "pod-kill",
                    "name": "pod-kill-again",
                    "vars": {"seed": 3, "load_profile": "chaos"},
                },
                {"experiment": "rds-failover", "timeout": 90, "recovery_budget_seconds": 30},
                {"experiment": "hpa-surge", "optional": True},
            ],
            pause_seconds=0,
        ),
        "p.yaml",
        KNOWN,
    )
    assert [(s.name, dict(s.variables), s.timeout, s.skipped) for s in parsed.steps] == [
        ("pod-kill", {"load_profile": "external"}, 600.0, False),
        ("pod-kill-again", {"load_profile": "chaos", "seed": "3"}, 600.0, False),
        ("rds-failover", {}, 90.0, False),  # declares no load_profile: nothing to pass
        ("hpa-surge", {}, 600.0, True),
    ]
    assert parsed.steps[2].recovery_budget == 30.0
    assert parsed.bound_seconds() == 20.0 + (600 + 120) * 2 + (90 + 120)


def test_the_standard_plan_is_valid_and_in_order() -> None:
    standard = load_plan(DEFAULT_PLAN)
    assert [s.experiment for s in standard.steps] == [
        "pod-kill",
        "rolling-update",
        "az-drain",
        "rds-failover",
        "redis-failover",
        "dependency-latency",
        "broker-node-loss",
        "hpa-surge",
        "az-power-interruption",
    ]
    for step in standard.steps:
        assert step.path is not None and step.path.parent == EXPERIMENTS_DIR


def test_an_experiment_given_as_a_path(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("title: t\nconfiguration: {load_profile: chaos, x: 1}\n")
    parsed = parse_plan(
        plan(steps=[{"experiment": "mine.yaml", "vars": {"x": 2}}]), "p.yaml", {}, tmp_path
    )
    assert parsed.steps[0].path == (tmp_path / "mine.yaml").resolve()
    assert dict(parsed.steps[0].variables) == {"load_profile": "external", "x": "2"}


def gameday(*args: str, cwd: Path = REPO_ROOT, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARMONYFLOW_SANDBOX_DIR": "/nonexistent-sandbox", **extra}
    return run_resilience("gameday", "--plain", *args, env=env, cwd=cwd)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "malformed.yaml").write_text("name: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("name: x\nsteps: [{experiment: pod-kil}]\n")
    (tmp_path / "profile.yaml").write_text("name: x\nload_profile: nope\nsteps: [pod-kill]\n")
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    cases = [
        (["--plan", str(tmp_path / "malformed.yaml")], "malformed.yaml: not valid YAML"),
        (["--plan", str(tmp_path / "unknown.yaml")], "unknown experiment 'pod-kil'"),
        (["--plan", str(tmp_path / "missing.yaml")], "missing.yaml: no such plan file"),
        (["--plan", str(tmp_path / "profile.yaml")], "no profile 'nope'"),
        (["--reports-dir", str(blocked / "reports")], "cannot write there"),
        (["--notify", "slack:ftp://x"], "expected an http(s) URL"),
        (["--load-workers", "2"], "--load-workers needs --load-on-cluster"),
        (["--load-on-cluster", "--load-workers", "0"], "--load-workers must be at least 1"),
    ]
    for args, message in cases:
        done = gameday(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def kubeconfig(path: Path, context: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
        f"contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]\n"
        f"current-context: {context}\n"
    )
    return path


def test_a_production_context_is_refused_before_anything_runs(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", "prod-eks")
    done = gameday(
        "--kube-context",
        "prod-eks",
        "--reports-dir",
        str(tmp_path / "reports"),
        KUBECONFIG=str(config),
        HARMONYFLOW_INGRESS_URL="https://127.0.0.1:9",
    )
    assert done.returncode == 2, done.stderr
    assert "--allow-production prod-eks" in done.stderr
    assert list((tmp_path / "reports").glob("*")) == []


def test_a_context_needs_the_ingress_url(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", "staging")
    env = {k: v for k, v in os.environ.items() if k != "HARMONYFLOW_INGRESS_URL"}
    done = run_resilience(
        *("gameday", "--plain", "--kube-context", "staging"),
        *("--reports-dir", str(tmp_path / "reports")),
        env={**env, "KUBECONFIG": str(config)},
    )
    assert done.returncode == 2, done.stderr
    assert "set HARMONYFLOW_INGRESS_URL" in done.stderr


@pytest.mark.parametrize(
    ("stops", "outcome"),
    [
        (["SessionStateHighErrorRate"], ("SessionStateHighErrorRate",)),
        ([], ()),
        ("SessionStateHighErrorRate", "steps[0].stop_conditions: expected a list of alert names"),
        (["NoSuchAlert"], "steps[0].stop_conditions[0]: no alert 'NoSuchAlert'"),
    ],
)
def test_a_step_s_stop_conditions(stops: Any, outcome: Any) -> None:
    """A step names alerts that stop its fault; each must be one of the suite's rules, and
    they reach the step's `resilience chaos run` as `--stop-on-alert`."""
    from resilience.gameday.steps import chaos_command  # noqa: PLC0415

    data = {"name": "p", "steps": [{"experiment": "pod-kill", "stop_conditions": stops}]}
    if isinstance(outcome, str):
        with pytest.raises(InvalidInputError, match=re.escape(outcome)):
            parse_plan(data, "p.yaml", KNOWN)
        return
    step = parse_plan(data, "p.yaml", KNOWN).steps[0]
    assert step.stop_conditions == outcome
    command = chaos_command(Path("e.yaml"), {}, Path("j.json"), None, None, step.stop_conditions)
    flags = [part for alert in outcome for part in ("--stop-on-alert", alert)]
    assert command[len(command) - len(flags) :] == flags
    assert command.count("--stop-on-alert") == len(outcome)
