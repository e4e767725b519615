"""The FIS actions of the chaos extension, against the sandbox's AWS endpoint with the
recording fake: the template aimed at a zone, reused, the stop journaled first, and
the rollback and `resilience recover` stopping what still runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from chaoslib.exceptions import ActivityFailed

from resilience.chaos import fis as fis_actions
from resilience.chaos.undo import recover
from resilience.safety import undo_journal
from sandbox.aws.endpoint import AwsEndpoint
from tests.aws.clients import exports_for
from tests.aws.fakes import NODES, RecordingEffects
from tests.builders import REPO_ROOT

TEMPLATE = REPO_ROOT / "experiments" / "fis" / "az-power-interruption.json"
ZONE_A = tuple(n.instance_id for n in NODES if n.zone == "us-west-2a")


@pytest.fixture
def endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[AwsEndpoint, RecordingEffects]]:
    effects = RecordingEffects()
    server = AwsEndpoint(effects)
    server.start()
    try:
        for name, value in exports_for(server.url).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(undo_journal.ENV_VAR, str(tmp_path / "recovery.jsonl"))
        monkeypatch.setattr(fis_actions, "POLL_SECONDS", 0.1)
        yield server, effects
    finally:
        server.stop()


def test_for_zone_aims_every_zone_and_duration() -> None:
    template = json.loads(TEMPLATE.read_text())
    aimed = fis_actions.for_zone(template, "us-west-2a", "PT5S")
    targets = aimed["targets"]
    assert targets["IAM-Instances"]["filters"] == [
        {"path": "State.Name", "values": ["running"]},
        {"path": "Placement.AvailabilityZone", "values": ["us-west-2a"]},
    ]
    assert targets["RDS-Instances"]["filters"] == [
        {"path": "AvailabilityZone", "values": ["us-west-2a"]}
    ]
    assert targets["ElastiCache-Groups"]["parameters"] == {
        "availabilityZoneIdentifier": "us-west-2a"
    }
    parameters = {n: a.get("parameters", {}) for n, a in aimed["actions"].items()}
    assert parameters["Stop-Instances"] == {"startInstancesAfterDuration": "PT5S"}
    assert parameters["Pause-ElastiCache"] == {"duration": "PT5S"}
    assert parameters["Pause-Network-Connectivity"] == {"duration": "PT2M", "scope": "all"}, (
        "the network keeps the scenario's own 2 minutes"
    )
    assert targets["Subnet"]["filters"] == [{"path": "AvailabilityZone", "values": ["us-west-2a"]}]
    network = fis_actions.for_zone(template, "us-west-2a", "PT5S", "PT1S")["actions"]
    assert network["Pause-Network-Connectivity"]["parameters"]["duration"] == "PT1S"
    assert parameters["Reboot-RDS"] == {"forceFailover": "true"}
    assert template["actions"]["Stop-Instances"]["parameters"] == {
        "startInstancesAfterDuration": "PT30M"
    }, "the file's template is left as it was"
    assert fis_actions.for_zone(template, "us-west-2c", None)["actions"] == template["actions"]


def test_the_scenario_runs_on_the_zone_and_its_template_is_reused(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    result = fis_actions.run_fis_experiment(
        str(TEMPLATE), "us-west-2a", "PT1S", timeout=30, network_duration="PT1S"
    )
    assert result["state"]["status"] == "completed"
    assert result["actions"]["Failover-RDS"]["status"] == "skipped", "the sandbox has no cluster"
    started = {"power_off", "cut_zone", "reboot_db", "interrupt_cache_zone"}
    assert sorted(effects.calls[:4]) == sorted(
        [
            ("power_off", ZONE_A),
            ("cut_zone", ("us-west-2a",)),
            ("reboot_db", ("harmonyflow-db", "True")),
            ("interrupt_cache_zone", ("harmonyflow-redis", "0001", "0002", "0003")),
        ]
    ), "the actions start together (no startAfter)"
    assert {name for name, _ in effects.calls[:4]} == started
    assert sorted(effects.calls[4:]) == [("power_on", ZONE_A), ("restore_zone", ("us-west-2a",))]
    assert undo_journal.pending(undo_journal.read()) == []
    again = fis_actions.run_fis_experiment(
        str(TEMPLATE), "us-west-2a", "PT1S", timeout=30, network_duration="PT1S"
    )
    assert again["template_id"] == result["template_id"]
    other = fis_actions.run_fis_experiment(
        str(TEMPLATE), "us-west-2b", "PT1S", timeout=30, network_duration="PT1S"
    )
    assert other["template_id"] != result["template_id"], "another zone, another template"
    assert len(server.client("fis").list_experiment_templates()["experimentTemplates"]) == 2


def test_a_run_cut_short_is_stopped_by_the_rollback(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    _, effects = endpoint
    with pytest.raises(ActivityFailed, match="not reached"):
        fis_actions.run_fis_experiment(str(TEMPLATE), "us-west-2a", "PT30M", timeout=2)
    [undo] = undo_journal.pending(undo_journal.read())
    assert undo.kind == "stop-fis-experiment"
    assert ("power_on", ZONE_A) not in effects.calls
    stopped = fis_actions.stop_fis_experiments(timeout=30)
    assert len(stopped["stopped"]) == 1
    assert {("power_on", ZONE_A), ("restore_zone", ("us-west-2a",))} <= set(effects.calls[-2:])
    assert undo_journal.pending(undo_journal.read()) == []
    assert fis_actions.stop_fis_experiments(timeout=30) == {"stopped": []}


def test_resilience_recover_stops_it_after_a_kill(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    _, effects = endpoint
    with pytest.raises(ActivityFailed):
        fis_actions.run_fis_experiment(str(TEMPLATE), "us-west-2a", "PT30M", timeout=2)
    [line] = recover()
    assert line.startswith("FIS experiments stopped: ")
    assert {("power_on", ZONE_A), ("restore_zone", ("us-west-2a",))} <= set(effects.calls[-2:])
    assert recover() == ["nothing to recover"]


def test_a_failed_experiment_fails_the_action_with_its_reason(
    endpoint: tuple[AwsEndpoint, RecordingEffects], tmp_path: Path
) -> None:
    template: dict[str, Any] = json.loads(TEMPLATE.read_text())
    template["actions"]["Pause-Network-Connectivity"]["parameters"]["scope"] = "s3"
    path = tmp_path / "with-s3.json"
    path.write_text(json.dumps(template))
    with pytest.raises(ActivityFailed, match="disrupt-connectivity with scope all or"):
        fis_actions.run_fis_experiment(str(path), "us-west-2a", "PT1S", timeout=30)
    assert undo_journal.pending(undo_journal.read()) == []


def test_the_template_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A game day runs its experiments from its run directory; theirs say
    `experiments/fis/...`, relative to the project."""
    monkeypatch.chdir(tmp_path)
    relative = "experiments/fis/az-power-interruption.json"
    assert fis_actions.template_path(relative) == TEMPLATE
    (tmp_path / "mine.json").write_text("{}")
    assert fis_actions.template_path("mine.json") == Path("mine.json")


def test_the_template_validates_against_botocores_fis_model() -> None:
    """What `aws fis create-experiment-template --cli-input-json` would send: botocore's own
    model of CreateExperimentTemplate finds no missing, unknown or mistyped field."""
    model = botocore.session.get_session().get_service_model("fis")
    shape = model.operation_model("CreateExperimentTemplate").input_shape
    template = json.loads(TEMPLATE.read_text())
    report = ParamValidator().validate({**template, "clientToken": "t"}, shape)
    assert not report.has_errors(), report.generate_report()
