"""The AWS endpoint's hooks, driven through boto3 and the aws CLI against a recording fake.

These pin the moto internals the hooks rely on: an upgrade of moto that breaks
one fails here (and `check_moto` names it), not silently in a game day.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.rds.responses import RDSResponse

from sandbox.aws import hooks
from sandbox.aws.endpoint import AwsEndpoint
from sandbox.aws.inventory import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, REGION
from tests.aws.clients import aws_cli, exports_for
from tests.aws.fakes import NODES, RecordingEffects


def error_code(call: Any) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_the_moto_internals_the_hooks_need_are_there() -> None:
    hooks.check_moto()


def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RDSResponse, "reboot_db_instance")
    with pytest.raises(hooks.MotoMismatch, match=r"RDSResponse\.reboot_db_instance"):
        hooks.check_moto()


def test_stop_restores_moto(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, _ = endpoint
    hooked = RDSResponse.reboot_db_instance
    server.stop()
    assert RDSResponse.reboot_db_instance is not hooked
    assert not hasattr(
        __import__("moto.elasticache.responses").elasticache.responses.ElastiCacheResponse,
        "test_failover",
    )


def test_db_instance_shows_the_sandbox_pair(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, _ = endpoint
    [db] = server.client("rds").describe_db_instances(DBInstanceIdentifier="harmonyflow-db")[
        "DBInstances"
    ]
    assert (db["DBInstanceStatus"], db["MultiAZ"]) == ("available", True)
    assert (db["AvailabilityZone"], db["SecondaryAvailabilityZone"]) == ("us-west-2a", "us-west-2b")
    assert db["Endpoint"] == {"Address": "127.0.3.10", "Port": 5432}


def test_forced_failover_through_the_aws_cli(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    answer = aws_cli(
        exports_for(server.url),
        "rds",
        "reboot-db-instance",
        "--db-instance-identifier",
        "harmonyflow-db",
        "--force-failover",
    )
    assert effects.calls == [("reboot_db", ("harmonyflow-db", "True"))]
    assert answer["DBInstance"]["AvailabilityZone"] == "us-west-2b"
    assert answer["DBInstance"]["SecondaryAvailabilityZone"] == "us-west-2a"
    events = aws_cli(
        exports_for(server.url), "rds", "describe-events", "--source-type", "db-instance"
    )["Events"]
    assert any("failover" in event["Message"] for event in events)


def test_plain_reboot_is_not_a_failover(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    server.client("rds").reboot_db_instance(DBInstanceIdentifier="harmonyflow-db")
    assert effects.calls == [("reboot_db", ("harmonyflow-db", "False"))]
    assert effects.zone == "us-west-2a"


def test_refusals_carry_the_aws_codes(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    rds = server.client("rds")
    assert error_code(
        lambda: rds.reboot_db_instance(DBInstanceIdentifier="nope", ForceFailover=True)
    ) == (
        "DBInstanceNotFound",
        404,
    )
    effects.status = "rebooting"
    assert (
        error_code(
            lambda: rds.reboot_db_instance(
                DBInstanceIdentifier="harmonyflow-db", ForceFailover=True
            )
        )[0]
        == "InvalidDBInstanceState"
    )
    rds.create_db_instance(
        DBInstanceIdentifier="single-az",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="admin_user",
        MasterUserPassword="not-a-real-one-1",
    )
    assert (
        error_code(
            lambda: rds.reboot_db_instance(DBInstanceIdentifier="single-az", ForceFailover=True)
        )[0]
        == "InvalidParameterCombination"
    )
    assert error_code(lambda: rds.describe_db_instances(MaxRecords=5)) == (
        "InvalidParameterValue",
        400,
    )


def test_unknown_action_and_moto_api_are_refused_and_serving_goes_on(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, _ = endpoint
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data="Action=FailOverEverything&Version=2014-10-31",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials(DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY), "rds", REGION).add_auth(
        request
    )
    answer = requests.post(
        request.url, data=request.body, headers=dict(request.headers), timeout=10
    )
    assert answer.status_code == 400
    assert "<Code>InvalidAction</Code>" in answer.text
    assert requests.post(server.url + "/moto-api/reset", timeout=10).status_code == 404
    assert server.client("rds").describe_db_instances()["DBInstances"], (
        "the reset must not have run"
    )


def test_test_failover_and_its_events(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    cache = server.client("elasticache")
    group = cache.test_failover(ReplicationGroupId="harmonyflow-redis", NodeGroupId="0002")[
        "ReplicationGroup"
    ]
    assert effects.calls == [("test_failover", ("harmonyflow-redis", "0002"))]
    members = [m["CacheClusterId"] for m in group["NodeGroups"][1]["NodeGroupMembers"]]
    assert members == ["harmonyflow-redis-0002-002", "harmonyflow-redis-0002-001"]
    messages = [e["Message"] for e in cache.describe_events()["Events"]]
    assert "Test Failover API called for node group 0002" in messages
    assert (
        error_code(
            lambda: cache.test_failover(ReplicationGroupId="harmonyflow-redis", NodeGroupId="0009")
        )[0]
        == "NodeGroupNotFoundFault"
    )
    assert error_code(lambda: cache.test_failover(ReplicationGroupId="nope", NodeGroupId="0001"))[
        0
    ] == ("ReplicationGroupNotFoundFault")


def instance_ids(ec2: Any, **filters: str) -> list[str]:
    answer = ec2.describe_instances(
        Filters=[
            {"Name": name.replace("_", "-"), "Values": [value]} for name, value in filters.items()
        ]
    )
    return sorted(i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"])


def test_node_instances_and_their_filters(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, _ = endpoint
    ec2 = server.client("ec2")
    assert instance_ids(ec2) == sorted(n.instance_id for n in NODES)
    assert instance_ids(ec2, availability_zone="us-west-2b") == ["i-0b00000000000000b"]
    assert instance_ids(ec2, **{"tag:eks:cluster-name": "harmonyflow"}) == sorted(
        n.instance_id for n in NODES
    )
    [reservation] = ec2.describe_instances(InstanceIds=["i-0c00000000000000c"])["Reservations"]
    assert reservation["Instances"][0]["PrivateIpAddress"] == "127.0.1.12"
    assert reservation["Instances"][0]["Placement"]["AvailabilityZone"] == "us-west-2c"


def test_stop_start_and_reboot_power_the_nodes(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    ec2 = server.client("ec2")
    zone_b = instance_ids(ec2, availability_zone="us-west-2b")
    stopping = aws_cli(exports_for(server.url), "ec2", "stop-instances", "--instance-ids", *zone_b)[
        "StoppingInstances"
    ]
    assert [s["CurrentState"]["Name"] for s in stopping] == ["stopping"]
    assert instance_ids(ec2, instance_state_name="stopped") == zone_b
    ec2.start_instances(InstanceIds=zone_b)
    ec2.reboot_instances(InstanceIds=["i-0a00000000000000a"])
    assert effects.calls == [
        ("power_off", tuple(zone_b)),
        ("power_on", tuple(zone_b)),
        ("power_off", ("i-0a00000000000000a",)),
        ("power_on", ("i-0a00000000000000a",)),
    ]
    assert instance_ids(ec2, instance_state_name="running") == sorted(n.instance_id for n in NODES)


def test_nodes_cannot_be_terminated_and_other_instances_touch_no_node(
    endpoint: tuple[AwsEndpoint, RecordingEffects],
) -> None:
    server, effects = endpoint
    ec2 = server.client("ec2")
    assert error_code(lambda: ec2.terminate_instances(InstanceIds=["i-0a00000000000000a"]))[0] == (
        "OperationNotPermitted"
    )
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [other] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"]
    ec2.stop_instances(InstanceIds=[other["InstanceId"]])
    assert effects.calls == []
    assert error_code(lambda: ec2.stop_instances(InstanceIds=["i-0123456789abcdef0"]))[0] == (
        "InvalidInstanceID.NotFound"
    )


def test_stop_and_start_db_instance(endpoint: tuple[AwsEndpoint, RecordingEffects]) -> None:
    server, effects = endpoint
    rds = server.client("rds")
    assert (
        rds.stop_db_instance(DBInstanceIdentifier="harmonyflow-db")["DBInstance"][
            "DBInstanceStatus"
        ]
        == "stopped"
    )
    assert error_code(lambda: rds.stop_db_instance(DBInstanceIdentifier="harmonyflow-db"))[0] == (
        "InvalidDBInstanceState"
    )
    assert error_code(lambda: rds.reboot_db_instance(DBInstanceIdentifier="harmonyflow-db"))[0] == (
        "InvalidDBInstanceState"
    )
    assert (
        rds.start_db_instance(DBInstanceIdentifier="harmonyflow-db")["DBInstance"][
            "DBInstanceStatus"
        ]
        == "available"
    )
    assert effects.calls == [("stop_db", ("harmonyflow-db",)), ("start_db", ("harmonyflow-db",))]
