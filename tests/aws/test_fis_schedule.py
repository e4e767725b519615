"""FIS as the sandbox runs it, as tables: durations, template checks, targets, the schedule."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from sandbox.aws import fis
from sandbox.aws.fis import ActionPlan, Command, Resource


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1S", 1.0),
        ("PT2M", 120.0),
        ("PT30M", 1800.0),
        ("PT1H30M", 5400.0),
        ("P1D", 86400.0),
        ("P1DT1S", 86401.0),
        ("PT0.5S", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert fis.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "2M", "PT2", "PT-1S", "P1DT", "PT2m", "30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(fis.FisValidation, match="ISO 8601"):
        fis.duration_seconds(text)


INSTANCES = {
    "resourceType": "aws:ec2:instance",
    "resourceTags": {"AzImpairmentPower": "StopInstances"},
    "selectionMode": "ALL",
}
DB = {"resourceType": "aws:rds:db", "resourceTags": {"k": "v"}, "selectionMode": "ALL"}
NONE = [{"source": "none"}]


def stop(**extra: Any) -> dict[str, Any]:
    return {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "I"}, **extra}


def wait(duration: str = "PT1S", **extra: Any) -> dict[str, Any]:
    return {"actionId": "aws:fis:wait", "parameters": {"duration": duration}, **extra}


@pytest.mark.parametrize(
    ("actions", "targets", "stop_conditions", "fragment"),
    [
        pytest.param({"s": stop()}, {"I": INSTANCES}, NONE, None, id="valid"),
        pytest.param(
            {"a": wait(), "b": wait(startAfter=["a"])}, {}, NONE, None, id="start-after-valid"
        ),
        pytest.param({}, {}, NONE, "at least one action", id="no-action"),
        pytest.param({"a": wait()}, {}, [], "stopConditions is required", id="no-stop-condition"),
        pytest.param(
            {"a": wait()},
            {},
            [{"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-west-2:1:alarm:x"}],
            None,
            id="alarm-condition",
        ),
        pytest.param(
            {"a": wait()},
            {},
            [{"source": "aws:cloudwatch:alarm", "value": "my-alarm"}],
            "alarm's ARN",
            id="alarm-not-an-arn",
        ),
        pytest.param({"a": wait()}, {}, [{"source": "sms"}], "not valid", id="bad-source"),
        pytest.param(
            {"a": {"actionId": "aws:ec2:melt-instances"}}, {}, NONE, "not a valid", id="unknown"
        ),
        pytest.param({"a": wait(startAfter=["z"])}, {}, NONE, "unknown action", id="after-unknown"),
        pytest.param(
            {"a": wait(startAfter=["b"]), "b": wait(startAfter=["a"])},
            {},
            NONE,
            "cycle",
            id="cycle",
        ),
        pytest.param({"a": wait(startAfter=["a"])}, {}, NONE, "cycle", id="self-cycle"),
        pytest.param({"a": wait("2 minutes")}, {}, NONE, "ISO 8601", id="bad-duration"),
        pytest.param(
            {"s": stop(parameters={"startInstancesAfterDuration": "PT2"})},
            {"I": INSTANCES},
            NONE,
            "startInstancesAfterDuration",
            id="bad-start-after-duration",
        ),
        pytest.param({"s": stop()}, {}, NONE, "not defined", id="target-undefined"),
        pytest.param(
            {"s": {"actionId": "aws:ec2:stop-instances", "targets": {"DBInstances": "I"}}},
            {"I": INSTANCES},
            NONE,
            "target key Instances",
            id="wrong-target-key",
        ),
        pytest.param({"s": stop()}, {"I": DB}, NONE, "needs aws:ec2:instance", id="wrong-type"),
        pytest.param(
            {"s": stop()},
            {"I": {**INSTANCES, "selectionMode": "SOME"}},
            NONE,
            "selectionMode",
            id="bad-selection",
        ),
        pytest.param(
            {"s": stop()},
            {"I": {"resourceType": "aws:ec2:instance", "selectionMode": "ALL"}},
            NONE,
            "must select",
            id="selects-nothing",
        ),
        pytest.param(
            {"s": stop()},
            {"I": {**INSTANCES, "resourceArns": ["arn:aws:ec2:us-west-2:1:instance/i-1"]}},
            NONE,
            "cannot be combined",
            id="arns-and-tags",
        ),
        pytest.param(
            {
                "n": {
                    "actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"duration": "PT2M"},
                    "targets": {"Subnets": "S"},
                }
            },
            {
                "S": {
                    "resourceType": "aws:ec2:subnet",
                    "resourceTags": {"k": "v"},
                    "selectionMode": "ALL",
                }
            },
            NONE,
            None,
            id="valid-network",
        ),
        pytest.param(
            {"n": {"actionId": "aws:network:disrupt-connectivity", "targets": {"Subnets": "S"}}},
            {
                "S": {
                    "resourceType": "aws:ec2:subnet",
                    "resourceTags": {"k": "v"},
                    "selectionMode": "ALL",
                }
            },
            NONE,
            "needs the parameter duration",
            id="network-without-duration",
        ),
        pytest.param(
            {"n": {"actionId": "aws:ebs:pause-volume-io", "targets": {"Volumes": "V"}}},
            {
                "V": {
                    "resourceType": "aws:ec2:ebs-volume",
                    "resourceTags": {"k": "v"},
                    "selectionMode": "ALL",
                }
            },
            NONE,
            None,
            id="valid-not-emulated",
        ),
    ],
)
def test_check_template(
    actions: dict[str, Any],
    targets: dict[str, Any],
    stop_conditions: list[dict[str, Any]],
    fragment: str | None,
) -> None:
    if fragment is None:
        fis.check_template(actions, targets, stop_conditions)
    else:
        with pytest.raises(fis.FisValidation, match=fragment):
            fis.check_template(actions, targets, stop_conditions)


def arn(name: str) -> str:
    return f"arn:aws:ec2:us-west-2:123456789012:instance/{name}"


CANDIDATES = [
    Resource(
        arn(f"i-{zone}{n}"),
        {"AzImpairmentPower": "StopInstances" if n < 2 else "Other"},
        {"Placement": {"AvailabilityZone": f"us-west-2{zone}"}, "State": {"Name": "running"}},
    )
    for zone in "abc"
    for n in range(3)
]


@pytest.mark.parametrize(
    ("target", "chosen"),
    [
        pytest.param(INSTANCES, ["i-a0", "i-a1", "i-b0", "i-b1", "i-c0", "i-c1"], id="by-tag"),
        pytest.param(
            {
                **INSTANCES,
                "filters": [
                    {"path": "Placement.AvailabilityZone", "values": ["us-west-2c"]},
                    {"path": "State.Name", "values": ["running"]},
                ],
            },
            ["i-c0", "i-c1"],
            id="tag-and-zone",
        ),
        pytest.param(
            {**INSTANCES, "filters": [{"path": "State.Name", "values": ["stopped"]}]},
            [],
            id="none-stopped",
        ),
        pytest.param(
            {**INSTANCES, "filters": [{"path": "No.Such.Path", "values": ["x"]}]},
            [],
            id="missing-path",
        ),
        pytest.param(
            {"resourceArns": [arn("i-b2"), arn("i-zz")], "selectionMode": "ALL"},
            ["i-b2"],
            id="by-arn",
        ),
        pytest.param({**INSTANCES, "selectionMode": "COUNT(2)"}, ["i-a0", "i-a1"], id="count"),
        pytest.param(
            {**INSTANCES, "selectionMode": "PERCENT(50)"}, ["i-a0", "i-a1", "i-b0"], id="percent"
        ),
        pytest.param({**INSTANCES, "selectionMode": "PERCENT(1)"}, ["i-a0"], id="percent-ceil"),
    ],
)
def test_select(target: dict[str, Any], chosen: list[str]) -> None:
    assert fis.select(target, CANDIDATES) == tuple(arn(c) for c in chosen)


# -- the schedule ------------------------------------------------------------------------

PLANS = (
    ActionPlan("wait", "aws:fis:wait", (), 2.0),
    ActionPlan("stop", "aws:ec2:stop-instances", ("wait",), 5.0),
    ActionPlan("reboot", "aws:rds:reboot-db-instances", ("wait",), 0.0),
    ActionPlan("cache", "aws:elasticache:replicationgroup-interrupt-az-power", ("stop", "reboot")),
)


def statuses(run: fis.Run) -> dict[str, str]:
    return {name: state.status for name, state in run.actions.items()}


def test_actions_start_after_what_they_name_and_last_their_duration() -> None:
    run = fis.begin(PLANS)
    assert (run.status, set(statuses(run).values())) == ("initiating", {"pending"})
    run, commands = fis.advance(PLANS, run, 0.0)
    assert (run.status, commands) == ("running", (Command("start", "wait"),))
    assert fis.advance(PLANS, run, 0.5)[1] == (), "a start is not asked for twice"
    run = fis.started(PLANS, run, "wait", "ok", "", 0.0)
    run, commands = fis.advance(PLANS, run, 1.9)
    assert commands == () and statuses(run)["wait"] == "running"
    run, commands = fis.advance(PLANS, run, 2.0)
    assert commands == (Command("undo", "wait"),)
    assert fis.advance(PLANS, run, 2.1)[1] == (), "an undo is not asked for twice"
    run = fis.ended(run, "wait", None, 2.0)
    run, commands = fis.advance(PLANS, run, 2.0)
    assert commands == (Command("start", "stop"), Command("start", "reboot"))
    run = fis.started(PLANS, run, "stop", "ok", "", 2.0)
    run = fis.started(PLANS, run, "reboot", "ok", "", 2.0)
    assert statuses(run) == {
        "wait": "completed",
        "stop": "running",
        "reboot": "completed",  # no duration: done when it has acted
        "cache": "pending",
    }
    run, commands = fis.advance(PLANS, run, 6.9)
    assert commands == ()
    run, commands = fis.advance(PLANS, run, 7.0)
    assert commands == (Command("undo", "stop"),)
    run = fis.ended(run, "stop", None, 7.0)
    run, commands = fis.advance(PLANS, run, 7.0)
    assert commands == (Command("start", "cache"),)
    run = fis.started(PLANS, run, "cache", "ok", "", 7.0)
    run, commands = fis.advance(PLANS, run, 7.1)
    assert (run.status, run.reason, run.ended) == ("completed", "Experiment completed.", 7.1)
    assert fis.advance(PLANS, run, 9.0) == (run, ())


def test_a_skipped_action_lets_the_next_start() -> None:
    plans = (
        ActionPlan("a", "aws:rds:failover-db-cluster"),
        ActionPlan("b", "aws:fis:wait", ("a",)),
    )
    run, _ = fis.advance(plans, fis.begin(plans), 0.0)
    run = fis.started(plans, run, "a", "skipped", "Target C resolved no resource", 0.0)
    run, commands = fis.advance(plans, run, 0.1)
    assert commands == (Command("start", "b"),)
    assert run.actions["a"].reason == "Target C resolved no resource"


def running(plans: tuple[ActionPlan, ...] = PLANS) -> fis.Run:
    run, _ = fis.advance(plans, fis.begin(plans), 0.0)
    run = fis.started(plans, run, "wait", "ok", "", 0.0)
    run, _ = fis.advance(plans, run, 2.0)  # asks for the wait's undo
    run = fis.ended(run, "wait", None, 2.0)
    run, _ = fis.advance(plans, run, 2.0)
    run = fis.started(plans, run, "stop", "ok", "", 2.0)
    return fis.started(plans, run, "reboot", "ok", "", 2.0)


def test_stop_undoes_what_runs_and_cancels_what_waits() -> None:
    run = fis.stop_requested(running())
    assert (run.status, run.reason) == ("stopping", "Experiment is stopping.")
    run, commands = fis.advance(PLANS, run, 3.0)
    assert commands == (Command("undo", "stop"),)
    assert statuses(run) == {
        "wait": "completed",
        "stop": "stopping",
        "reboot": "completed",
        "cache": "cancelled",
    }
    run, commands = fis.advance(PLANS, run, 3.1)
    assert (run.status, commands) == ("stopping", ()), "stopped only once the undo is done"
    run = fis.ended(run, "stop", None, 3.2)
    run, _ = fis.advance(PLANS, run, 3.2)
    assert (run.status, run.reason, statuses(run)["stop"]) == (
        "stopped",
        "Experiment stopped.",
        "stopped",
    )
    assert fis.stop_requested(run) == run, "a finished experiment stays as it is"


def test_stop_while_an_action_starts_undoes_it_once_started() -> None:
    run, _ = fis.advance(PLANS, fis.begin(PLANS), 0.0)
    run = fis.stop_requested(run)
    run, commands = fis.advance(PLANS, run, 0.1)
    assert run.status == "stopping" and commands == ()
    run = fis.started(PLANS, run, "wait", "ok", "", 0.2)
    run, commands = fis.advance(PLANS, run, 0.3)
    assert commands == (Command("undo", "wait"),)


@pytest.mark.parametrize(
    ("failing", "how"),
    [("reboot", "start"), ("stop", "undo")],
)
def test_a_failed_action_fails_the_experiment_after_undoing_the_rest(
    failing: str, how: str
) -> None:
    run = running()
    if how == "start":
        run = fis.started(PLANS, run, "reboot", "failed", "InvalidDBInstanceState: busy", 2.0)
        expected = "Action reboot failed: InvalidDBInstanceState: busy"
    else:
        run, _ = fis.advance(PLANS, run, 7.0)
        run = fis.ended(run, "stop", "IncorrectInstanceState: no", 7.0)
        expected = "Action stop failed: undoing it failed: IncorrectInstanceState: no"
    assert run.status == "stopping"
    run, commands = fis.advance(PLANS, run, 8.0)
    if failing == "reboot":
        assert commands == (Command("undo", "stop"),)
        run = fis.ended(run, "stop", None, 8.0)
        run, _ = fis.advance(PLANS, run, 8.0)
    assert (run.status, run.reason) == ("failed", expected)
    assert statuses(run)["cache"] == "cancelled"
    assert statuses(run)[failing] == "failed"


def test_plans_of_reads_durations_and_start_after() -> None:
    plans = fis.plans_of(
        {
            "s": stop(parameters={"startInstancesAfterDuration": "PT2M"}),
            "r": {
                "actionId": "aws:rds:reboot-db-instances",
                "parameters": {"forceFailover": "true"},
            },
            "w": wait("PT1S", startAfter=["s", "r"]),
        }
    )
    assert plans == (
        ActionPlan("s", "aws:ec2:stop-instances", (), 120.0),
        ActionPlan("r", "aws:rds:reboot-db-instances", (), 0.0),
        ActionPlan("w", "aws:fis:wait", ("s", "r"), 1.0),
    )


def test_doctests() -> None:
    assert doctest.testmod(fis).failed == 0
