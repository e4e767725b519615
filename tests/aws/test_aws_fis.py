"""FIS on the sandbox's AWS endpoint, through boto3, against the recording fake.

The experiments really run (a runner thread on the endpoint): these check the
states they go through, the effects their actions call and in which order, what a
stop undoes, and FIS's error shapes. Durations are a second or two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest

from sandbox.aws.endpoint import AwsEndpoint
from sandbox.aws.inventory import ACCOUNT_ID, REGION
from tests.aws.fakes import NODES, RecordingEffects

ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/fis"
NONE = [{"source": "none"}]
ZONE_C = [n.instance_id for n in NODES if n.zone == "us-west-2c"]
INSTANCES_IN_C = {
    "resourceType": "aws:ec2:instance",
    "resourceTags": {"AzImpairmentPower": "StopInstances"},
    "filters": [
        {"path": "State.Name", "values": ["running"]},
        {"path": "Placement.AvailabilityZone", "values": ["us-west-2c"]},
    ],
    "selectionMode": "ALL",
}
DB = {
    "resourceType": "aws:rds:db",
    "resourceTags": {"AzImpairmentPower": "DisruptRds"},
    "selectionMode": "ALL",
}
CACHE = {
    "resourceType": "aws:elasticache:replicationgroup",
    "resourceTags": {"AzImpairmentPower": "ElasticacheImpact"},
    "parameters": {"availabilityZoneIdentifier": "us-west-2a"},
    "selectionMode": "ALL",
}
SUBNETS_IN_C = {
    "resourceType": "aws:ec2:subnet",
    "resourceTags": {"AzImpairmentPower": "DisruptSubnet"},
    "filters": [{"path": "AvailabilityZone", "values": ["us-west-2c"]}],
    "selectionMode": "ALL",
}
TERMINAL = ("completed", "stopped", "failed")


def template(fis: Any, actions: dict[str, Any], targets: dict[str, Any], **extra: Any) -> str:
    answer = fis.create_experiment_template(
        **{
            "description": "test",
            "roleArn": ROLE,
            "stopConditions": NONE,
            "actions": actions,
            "targets": targets,
            **extra,
        }
    )
    return str(answer["experimentTemplate"]["id"])


def wait_until(
    fis: Any, experiment_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        experiment: dict[str, Any] = fis.get_experiment(id=experiment_id)["experiment"]
        if done(experiment):
            return experiment
        assert time.monotonic() < deadline, experiment
        time.sleep(0.1)


def finished(experiment: dict[str, Any]) -> bool:
    return experiment["state"]["status"] in TERMINAL


def error(call: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_the_scenario_runs_in_start_after_order_for_its_durations(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    fis = server.client("fis")
    template_id = template(
        fis,
        {
            "Wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}},
            "Stop-Instances": {
                "actionId": "aws:ec2:stop-instances",
                "parameters": {"startInstancesAfterDuration": "PT1S"},
                "targets": {"Instances": "Instances"},
                "startAfter": ["Wait"],
            },
            "Reboot-RDS": {
                "actionId": "aws:rds:reboot-db-instances",
                "parameters": {"forceFailover": "true"},
                "targets": {"DBInstances": "DB"},
                "startAfter": ["Stop-Instances"],
            },
            "Pause-ElastiCache": {
                "actionId": "aws:elasticache:replicationgroup-interrupt-az-power",
                "parameters": {"duration": "PT1S"},
                "targets": {"ReplicationGroups": "Cache"},
                "startAfter": ["Reboot-RDS"],
            },
        },
        {"Instances": INSTANCES_IN_C, "DB": DB, "Cache": CACHE},
    )
    started = fis.start_experiment(experimentTemplateId=template_id)["experiment"]
    assert started["state"]["status"] == "initiating"
    assert {a["state"]["status"] for a in started["actions"].values()} == {"pending"}
    seen = {started["state"]["status"]}

    def note(experiment: dict[str, Any]) -> bool:
        seen.add(experiment["state"]["status"])
        return finished(experiment)

    done = wait_until(fis, started["id"], note)
    assert done["state"] == {"status": "completed", "reason": "Experiment completed."}
    assert "running" in seen
    assert effects.calls == [
        ("power_off", tuple(ZONE_C)),
        ("power_on", tuple(ZONE_C)),
        ("reboot_db", ("harmonyflow-db", "True")),
        ("interrupt_cache_zone", ("harmonyflow-redis", "0001", "0002", "0003")),
    ]
    actions = done["actions"]
    assert {a["state"]["status"] for a in actions.values()} == {"completed"}

    def lasted(name: str) -> float:
        return float((actions[name]["endTime"] - actions[name]["startTime"]).total_seconds())

    assert lasted("Wait") >= 1.0 and lasted("Stop-Instances") >= 1.0
    assert lasted("Pause-ElastiCache") >= 1.0
    for before, after in [
        ("Wait", "Stop-Instances"),
        ("Stop-Instances", "Reboot-RDS"),
        ("Reboot-RDS", "Pause-ElastiCache"),
    ]:
        assert actions[after]["startTime"] >= actions[before]["endTime"]
    [summary] = fis.list_experiments()["experiments"]
    assert summary["state"]["status"] == "completed"
    assert done["endTime"]


def test_stop_experiment_undoes_the_stop_and_cancels_what_waits(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    fis, ec2 = server.client("fis"), server.client("ec2")
    template_id = template(
        fis,
        {
            "Stop-Instances": {
                "actionId": "aws:ec2:stop-instances",
                "parameters": {"startInstancesAfterDuration": "PT30M"},
                "targets": {"Instances": "Instances"},
            },
            "Later": {
                "actionId": "aws:fis:wait",
                "parameters": {"duration": "PT1S"},
                "startAfter": ["Stop-Instances"],
            },
        },
        {"Instances": INSTANCES_IN_C},
    )
    experiment_id = fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"]
    wait_until(
        fis,
        experiment_id,
        lambda e: e["actions"]["Stop-Instances"]["state"]["status"] == "running",
    )
    stopped = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}]
    )["Reservations"]
    assert [i["InstanceId"] for r in stopped for i in r["Instances"]] == ZONE_C
    answer = fis.stop_experiment(id=experiment_id)["experiment"]
    assert answer["state"]["status"] == "stopping"
    done = wait_until(fis, experiment_id, finished)
    assert done["state"] == {"status": "stopped", "reason": "Experiment stopped."}
    assert done["actions"]["Stop-Instances"]["state"]["status"] == "stopped"
    assert done["actions"]["Later"]["state"]["status"] == "cancelled"
    assert effects.calls == [("power_off", tuple(ZONE_C)), ("power_on", tuple(ZONE_C))]
    again = fis.stop_experiment(id=experiment_id)["experiment"]
    assert again["state"]["status"] == "stopped", "stopping a stopped experiment changes nothing"


def test_an_action_the_sandbox_cannot_do_fails_the_experiment_and_undoes_the_rest(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    fis = server.client("fis")
    template_id = template(
        fis,
        {
            "Stop-Instances": {
                "actionId": "aws:ec2:stop-instances",
                "parameters": {"startInstancesAfterDuration": "PT30M"},
                "targets": {"Instances": "Instances"},
            },
            "Pause-network-connectivity": {
                "actionId": "aws:network:disrupt-connectivity",
                "parameters": {"duration": "PT2M", "scope": "s3"},
                "targets": {"Subnets": "Subnets"},
            },
        },
        {"Instances": INSTANCES_IN_C, "Subnets": SUBNETS_IN_C},
    )
    experiment_id = fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"]
    done = wait_until(fis, experiment_id, finished)
    assert done["state"]["status"] == "failed"
    assert "Pause-network-connectivity failed" in done["state"]["reason"]
    network = done["actions"]["Pause-network-connectivity"]["state"]
    assert network["status"] == "failed"
    assert "with scope all or availability-zone, not s3" in network["reason"]
    assert done["actions"]["Stop-Instances"]["state"]["status"] == "stopped"
    assert effects.calls == [("power_off", tuple(ZONE_C)), ("power_on", tuple(ZONE_C))]


@pytest.mark.parametrize("scope", ["all", "availability-zone"])
def test_disrupt_connectivity_cuts_the_subnets_zone_off_for_its_duration(
    endpoint: tuple[AwsEndpoint, RecordingEffects], scope: str
) -> None:
    server, effects = endpoint
    fis = server.client("fis")
    template_id = template(
        fis,
        {
            "Pause-network-connectivity": {
                "actionId": "aws:network:disrupt-connectivity",
                "parameters": {"duration": "PT1S", "scope": scope},
                "targets": {"Subnets": "Subnets"},
            }
        },
        {"Subnets": SUBNETS_IN_C},
    )
    started = time.monotonic()
    experiment_id = fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"]
    wait_until(fis, experiment_id, lambda e: bool(effects.calls))
    assert effects.calls == [("cut_zone", ("us-west-2c",))]
    done = wait_until(fis, experiment_id, finished)
    assert time.monotonic() - started >= 1.0
    assert done["state"]["status"] == "completed"
    assert effects.calls == [("cut_zone", ("us-west-2c",)), ("restore_zone", ("us-west-2c",))]


def test_disrupt_connectivity_needs_a_duration(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, _ = endpoint
    fis = server.client("fis")
    code, status, message = error(
        lambda: template(
            fis,
            {
                "Pause": {
                    "actionId": "aws:network:disrupt-connectivity",
                    "parameters": {"scope": "all"},
                    "targets": {"Subnets": "Subnets"},
                }
            },
            {"Subnets": SUBNETS_IN_C},
        )
    )
    assert (code, status) == ("ValidationException", 400)
    assert "needs the parameter duration" in message


@pytest.mark.parametrize(
    ("target", "mode", "status", "fragment"),
    [
        pytest.param(
            {
                "resourceType": "aws:rds:cluster",
                "resourceArns": [f"arn:aws:rds:{REGION}:{ACCOUNT_ID}:db:harmonyflow-db"],
                "selectionMode": "ALL",
            },
            "skip",
            "failed",
            "is a DB instance, not a DB cluster",
            id="db-instance-named",
        ),
        pytest.param(
            {
                "resourceType": "aws:rds:cluster",
                "resourceTags": {"AzImpairmentPower": "DisruptRds"},
                "selectionMode": "ALL",
            },
            "skip",
            "completed",
            "resolved no aws:rds:cluster",
            id="no-cluster-skipped",
        ),
        pytest.param(
            {
                "resourceType": "aws:rds:cluster",
                "resourceTags": {"AzImpairmentPower": "DisruptRds"},
                "selectionMode": "ALL",
            },
            "fail",
            "failed",
            "resolved no aws:rds:cluster",
            id="no-cluster-fails",
        ),
    ],
)
def test_failover_db_cluster_on_a_sandbox_without_clusters(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
    target: dict[str, Any],
    mode: str,
    status: str,
    fragment: str,
) -> None:
    server, effects = endpoint
    fis = server.client("fis")
    template_id = template(
        fis,
        {
            "Failover-RDS": {
                "actionId": "aws:rds:failover-db-cluster",
                "targets": {"Clusters": "Clusters"},
            }
        },
        {"Clusters": target},
        experimentOptions={"emptyTargetResolutionMode": mode},
    )
    experiment_id = fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"]
    done = wait_until(fis, experiment_id, finished)
    assert done["state"]["status"] == status
    assert fragment in done["actions"]["Failover-RDS"]["state"]["reason"]
    assert effects.calls == []


def test_interrupt_az_power_fails_over_only_the_zone_s_primaries(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    effects.primaries["0002"] = 1  # its primary is the node in us-west-2b
    fis = server.client("fis")
    template_id = template(
        fis,
        {
            "Pause-ElastiCache": {
                "actionId": "aws:elasticache:replicationgroup-interrupt-az-power",
                "parameters": {"duration": "PT1S", "availabilityZoneIdentifier": "us-west-2b"},
                "targets": {"ReplicationGroups": "Cache"},
            }
        },
        {"Cache": {**CACHE, "parameters": {}}},
    )
    experiment_id = fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"]
    assert wait_until(fis, experiment_id, finished)["state"]["status"] == "completed"
    assert effects.calls == [("interrupt_cache_zone", ("harmonyflow-redis", "0002"))]


def test_templates_are_kept_and_listed(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, _ = endpoint
    fis = server.client("fis")
    alarm = [
        {
            "source": "aws:cloudwatch:alarm",
            "value": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:errors",
        }
    ]
    answer = fis.create_experiment_template(
        description="power",
        roleArn=ROLE,
        stopConditions=alarm,
        actions={"Wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}}},
        tags={"harmonyflow:experiment": "az-power-interruption"},
    )["experimentTemplate"]
    kept = fis.get_experiment_template(id=answer["id"])["experimentTemplate"]
    assert kept["stopConditions"] == alarm
    assert kept["tags"] == {"harmonyflow:experiment": "az-power-interruption"}
    [listed] = fis.list_experiment_templates()["experimentTemplates"]
    assert listed["id"] == answer["id"]


@pytest.mark.parametrize(
    ("actions", "targets", "fragment"),
    [
        ({"A": {"actionId": "aws:ec2:melt"}}, {}, "is not a valid action"),
        (
            {
                "A": {
                    "actionId": "aws:fis:wait",
                    "parameters": {"duration": "PT1S"},
                    "startAfter": ["B"],
                }
            },
            {},
            "unknown action 'B'",
        ),
        ({"A": {"actionId": "aws:fis:wait", "parameters": {"duration": "soon"}}}, {}, "ISO 8601"),
        (
            {"A": {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "T"}}},
            {"T": DB},
            "needs aws:ec2:instance",
        ),
    ],
)
def test_invalid_templates_get_a_validation_exception(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
    actions: dict[str, Any],
    targets: dict[str, Any],
    fragment: str,
) -> None:
    server, _ = endpoint
    fis = server.client("fis")
    code, status, message = error(lambda: template(fis, actions, targets))
    assert (code, status) == ("ValidationException", 400)
    assert fragment in message
    assert fis.list_experiment_templates()["experimentTemplates"] == []


def test_unknown_ids_get_resource_not_found(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, _ = endpoint
    fis = server.client("fis")
    for call in (
        lambda: fis.get_experiment_template(id="EXT123"),
        lambda: fis.start_experiment(experimentTemplateId="EXT123"),
        lambda: fis.get_experiment(id="EXP123"),
        lambda: fis.stop_experiment(id="EXP123"),
    ):
        code, status, _ = error(call)
        assert (code, status) == ("ResourceNotFoundException", 404)


def test_the_seeded_resources_carry_the_scenario_s_tags(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, _ = endpoint
    [db] = server.client("rds").describe_db_instances()["DBInstances"]
    assert {"Key": "AzImpairmentPower", "Value": "DisruptRds"} in db["TagList"]
    cache = server.client("elasticache")
    [group] = cache.describe_replication_groups()["ReplicationGroups"]
    tags = cache.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
    assert {"Key": "AzImpairmentPower", "Value": "ElasticacheImpact"} in tags
    tagged = server.client("ec2").describe_instances(
        Filters=[{"Name": "tag:AzImpairmentPower", "Values": ["StopInstances"]}]
    )["Reservations"]
    assert sorted(i["InstanceId"] for r in tagged for i in r["Instances"]) == sorted(
        n.instance_id for n in NODES
    )
    subnets = server.client("ec2").describe_subnets(
        Filters=[{"Name": "tag:AzImpairmentPower", "Values": ["DisruptSubnet"]}]
    )["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == sorted({n.zone for n in NODES})


ALARM = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:SessionStateHighErrorRate"
STOP_INSTANCES = {
    "Stop-Instances": {
        "actionId": "aws:ec2:stop-instances",
        "parameters": {"startInstancesAfterDuration": "PT30M"},
        "targets": {"Instances": "Instances"},
    }
}


def start_watched_by_the_alarm(fis: Any) -> str:
    """Start an experiment stopping the zone's instances, with ALARM as its stop condition."""
    template_id = template(
        fis,
        STOP_INSTANCES,
        {"Instances": INSTANCES_IN_C},
        stopConditions=[{"source": "aws:cloudwatch:alarm", "value": ALARM}],
    )
    return str(fis.start_experiment(experimentTemplateId=template_id)["experiment"]["id"])


