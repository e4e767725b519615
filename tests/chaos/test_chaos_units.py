"""The chaos extension's pure decisions, as tables."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution

from resilience.chaos.blast_radius import enforce_budget
from resilience.chaos.controls.journal import REDACTED, journal_file, scrub
from resilience.chaos.nodes import evictable
from resilience.chaos.pods import choose_per_zone
from resilience.chaos.runner import missing_environment, parse_variables, undeclared
from resilience.chaos.verdict import failures
from resilience.errors import InvalidInputError
from resilience.safety import undo_journal

MET = {"steady_state_met": True, "probes": []}


def unmet(name: str, output: Any) -> dict[str, Any]:
    return {
        "steady_state_met": False,
        "probes": [{"activity": {"name": name}, "output": output, "tolerance_met": False}],
    }


def journal(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": MET, "during": [MET], "after": MET},
        "run": [{"activity": {"name": "kill"}, "status": "succeeded"}],
        "rollbacks": [],
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        pytest.param(journal(), [], id="clean"),
        pytest.param(journal(status="interrupted"), ["run interrupted"], id="interrupted"),
        pytest.param(
            journal(
                status="interrupted", safeguard={"triggered_by": "fault-window error ratio 0.4"}
            ),
            ["run interrupted", "safeguard stopped the method: fault-window error ratio 0.4"],
            id="safeguard",
        ),
        pytest.param(
            journal(
                steady_states={
                    "before": MET,
                    "during": [MET, unmet("answers", False)],
                    "after": MET,
                }
            ),
            ["steady state deviated during the method (check 2): answers = False"],
            id="deviated-during-only",
        ),
        pytest.param(
            journal(
                deviated=True,
                steady_states={"before": MET, "during": [], "after": unmet("floor", 1)},
            ),
            ["steady state deviated after the method: floor = 1"],
            id="deviated-after",
        ),
        pytest.param(
            journal(
                run=[
                    {
                        "activity": {"name": "drain"},
                        "status": "failed",
                        "exception": ["Trace", "ActivityFailed: 2 pods left\n"],
                    }
                ]
            ),
            ["activity 'drain' failed: ActivityFailed: 2 pods left"],
            id="failed-action-exit-0-upstream",
        ),
        pytest.param(
            journal(
                rollbacks=[
                    {"activity": {"name": "uncordon"}, "status": "failed", "exception": "boom"}
                ]
            ),
            ["rollback 'uncordon' failed: boom"],
            id="failed-rollback",
        ),
        pytest.param(
            journal(
                status="failed",
                steady_states={"before": unmet("answers", False), "during": [], "after": None},
            ),
            ["run failed", "steady state not met before the method: answers = False"],
            id="baseline-not-met",
        ),
    ],
)
def test_verdict(run: dict[str, Any], expected: list[str]) -> None:
    assert failures(run) == expected


def test_undeclared_and_missing_variables() -> None:
    experiment = {"configuration": {"zone": "a", "url": {"type": "env", "key": "HF_TEST_URL"}}}
    assert undeclared(experiment, {"zone": "b", "zoen": "c"}) == ["zoen"]
    assert missing_environment(experiment, {}, {}) == ["url (environment variable HF_TEST_URL)"]
    assert missing_environment(experiment, {"url": "http://x"}, {}) == []
    assert missing_environment(experiment, {}, {"HF_TEST_URL": "x"}) == []
    with_default = {"configuration": {"r": {"type": "env", "key": "NOPE", "default": "us-west-2"}}}
    assert missing_environment(with_default, {}, {}) == []


@pytest.mark.parametrize("pair", ["novalue", "=x", ""])
def test_malformed_var_is_named(pair: str) -> None:
    with pytest.raises(InvalidInputError, match="expected KEY=VALUE"):
        parse_variables([pair])


def test_recovery_journal_round_trip_and_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "recovery.jsonl"
    first = undo_journal.record("uncordon", {"nodes": ["a"], "zone": "z"}, path)
    second = undo_journal.record("start-instances", {"instance_ids": ["i-1"]}, path)
    undo_journal.mark_done(first, path)
    with path.open("a") as torn:
        torn.write('{"undo": "half')
    assert [u.id for u in undo_journal.pending(undo_journal.read(path))] == [second]
    assert undo_journal.read(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize(
    ("declared", "planned", "refused"),
    [(None, 10, False), (1, 1, False), (1, 2, True), (0, 0, False), (0, 1, True)],
)
def test_blast_radius(declared: int | None, planned: int, refused: bool) -> None:
    configuration = {} if declared is None else {"max_disrupted_pods": declared}
    if refused:
        with pytest.raises(
            InterruptExecution,
            match=f"would disrupt {planned} pods at once, more than the budget of {declared}",
        ):
            enforce_budget(configuration, planned, "drain")
    else:
        enforce_budget(configuration, planned, "drain")


def pod(
    *,
    owner: str = "ReplicaSet",
    phase: str = "Running",
    mirror: bool = False,
    deleting: bool = False,
) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            owner_references=[SimpleNamespace(kind=owner)],
            annotations={"kubernetes.io/config.mirror": "x"} if mirror else {},
            deletion_timestamp="now" if deleting else None,
        ),
        status=SimpleNamespace(phase=phase),
    )


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        pytest.param(pod(), True, id="replicaset-pod"),
        pytest.param(pod(owner="DaemonSet"), False, id="daemonset"),
        pytest.param(pod(mirror=True), False, id="mirror"),
        pytest.param(pod(phase="Succeeded"), False, id="finished"),
        pytest.param(pod(deleting=True), False, id="terminating"),
    ],
)
def test_what_a_drain_evicts(candidate: Any, expected: bool) -> None:
    assert evictable(candidate) is expected


def test_one_pod_per_zone_in_zone_order_and_repeatable() -> None:
    pods = {"us-west-2c": ["c1", "c2"], "us-west-2a": ["a1"], "us-west-2b": []}
    first = choose_per_zone(pods, random.Random(3))
    assert [zone for zone, _ in first] == ["us-west-2a", "us-west-2c"]
    assert first == choose_per_zone(pods, random.Random(3))


def test_journal_scrubbing_and_name(tmp_path: Path) -> None:
    raw = {
        "experiment": {"title": "AZ drain - one zone", "secrets": {"k8s": {"token": "x"}}},
        "start": "2026-11-26T14:00:00.5+00:00",
        "configuration": {"aws_secret_access_key": "x", "zone": "a"},
    }
    clean = scrub(raw)
    assert clean["experiment"]["secrets"] == REDACTED
    assert clean["configuration"] == {"aws_secret_access_key": REDACTED, "zone": "a"}
    assert journal_file(raw, tmp_path).name == "journal-az-drain-one-zone-20261126T140000.json"