def test_a_stop_condition_in_alarm_mid_run_stops_it_and_undoes_what_runs(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    effects.alarms["SessionStateHighErrorRate"] = "OK"
    fis = server.client("fis")
    experiment_id = start_watched_by_the_alarm(fis)
    wait_until(fis, experiment_id, lambda e: e["state"]["status"] == "running")
    effects.alarms["SessionStateHighErrorRate"] = "ALARM"
    done = wait_until(fis, experiment_id, finished)
    assert done["state"]["status"] == "stopped"
    assert ALARM in done["state"]["reason"]
    assert done["actions"]["Stop-Instances"]["state"]["status"] == "stopped"
    assert effects.calls == [("power_off", tuple(ZONE_C)), ("power_on", tuple(ZONE_C))]


def test_a_stop_condition_already_in_alarm_lets_no_action_start(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    effects.alarms["SessionStateHighErrorRate"] = "ALARM"
    fis = server.client("fis")
    experiment_id = start_watched_by_the_alarm(fis)
    done = wait_until(fis, experiment_id, finished)
    assert done["state"]["status"] == "stopped"
    assert ALARM in done["state"]["reason"]
    assert done["actions"]["Stop-Instances"]["state"]["status"] == "cancelled"
    assert effects.calls == []


def test_a_stop_condition_nobody_can_read_fails_the_experiment(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    fis = server.client("fis")
    experiment_id = start_watched_by_the_alarm(fis)
    done = wait_until(fis, experiment_id, finished)
    assert done["state"]["status"] == "failed"
    assert "cannot be evaluated" in done["state"]["reason"]
    assert "no alert named SessionStateHighErrorRate" in done["state"]["reason"]
    assert effects.calls == []
